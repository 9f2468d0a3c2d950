"""LAKE layer in Dagster: movies, the bootstrap slice and one batch a day cleaned into the lake
(`recsys.lake.tables`), each validated by its Great Expectations suites as asset checks."""

# No `from __future__ import annotations`: Dagster reads the asset functions' type hints.
import polars as pl
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recsys.calendar import BOOTSTRAP_BATCH, Calendar
from recsys.lake import suites
from recsys.lake.tables import (
    BatchOutcome,
    archive_info,
    clean_batch,
    clean_movies_into_lake,
)
from recsys.quality.gx import validate_all
from recsys.reporting import markdown_table
from recsys_assets.checks import check_results, check_specs
from recsys_assets.failures import user_errors
from recsys_assets.partitions import daily_partitions
from recsys_resources import StoreResource

GROUP = "lake"
OWNERS = ["team:data-platform"]


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
        "reject_rate": round(rejected / rows_raw, 5) if rows_raw else 0.0,
        "rejects_by_reason": reasons,
        "batches": MetadataValue.md(markdown_table(per_batch, limit=len(outcomes))),
    }


@asset(
    group_name=GROUP,
    deps=["raw_movies"],
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="Movies typed and parsed: integer id, title without its year, release year, "
    "pipe-joined genres; malformed rows quarantined in lake_movie_rejects.",
    check_specs=check_specs("lake_movies", suites.lake_movies_suites()),
)
def lake_movies(raw_store: StoreResource, lake_store: StoreResource):
    with user_errors(), raw_store.open() as raw, lake_store.open() as lake:
        cleaned = clean_movies_into_lake(raw, lake)
    results = validate_all(cleaned.clean, suites.lake_movies_suites())
    return MaterializeResult(
        metadata={
            "dagster/row_count": cleaned.clean.height,
            "rows_rejected": cleaned.rejects.height,
            "rejects_by_reason": cleaned.reject_counts,
            "preview": MetadataValue.md(markdown_table(cleaned.clean)),
        },
        check_results=check_results("lake_movies", {"all": results}),
    )


def definitions(calendar: Calendar) -> Definitions:
    @asset(
        group_name=GROUP,
        deps=["raw_ratings", lake_movies],
        kinds={"polars", "sql"},
        owners=OWNERS,
        description="The bootstrap slice (the history before the first daily batch), cleaned into "
        "lake_ratings as batch -1, rejects kept with their reason.",
        check_specs=check_specs("lake_bootstrap", suites.lake_ratings_suite_specs()),
    )
    def lake_bootstrap(context: AssetExecutionContext, raw_store: StoreResource, lake_store: StoreResource):
        with user_errors(), raw_store.open() as raw, lake_store.open() as lake:
            outcome = clean_batch(BOOTSTRAP_BATCH, raw, lake, archive_info(raw), calendar)
        context.log.info(f"Bootstrap: {outcome.rows_clean:,} clean, {outcome.rows_rejected:,} rejected.")
        return MaterializeResult(
            metadata=outcome_metadata([outcome]),
            check_results=check_results("lake_bootstrap", {"bootstrap": outcome.checks}),
        )

    daily = daily_partitions(calendar)

    @asset(
        group_name=GROUP,
        deps=["raw_ratings", lake_movies],
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"polars", "sql"},
        owners=OWNERS,
        description="One archive batch per day, cleaned: typed, deduplicated, invalid rows moved to "
        "lake_rejects with a reason. For every partition raw rows = clean rows + rejected rows.",
        check_specs=check_specs("lake_ratings", suites.lake_ratings_suite_specs(), daily),
    )
    def lake_ratings(context: AssetExecutionContext, raw_store: StoreResource, lake_store: StoreResource):
        outcomes: list[BatchOutcome] = []
        with user_errors(), raw_store.open() as raw, lake_store.open() as lake:
            info = archive_info(raw)
            # A range run (single-run backfill) cleans its days in order, one batch at a time.
            for key in context.partition_keys:
                outcome = clean_batch(calendar.batch_of(key), raw, lake, info, calendar)
                context.log.info(
                    f"{key} (batch {outcome.batch}): {outcome.rows_clean:,} clean, {outcome.rows_rejected:,} "
                    f"rejected of {outcome.rows_raw:,} in {outcome.seconds:.2f} s"
                )
                # Each day's counts on its own partition, also in a range run.
                context.add_asset_metadata(outcome_metadata([outcome]), partition_key=key)
                outcomes.append(outcome)
        return MaterializeResult(
            metadata=outcome_metadata(outcomes) if len(outcomes) > 1 else {},
            check_results=check_results("lake_ratings", {o.partition_key: o.checks for o in outcomes}, context),
        )

    return Definitions(assets=[lake_movies, lake_bootstrap, lake_ratings])
