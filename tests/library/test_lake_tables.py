"""Cleaning batches into the lake on real stores: a duplicate split across a batch boundary is
rejected like one inside a batch, and every raw row is still accounted for."""

from __future__ import annotations

import datetime as dt

import polars as pl

from recsys.calendar import Calendar
from recsys.lake.tables import archive_info, clean_batch
from recsys.settings import store_urls
from recsys.stores import open_store

CALENDAR = Calendar(dt.date(2025, 1, 1))


def raw_batch(batch: int, first_seq: int, rows: list[tuple[int, int, float, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "seq": list(range(first_seq, first_seq + len(rows))),
            "batch": [batch] * len(rows),
            "line_no": list(range(first_seq + 2, first_seq + 2 + len(rows))),
            "user_id": [r[0] for r in rows],
            "movie_id": [r[1] for r in rows],
            "rating": [r[2] for r in rows],
            "timestamp": [r[3] for r in rows],
            "raw_line": [None] * len(rows),
        },
        schema={"seq": pl.Int64, "batch": pl.Int32, "line_no": pl.Int64, "user_id": pl.Int64, "movie_id": pl.Int64,
                "rating": pl.Float64, "timestamp": pl.Int64, "raw_line": pl.String},
    )  # fmt: skip


def test_a_duplicate_across_the_batch_boundary_is_rejected_once(store_base):
    urls = store_urls(store_base)
    t = 900_000_000
    with open_store(urls["raw"]) as raw, open_store(urls["lake"]) as lake:
        raw.apply_schema("raw")
        lake.apply_schema("lake")
        # Day 0 ends and day 1 begins in the same second: user 1's rating of movie 10 is in both,
        # once exactly repeated, once (user 2) with another rating.
        raw.insert("raw_ratings", raw_batch(0, 0, [(3, 11, 3.0, t - 5), (1, 10, 4.0, t), (2, 10, 2.0, t)]))
        raw.insert("raw_ratings", raw_batch(1, 3, [(1, 10, 4.0, t), (2, 10, 5.0, t), (4, 11, 1.5, t + 9)]))
        raw.insert("raw_archive", pl.DataFrame({
            "source": ["test"], "layout": ["ml-latest"], "rows": [6], "movies": [2], "bootstrap_rows": [0],
            "batch_size": [3], "batches": [2], "max_timestamp": [t + 100], "loaded_at": [dt.datetime(2025, 1, 1)],
        }))  # fmt: skip
        lake.insert("lake_movies", pl.DataFrame({"movie_id": [10, 11], "title": ["A", "B"], "year": [2000, 2001], "genres": ["Drama", "Comedy"]}))
        info = archive_info(raw)
        clean_batch(0, raw, lake, info, CALENDAR)
        outcome = clean_batch(1, raw, lake, info, CALENDAR)
        assert (outcome.rows_raw, outcome.rows_clean, outcome.rows_rejected) == (3, 1, 2)
        rejects = lake.query("SELECT seq, reason FROM lake_rejects ORDER BY seq")
        assert rejects.rows() == [(3, "duplicate"), (4, "conflicting_duplicate")]
        kept = lake.query("SELECT user_id, movie_id, timestamp, count(*) AS n FROM lake_ratings GROUP BY user_id, movie_id, timestamp")
        assert (kept["n"] == 1).all() and kept.height == 4

        # Cleaning day 1 again gives the same answer (idempotent), and day 0 is never judged by day 1.
        again = clean_batch(1, raw, lake, info, CALENDAR)
        assert (again.rows_clean, again.rows_rejected) == (1, 2)
        assert clean_batch(0, raw, lake, info, CALENDAR).rows_clean == 3
