"""RAW layer in Dagster: the archive files, and their load into the raw store (`recsys.raw.load`)."""

# No `from __future__ import annotations`: Dagster reads the asset functions' type hints.
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recsys.calendar import Calendar
from recsys.raw.load import load_archive, load_movies
from recsys_assets.failures import user_errors
from recsys_resources import ArchiveResource, StoreResource

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


def definitions(calendar: Calendar) -> Definitions:
    """The raw layer is not partitioned: the calendar is the other layers' concern."""
    return Definitions(assets=[archive_ratings_file, archive_movies_file, raw_movies, raw_ratings])
