"""LAKE layer: each archive batch cleaned into the lake, rejects quarantined, GX-validated.

`clean_batch` does one batch's work against the stores; the assets wire it to Dagster. A batch
write replaces that batch in one transaction, so re-materializing a partition never duplicates or
loses a row, and the raw rows are then marked processed (never deleted).
"""


import datetime as dt
import time
from dataclasses import dataclass, field

import polars as pl
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recsys_assets import validation
from recsys_assets.checks import check_results, check_specs, user_errors
from recsys_assets.reporting import markdown_table
from recsys_assets.partitions import batch_of, daily_partitions, partition_of
from recsys_assets.raw import raw_movies, raw_ratings
from recsys_assets.transforms.archive import BOOTSTRAP_BATCH
from recsys_assets.transforms.cleaning import clean_movies, clean_ratings
from recsys_resources import RecsysError, Store, StoreResource

GROUP = "lake"
OWNERS = ["team:data-platform"]
RAW_COLUMNS = "seq, batch, line_no, user_id, movie_id, rating, timestamp, raw_line"


@dataclass(frozen=True)
class ArchiveInfo:
    rows: int
    bootstrap_rows: int
    batch_size: int
    batches: int
    max_timestamp: int


def archive_info(raw: Store) -> ArchiveInfo:
    """What the raw store says about the loaded archive, or a clear error if none is loaded."""
    info = raw.query("SELECT rows, bootstrap_rows, batch_size, batches, max_timestamp FROM raw_archive")
    if info.height == 0:
        raise RecsysError("The raw store holds no archive yet: materialize raw_movies and raw_ratings first.")
    return ArchiveInfo(**{k: int(v) for k, v in info.row(0, named=True).items()})


