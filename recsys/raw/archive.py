"""Typing the archive's text and cutting it into a bootstrap slice and daily batches (pure Polars).

The raw store keeps numbers where the text is a number, and the line's text (`raw_line`) for any
line that is not four numbers: nothing is lost, and the lake decides what is wrong with it. Typed
columns make the 32M-row load several times faster than text would (sorting, COPY, DuckDB's
ingest), which is why the raw layer types at all.

The replay order is (timestamp, userId, movieId); the source line breaks ties so the order is
total and a reload gives the same batches. Lines whose keys do not parse sort last: they still
belong to a batch, where the lake rejects them with a reason, so every line is accounted for.
"""

from __future__ import annotations

import polars as pl

from recsys.errors import RecsysError

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


def order_archive(raw_ratings: pl.DataFrame, bootstrap_rows: int, batch_size: int) -> pl.DataFrame:
    """Sort typed rows (see `type_fields`) into replay order and tag each with `seq` and `batch`."""
    if batch_size <= 0:
        raise RecsysError(f"The batch size must be a positive number of rows, not {batch_size}.")
    # A stable arg-sort keeps ties in line order, which is the line_no tie-break without a fourth
    # key; with one gather of every column it measured 2.9 s against 5.3 s for a plain
    # four-key sort at 32M rows.
    order = raw_ratings.select(
        pl.arg_sort_by(["timestamp", "user_id", "movie_id"], nulls_last=True, maintain_order=True)
    ).to_series()
    seq = pl.int_range(pl.len(), dtype=pl.Int64)
    batch = (
        pl.when(seq < bootstrap_rows)
        .then(pl.lit(BOOTSTRAP_BATCH, dtype=pl.Int64))
        .otherwise((seq - bootstrap_rows) // batch_size)
        .cast(pl.Int32)
    )
    return raw_ratings[order].select(
        seq.alias("seq"), batch.alias("batch"), "line_no", *FIELD_TYPES, "raw_line"
    )
