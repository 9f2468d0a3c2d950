"""Typing the archive's text and cutting it into a bootstrap slice and daily batches (pure Polars).

The raw store keeps numbers where the text is a number, and the line's text (`raw_line`) for any
line that is not four numbers: nothing is lost, and the lake decides what is wrong with it. Typed
columns make the 32M-row load several times faster than text would (sorting, COPY, DuckDB's
ingest), which is why the raw layer types at all.

The replay order is (timestamp, userId, movieId); the source line breaks ties so the order is
total and a reload gives the same batches. A key that does not parse sorts after every value of
it (a line without a timestamp ends the archive). Such lines still belong to a batch, where the
lake rejects them with a reason, so every line is accounted for.

Loading goes through two Parquet files, so that no step holds the archive in memory: the typed
rows, streamed by Polars (`sink_typed`), then the same rows in replay order, sorted by DuckDB
out of core (`order_typed`), whose row numbers number them (`replay_rows`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys.errors import RecsysError
from recsys.sources import readers
from recsys.sources.readers import Layout
from recsys.stores import sql_script

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


RATING_FIELDS = ("user_id", "movie_id", "rating", "timestamp")


FIELD_TYPES = {"user_id": pl.Int64, "movie_id": pl.Int64, "rating": pl.Float64, "timestamp": pl.Int64}


def _number(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    value = text.cast(dtype, strict=False)
    # NaN and infinity parse as floats but are not ratings: treat them as text that is no number.
    return pl.when(value.is_finite()).then(value) if dtype == pl.Float64 else value


def type_fields(lines: pl.LazyFrame) -> pl.LazyFrame:
    """Text fields (as the dataset readers give them) to typed columns plus `raw_line`.

    `raw_line` keeps the reader's text for a line with a wrong field count, and the four fields
    joined by commas for a line whose fields do not all parse as numbers (surrounding blanks are
    forgiven). The fix-up work runs on the few lines that need it, not on all 32M.
    """
    parsed = lines.with_columns(_number(pl.col(f), t).alias(f"{f}_value") for f, t in FIELD_TYPES.items())
    needs_fixing = pl.any_horizontal(pl.col(f"{f}_value").is_null() for f in FIELD_TYPES) | pl.col("raw_line").is_not_null()
    retyped = {f: _number(pl.col(f).str.strip_chars(), t) for f, t in FIELD_TYPES.items()}
    joined = pl.concat_str([pl.col(f).fill_null("") for f in FIELD_TYPES], separator=",")
    fixed = parsed.filter(needs_fixing).select(
        "line_no",
        *(expr.alias(f"{f}_fixed") for f, expr in retyped.items()),
        pl.coalesce(
            pl.col("raw_line"), pl.when(pl.any_horizontal(e.is_null() for e in retyped.values())).then(joined)
        ).alias("raw_line_fixed"),
    )
    return parsed.join(fixed, on="line_no", how="left", maintain_order="left").select(
        "line_no",
        *(pl.coalesce(f"{f}_value", f"{f}_fixed").alias(f) for f in FIELD_TYPES),
        pl.col("raw_line_fixed").alias("raw_line"),
    )


# The typed rows' file lives only until they are sorted: written uncompressed, the fastest of
# Polars' choices here (2.5 s at 32M rows against 4.2 s with its default zstd), for 1.3 GB of disk.
SCRATCH_COMPRESSION = "uncompressed"


def sink_typed(data_dir: Path, out: Path) -> None:
    """The archive's ratings typed as `type_fields` types them, streamed to the Parquet file `out`
    in file order (Polars' streaming engine: memory stays flat whatever the archive's size).

    A MovieLens ratings.csv is first read by Polars' own typed CSV reader, several times faster
    than reading lines and splitting them. That reader is strict (a field that is not a number, a
    wrong field count or a quote fails it; a blank line or a missing field comes out null), so a
    file it reads with every field set and every rating finite is typed exactly as the line
    reader would type it (tests/library/test_archive.py holds both to the same rows). Any other
    file, or archive layout, goes through the line reader, which keeps every line's text.
    """
    if readers.detect_layout(data_dir) is Layout.ML_LATEST and _sink_clean_csv(data_dir / "ratings.csv", out):
        return
    type_fields(readers.scan_raw_ratings(data_dir)).sink_parquet(out, compression=SCRATCH_COMPRESSION)


def _sink_clean_csv(ratings: Path, out: Path) -> bool:
    """Type a ratings.csv with the strict CSV reader; False when the file is not clean."""
    readers.check_ml_latest_header(ratings)
    names = readers.ML_LATEST_RATINGS_HEADER.split(",")
    try:
        (
            pl.scan_csv(ratings, has_header=True, quote_char=None, schema=dict(zip(names, FIELD_TYPES.values())))
            .rename(dict(zip(names, FIELD_TYPES)))
            .with_row_index("line_no", offset=2)  # line 1 is the header
            .select(pl.col("line_no").cast(pl.Int64), *FIELD_TYPES, pl.lit(None, pl.String).alias("raw_line"))
            .sink_parquet(out, compression=SCRATCH_COMPRESSION)
        )
    except pl.exceptions.PolarsError:
        return False
    unclean = pl.any_horizontal(*(pl.col(f).is_null() for f in FIELD_TYPES), ~pl.col("rating").is_finite())
    return not pl.scan_parquet(out).select(unclean.any()).collect().item()


# DuckDB's memory for the replay-order sort: past it the sort spills to files beside the store, so
# loading 32M rows peaks at 1.7 GB instead of holding the archive twice (4.7 GB with Polars).
# The sort of 32M rows measured 5.6 s under this limit, 6.4 s under 1 GB, 4.4 s with none.
SORT_MEMORY = "1536MB"


def order_typed(typed: Path, ordered: Path, scratch: Path, memory_limit: str = SORT_MEMORY) -> int:
    """Sort the typed rows of `typed` (see `sink_typed`) into replay order, to the Parquet file
    `ordered`, with DuckDB's out-of-core sort (`sql/raw_replay_order.sql`), spilling to `scratch`
    past `memory_limit`; returns the row count. The file's row numbers are then the rows'
    positions in replay order (`replay_rows`)."""
    import duckdb

    with duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(scratch)}) as sorter:
        sorter.execute(sql_script("raw_replay_order", {"typed": _path(typed), "ordered": _path(ordered)}))
        return int(sorter.execute(f"SELECT count(*) FROM read_parquet('{_path(ordered)}')").fetchone()[0])


def replay_rows(ordered: Path, bootstrap_rows: int, batch_size: int) -> str:
    """The DuckDB query of raw_ratings' rows from `ordered` (see `order_typed`), in replay order:
    each row's `seq` and `batch`, -1 for the first `bootstrap_rows`, then `batch_size` rows a
    batch (`sql/raw_replay_rows.sql`)."""
    if batch_size <= 0:
        raise RecsysError(f"The batch size must be a positive number of rows, not {batch_size}.")
    fill = {"ordered": _path(ordered), "bootstrap_rows": bootstrap_rows, "batch_size": batch_size, "bootstrap_batch": BOOTSTRAP_BATCH}
    return sql_script("raw_replay_rows", fill)


def _path(path: Path) -> str:
    """A file path as the text of a SQL string literal."""
    return str(path).replace("'", "''")
