"""Cutting the archive into a bootstrap slice and daily batches (pure Polars).

The replay order is (timestamp, userId, movieId), as parsed from the text fields; the source line
breaks ties so the order is total and a reload gives the same batches. Lines whose keys do not
parse sort last: they still belong to a batch, where the lake rejects them with a reason, so every
line of the archive is accounted for.
"""

from __future__ import annotations

import polars as pl

from recsys_resources.errors import RecsysError

BOOTSTRAP_BATCH = -1


def default_bootstrap_rows(total_rows: int, configured: int | None, batch_size: int) -> int:
    """The bootstrap slice: as configured, else 5,000,000 or a fifth of a smaller archive."""
    if configured is not None:
        if configured < 0 or configured >= total_rows:
            raise RecsysError(
                f"A bootstrap slice of {configured:,} rows does not fit an archive of {total_rows:,} rows."
            )
        return configured
    return min(5_000_000, total_rows // 5)


def batch_count(total_rows: int, bootstrap_rows: int, batch_size: int) -> int:
    """Daily batches after the bootstrap slice; the last one may be short."""
    return -(-(total_rows - bootstrap_rows) // batch_size)


def _as_int(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Int64, strict=False)


def order_archive(raw_ratings: pl.LazyFrame, bootstrap_rows: int, batch_size: int) -> pl.LazyFrame:
    """Sort raw text rows into replay order and tag each with `seq` and `batch`."""
    if batch_size <= 0:
        raise RecsysError(f"The batch size must be a positive number of rows, not {batch_size}.")
    seq = pl.int_range(pl.len(), dtype=pl.Int64)
    batch = (
        pl.when(seq < bootstrap_rows)
        .then(pl.lit(BOOTSTRAP_BATCH, dtype=pl.Int64))
        .otherwise((seq - bootstrap_rows) // batch_size)
        .cast(pl.Int32)
    )
    return (
        raw_ratings.sort(
            [_as_int("timestamp"), _as_int("user_id"), _as_int("movie_id"), pl.col("line_no")],
            nulls_last=True,
        )
        .with_columns(seq=seq)
        .with_columns(batch=batch)
        .select("seq", "batch", "line_no", "user_id", "movie_id", "rating", "timestamp", "raw_line")
    )
