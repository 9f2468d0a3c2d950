"""LAKE layer: each archive batch cleaned from the raw store into the lake, rejects quarantined.

A batch write replaces that batch in one transaction, so cleaning a batch again never duplicates
or loses a row, and the raw rows are then marked processed (never deleted). `lake_batches`
records raw = clean + rejected for every batch.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import polars as pl

from recsys.calendar import BOOTSTRAP_BATCH, Calendar
from recsys.errors import RecsysError
from recsys.lake import suites
from recsys.lake.cleaning import Cleaned, clean_movies, clean_ratings
from recsys.quality.results import SuiteResult
from recsys.stores import Store

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
    checks: list[SuiteResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reject_rate(self) -> float:
        return self.rows_rejected / self.rows_raw if self.rows_raw else 0.0


def earlier_rows(lake: Store, batch: int, rows: pl.DataFrame) -> pl.DataFrame | None:
    """The lake's rows from earlier batches that could repeat one of `rows`: a duplicate has the
    same timestamp, and batches follow time, so only the span of this batch's timestamps is read."""
    span = rows.select(low=pl.col("timestamp").min(), high=pl.col("timestamp").max()).row(0)
    if span[0] is None:
        return None
    return lake.query(
        "SELECT user_id, movie_id, timestamp, rating FROM lake_ratings "
        "WHERE batch < $batch AND timestamp BETWEEN $low AND $high",
        {"batch": batch, "low": span[0], "high": span[1]},
    )


def clean_movies_into_lake(raw: Store, lake: Store) -> Cleaned:
    """Replace the lake's movies with the raw movies, typed and parsed, rejects quarantined."""
    cleaned = clean_movies(raw.query("SELECT movie_id, title, year, genres FROM raw_movies"))
    with lake.transaction():
        lake.execute("DELETE FROM lake_movies")
        lake.execute("DELETE FROM lake_movie_rejects")
        lake.insert("lake_movies", cleaned.clean)
        lake.insert("lake_movie_rejects", cleaned.rejects)
    return cleaned


def clean_batch(batch: int, raw: Store, lake: Store, info: ArchiveInfo, calendar: Calendar) -> BatchOutcome:
    """Clean one archive batch (the bootstrap slice is batch -1) from the raw store into the lake
    and validate it."""
    started = time.perf_counter()
    partition_key = calendar.label(batch)
    if not BOOTSTRAP_BATCH <= batch < info.batches:
        last = calendar.partition_of(info.batches - 1)
        raise RecsysError(
            f"Partition {partition_key} would be archive batch {batch}, but the archive holds "
            f"{info.batches} daily batches (the last partition is {last})."
        )
    known_movies = lake.query("SELECT movie_id FROM lake_movies")["movie_id"]
    if known_movies.len() == 0:
        raise RecsysError("The lake has no movies yet: materialize lake_movies before rating batches.")
    rows = raw.query(f"SELECT {RAW_COLUMNS} FROM raw_ratings WHERE batch = $batch", {"batch": batch})
    cleaned = clean_ratings(rows, known_movies, max_timestamp=info.max_timestamp, earlier=earlier_rows(lake, batch, rows))
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
    if batch == BOOTSTRAP_BATCH:  # a bulk load: millions of rows where there were none
        lake.analyze("lake_ratings", "lake_rejects")
    processed = pl.DataFrame({"batch": [batch], "processed_at": [now]}, schema={"batch": pl.Int32, "processed_at": pl.Datetime})
    raw.replace("raw_processed", where, {"batch": batch}, processed)

    summary = suites.batch_summary(batch, rows.height, cleaned.clean.height, cleaned.rejects.height)
    expected_rows = info.bootstrap_rows if batch == BOOTSTRAP_BATCH else info.batch_size
    checks = suites.validate_lake_batch(
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