@dataclass
class BatchOutcome:
    batch: int
    partition_key: str
    rows_raw: int
    rows_clean: int
    rows_rejected: int
    reject_counts: dict[str, int]
    checks: list[validation.SuiteResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reject_rate(self) -> float:
        return self.rows_rejected / self.rows_raw if self.rows_raw else 0.0


def clean_batch(batch: int, raw: Store, lake: Store, info: ArchiveInfo, partition_key: str) -> BatchOutcome:
    """Clean one archive batch from the raw store into the lake and validate it."""
    started = time.perf_counter()
    if not BOOTSTRAP_BATCH <= batch < info.batches:
        last = partition_of(info.batches - 1)
        raise RecsysError(
            f"Partition {partition_key} would be archive batch {batch}, but the archive holds "
            f"{info.batches} daily batches (the last partition is {last})."
        )
    known_movies = lake.query("SELECT movie_id FROM lake_movies")["movie_id"]
    if known_movies.len() == 0:
        raise RecsysError("The lake has no movies yet: materialize lake_movies before rating batches.")
    rows = raw.query(f"SELECT {RAW_COLUMNS} FROM raw_ratings WHERE batch = $batch", {"batch": batch})
    cleaned = clean_ratings(rows, known_movies, max_timestamp=info.max_timestamp)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    accounting = pl.DataFrame(
        {
            "batch": [batch],
            "partition_key": [partition_key],
            "rows_raw": [rows.height],
            "rows_clean": [cleaned.clean.height],
            "rows_rejected": [cleaned.rejects.height],
            "cleaned_at": [now],
        }
    )
    where = "batch = $batch"
    with lake.transaction():
        lake.replace("lake_ratings", where, {"batch": batch}, cleaned.clean)
        lake.replace("lake_rejects", where, {"batch": batch}, cleaned.rejects)
        lake.replace("lake_batches", where, {"batch": batch}, accounting)
    processed = pl.DataFrame({"batch": [batch], "processed_at": [now]}, schema={"batch": pl.Int32, "processed_at": pl.Datetime})
    raw.replace("raw_processed", where, {"batch": batch}, processed)

    summary = validation.batch_summary(batch, rows.height, cleaned.clean.height, cleaned.rejects.height)
    expected_rows = info.bootstrap_rows if batch == BOOTSTRAP_BATCH else info.batch_size
    checks = validation.validate_lake_batch(
        cleaned.clean, summary, batch_size=expected_rows, max_timestamp=info.max_timestamp
    )
    return BatchOutcome(
        batch=batch,
        partition_key=partition_key,
        rows_raw=rows.height,
        rows_clean=cleaned.clean.height,
        rows_rejected=cleaned.rejects.height,
        reject_counts=cleaned.reject_counts,
        checks=checks,
        seconds=time.perf_counter() - started,
    )


def outcome_metadata(outcomes: list[BatchOutcome]) -> dict:
    """What a person reads on a lake materialization: counts, reasons, and per-batch accounting."""
    rows_raw = sum(o.rows_raw for o in outcomes)
    rows_clean = sum(o.rows_clean for o in outcomes)
    rejected = sum(o.rows_rejected for o in outcomes)
    reasons: dict[str, int] = {}
    for outcome in outcomes:
        for reason, count in outcome.reject_counts.items():
            reasons[reason] = reasons.get(reason, 0) + count
    per_batch = pl.DataFrame(
        [(o.partition_key, o.batch, o.rows_raw, o.rows_clean, o.rows_rejected) for o in outcomes],
        schema=["partition", "batch", "raw", "clean", "rejected"],
        orient="row",
    )
    return {
        "dagster/row_count": rows_clean,
        "rows_raw": rows_raw,
        "rows_clean": rows_clean,
        "rows_rejected": rejected,
        "reject_rate": float(rejected / rows_raw) if rows_raw else 0.0,
        "rejects_by_reason": reasons,
        "batches": MetadataValue.md(markdown_table(per_batch, limit=len(outcomes))),
    }


@asset(
    group_name=GROUP,
    deps=[raw_movies],
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="Movies typed and parsed: integer id, title without its year, release year, "
    "pipe-joined genres; malformed rows quarantined in lake_movie_rejects.",
    check_specs=check_specs("lake_movies", validation.lake_movies_suites()),
)
def lake_movies(raw_store: StoreResource, lake_store: StoreResource):
    with user_errors(), raw_store.open() as raw, lake_store.open() as lake:
        cleaned = clean_movies(raw.query("SELECT movie_id, title, year, genres FROM raw_movies"))
        with lake.transaction():
            lake.execute("DELETE FROM lake_movies")
            lake.execute("DELETE FROM lake_movie_rejects")
            lake.insert("lake_movies", cleaned.clean)
            lake.insert("lake_movie_rejects", cleaned.rejects)
    results = validation.validate_all(cleaned.clean, validation.lake_movies_suites())
    return MaterializeResult(
        metadata={
            "dagster/row_count": cleaned.clean.height,
            "rows_rejected": cleaned.rejects.height,
            "rejects_by_reason": cleaned.reject_counts,
            "preview": MetadataValue.md(markdown_table(cleaned.clean)),
        },
        check_results=check_results("lake_movies", {"all": results}),
    )


@asset(
    group_name=GROUP,
    deps=[raw_ratings, lake_movies],
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="The bootstrap slice (the history before the first daily batch), cleaned into "
    "lake_ratings as batch -1, rejects kept with their reason.",
    check_specs=check_specs("lake_bootstrap", validation.lake_ratings_suite_specs()),
)
def lake_bootstrap(context: AssetExecutionContext, raw_store: StoreResource, lake_store: StoreResource):
    with user_errors(), raw_store.open() as raw, lake_store.open() as lake:
        outcome = clean_batch(BOOTSTRAP_BATCH, raw, lake, archive_info(raw), "bootstrap")
    context.log.info(f"Bootstrap: {outcome.rows_clean:,} clean, {outcome.rows_rejected:,} rejected.")
    return MaterializeResult(
        metadata=outcome_metadata([outcome]),
        check_results=check_results("lake_bootstrap", {"bootstrap": outcome.checks}),
    )


@asset(
    group_name=GROUP,
    deps=[raw_ratings, lake_movies],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="One archive batch per day, cleaned: typed, deduplicated, invalid rows moved to "
    "lake_rejects with a reason. For every partition raw rows = clean rows + rejected rows.",
    check_specs=check_specs("lake_ratings", validation.lake_ratings_suite_specs()),
)
def lake_ratings(context: AssetExecutionContext, raw_store: StoreResource, lake_store: StoreResource):
    outcomes: list[BatchOutcome] = []
    with user_errors(), raw_store.open() as raw, lake_store.open() as lake:
        info = archive_info(raw)
        # A range run (single-run backfill) cleans its days in order, one batch at a time.
        for key in context.partition_keys:
            outcome = clean_batch(batch_of(key), raw, lake, info, key)
            context.log.info(
                f"{key} (batch {outcome.batch}): {outcome.rows_clean:,} clean, {outcome.rows_rejected:,} "
                f"rejected of {outcome.rows_raw:,} in {outcome.seconds:.2f} s"
            )
            outcomes.append(outcome)
    return MaterializeResult(
        metadata=outcome_metadata(outcomes),
        check_results=check_results("lake_ratings", {o.partition_key: o.checks for o in outcomes}),
    )
