"""RAW layer: the archive files loaded, as text, into the raw store.

`load_archive` does the work (usable from the CLI and benchmarks); the assets below only wire it
to resources and report what happened.
"""


import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, asset

from recsys_assets import datasets
from recsys_assets.checks import user_errors
from recsys_assets.transforms.archive import batch_count, default_bootstrap_rows, order_archive, type_fields
from recsys_resources import ArchiveResource, Store, StoreResource

GROUP = "raw"
OWNERS = ["team:data-platform"]

# The files themselves, so the lineage in the UI starts at ratings.csv / movies.csv.
archive_ratings_file = AssetSpec(
    "archive_ratings_file",
    group_name=GROUP,
    description="The ratings file(s) of the archive being replayed (ratings.csv, ratings.dat, u.data "
    "or combined_data_*.txt) in RECSYS_DATA_DIR.",
    kinds={"file"},
    owners=OWNERS,
)
archive_movies_file = AssetSpec(
    "archive_movies_file",
    group_name=GROUP,
    description="The movies file of the archive (movies.csv, movies.dat, u.item or movie_titles.csv).",
    kinds={"file"},
    owners=OWNERS,
)


@dataclass(frozen=True)
class ArchiveSummary:
    source: str
    layout: str
    rows: int
    movies: int
    bootstrap_rows: int
    batch_size: int
    batches: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def load_movies(data_dir: Path, store: Store) -> int:
    """Replace raw_movies with the archive's movies file, as text."""
    movies = datasets.read_raw_movies(data_dir)
    with store.transaction():
        store.execute("DELETE FROM raw_movies")
        store.insert("raw_movies", movies.select("movie_id", "title", "year", "genres"))
    return movies.height


def load_archive(data_dir: Path, store: Store, batch_size: int, bootstrap_rows: int | None) -> ArchiveSummary:
    """Replace raw_ratings with the archive in replay order, each row tagged with its batch."""
    started = time.perf_counter()
    layout = datasets.detect_layout(data_dir)
    raw = type_fields(datasets.scan_raw_ratings(data_dir)).collect()
    total = raw.height
    bootstrap = default_bootstrap_rows(total, bootstrap_rows, batch_size)
    batches = batch_count(total, bootstrap, batch_size)
    ordered = order_archive(raw, bootstrap, batch_size)
    del raw  # the unordered copy: keep peak memory to one copy of the archive plus the order
    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    archive_row = pl.DataFrame(
        {
            "source": [str(data_dir)],
            "layout": [layout.value],
            "rows": [total],
            "movies": [store.scalar("SELECT count(*) FROM raw_movies")],
            "bootstrap_rows": [bootstrap],
            "batch_size": [batch_size],
            "batches": [batches],
            "max_timestamp": [int(loaded_at.replace(tzinfo=dt.timezone.utc).timestamp())],
            "loaded_at": [loaded_at],
        }
    )
    with store.transaction():
        for table in ("raw_ratings", "raw_archive", "raw_processed"):
            store.execute(f"DELETE FROM {table}")
        store.insert("raw_ratings", ordered)
        store.insert("raw_archive", archive_row)
    store.apply_schema("raw_loaded")
    return ArchiveSummary(
        source=str(data_dir),
        layout=layout.value,
        rows=total,
        movies=int(archive_row["movies"][0]),
        bootstrap_rows=bootstrap,
        batch_size=batch_size,
        batches=batches,
        seconds=time.perf_counter() - started,
    )


@asset(
    group_name=GROUP,
    deps=[archive_movies_file],
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="The archive's movies, as text, exactly as the file has them.",
)
def raw_movies(archive: ArchiveResource, raw_store: StoreResource) -> MaterializeResult:
    with user_errors(), raw_store.open() as store:
        count = load_movies(archive.path, store)
    return MaterializeResult(metadata={"dagster/row_count": count, "source": str(archive.path)})


@asset(
    group_name=GROUP,
    deps=[archive_ratings_file, raw_movies],
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="The whole ratings archive in (timestamp, userId, movieId) order, one row per line (the "
    "line's text kept where it is not four numbers), each "
    "row tagged with its batch: the bootstrap slice (-1), then batch k for daily partition "
    "start_date + k days. Rows are marked processed by the lake, never deleted.",
)
def raw_ratings(context: AssetExecutionContext, archive: ArchiveResource, raw_store: StoreResource) -> MaterializeResult:
    with user_errors(), raw_store.open() as store:
        summary = load_archive(archive.path, store, archive.batch_size, archive.bootstrap_rows)
    context.log.info(
        f"Loaded {summary.rows:,} ratings ({summary.layout}) in {summary.seconds:.1f} s: "
        f"{summary.bootstrap_rows:,} bootstrap rows and {summary.batches} daily batches of {summary.batch_size:,}."
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": summary.rows,
            "layout": summary.layout,
            "bootstrap_rows": summary.bootstrap_rows,
            "batch_size": summary.batch_size,
            "daily_batches": summary.batches,
            "rows_per_second": float(round(summary.rows_per_second)),
            "source": MetadataValue.path(summary.source),
        }
    )
