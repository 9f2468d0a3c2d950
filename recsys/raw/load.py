"""RAW layer: the archive files loaded into the raw store, in replay order, each row tagged with its batch.

The raw store keeps one row per source line: numbers typed where the line parses, the line's
text in `raw_line` where it does not. Rows are never deleted; the lake marks batches processed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsys.raw.archive import SORT_MEMORY, batch_count, default_bootstrap_rows, order_typed, replay_rows, sink_typed
from recsys.errors import RecsysError
from recsys.sources import readers
from recsys.stores import DuckDBStore, Store, duckdb_path, is_postgres_url, open_store


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


def archive_days(raw_url: str, data_dir: Path, batch_size: int, bootstrap_rows: int | None) -> int | None:
    """Daily batches of the archive being replayed: as the raw store cut it once it is loaded (it
    records its batching), else as the archive's files would be cut; None without either."""
    loaded = loaded_archive_days(raw_url)
    if loaded is not None:
        return loaded
    return archive_file_days(data_dir, batch_size, bootstrap_rows) if Path(data_dir).expanduser().is_dir() else None


def loaded_archive_days(raw_url: str) -> int | None:
    """Daily batches of the archive in the raw store; None before a load (or without the store)."""
    if not is_postgres_url(raw_url) and not Path(duckdb_path(raw_url)).expanduser().is_file():
        return None  # never create a store just to look into it
    try:
        with open_store(raw_url, read_only=True) as raw:
            batches = raw.scalar("SELECT max(batches) FROM raw_archive") if raw.table_exists("raw_archive") else None
    except RecsysError:
        return None  # no server or no database yet: nothing is loaded
    return None if batches is None else int(batches)


def archive_file_days(data_dir: Path, batch_size: int, bootstrap_rows: int | None) -> int:
    """Daily batches the archive's files hold after the bootstrap slice, counted before any load."""
    rows = readers.scan_raw_ratings(Path(data_dir)).select(pl.len()).collect().item()
    return batch_count(rows, default_bootstrap_rows(rows, bootstrap_rows, batch_size), batch_size)


def load_movies(data_dir: Path, store: Store) -> int:
    """Replace raw_movies with the archive's movies file, as text."""
    movies = readers.read_raw_movies(data_dir)
    with store.transaction():
        store.execute("DELETE FROM raw_movies")
        store.insert("raw_movies", movies.select("movie_id", "title", "year", "genres"))
    return movies.height


ROWS_PER_FRAME = 1_000_000  # rows per frame streamed to a PostgreSQL store (about 50 MB)
SCRATCH_PREFIX = ".raw-load-"  # the scratch folder of a load in progress


def load_archive(data_dir: Path, store: Store, batch_size: int, bootstrap_rows: int | None) -> ArchiveSummary:
    """Replace raw_ratings with the archive in replay order, each row tagged with its batch.

    Typing and ordering go through files in a scratch folder beside the store
    (`recsys.raw.archive`), so memory stays under 2 GB whatever the archive's size (1.7 GB at
    32M rows). A DuckDB store inserts the ordered rows itself; a PostgreSQL one gets them in one
    binary COPY, a million rows at a time.
    """
    started = time.perf_counter()
    layout = readers.detect_layout(data_dir)
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=_scratch_parent(store)) as scratch:
        typed, ordered = Path(scratch) / "typed.parquet", Path(scratch) / "ordered.parquet"
        sink_typed(data_dir, typed)
        total = order_typed(typed, ordered, Path(scratch))
        typed.unlink()
        bootstrap = default_bootstrap_rows(total, bootstrap_rows, batch_size)
        batches = batch_count(total, bootstrap, batch_size)
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
                store.clear(table)
            rows = replay_rows(ordered, bootstrap, batch_size)
            if isinstance(store, DuckDBStore):
                store.execute(f"INSERT INTO raw_ratings {rows}")
            else:
                import duckdb

                with duckdb.connect(config={"memory_limit": SORT_MEMORY}) as reader:
                    frames = reader.sql(rows).to_arrow_reader(ROWS_PER_FRAME)
                    store.insert_batches("raw_ratings", (pl.from_arrow(frame) for frame in frames))
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


def _scratch_parent(store: Store) -> str | None:
    """Where the load's scratch files go: beside a DuckDB store (the disk it is written to
    anyway), the system's temporary folder for a server's store.

    Beside a DuckDB store, what a killed load left there goes first: only one process writes
    the store at a time (its lock), so no other load's scratch can be in that folder."""
    if isinstance(store, DuckDBStore) and duckdb_path(store.url) != ":memory:":
        parent = Path(duckdb_path(store.url)).expanduser().resolve().parent
        for leftover in parent.glob(f"{SCRATCH_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        return str(parent)
    return None
