"""A generated archive read as typed ratings cut into day blocks: for tests and benchmarks that build
point-in-time examples without the stores."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys.lake.cleaning import clean_movies
from recsys.sources import readers


def read_blocks(path: Path, block_rows: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A generated archive as typed ratings cut into blocks of `block_rows` (days), and its movies.

    For tests and benchmarks that build point-in-time examples without the stores: `block` and
    `batch` number the blocks in file (time) order, `seq` numbers the ratings.
    """
    movies = clean_movies(readers.read_raw_movies(path)).clean
    ratings = (
        pl.read_csv(path / "ratings.csv", schema_overrides={"rating": pl.Float64})
        .rename({"userId": "user_id", "movieId": "movie_id"})
        .with_row_index("seq")
        .with_columns(pl.col("seq").cast(pl.Int64), block=(pl.col("seq") // block_rows).cast(pl.Int32))
        .with_columns(batch=pl.col("block"))
    )
    return ratings, movies
