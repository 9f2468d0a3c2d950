"""RAW layer: the archive files loaded into the raw store, in replay order, each row tagged with its batch.

The raw store keeps one row per source line: numbers typed where the line parses, the line's
text in `raw_line` where it does not. Rows are never deleted; the lake marks batches processed.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsys.raw.archive import (
    batch_count,
    default_bootstrap_rows,
    order_archive,
    type_fields,
)
from recsys.sources import readers
from recsys.stores import Store


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
    movies = readers.read_raw_movies(data_dir)
    with store.transaction():
        store.execute("DELETE FROM raw_movies")
        store.insert("raw_movies", movies.select("movie_id", "title", "year", "genres"))
    return movies.height


def load_archive(data_dir: Path, store: Store, batch_size: int, bootstrap_rows: int | None) -> ArchiveSummary:
    """Replace raw_ratings with the archive in replay order, each row tagged with its batch."""
    started = time.perf_counter()
    layout = readers.detect_layout(data_dir)
    raw = type_fields(readers.scan_raw_ratings(data_dir)).collect()
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
