"""The serving store's recommendation lists on both engines: one row per user, read back as
ranked rows, carried for the users a set lacks, and upgraded from the older row-per-movie layout."""

from __future__ import annotations

import polars as pl

from recsys.serving import store as serving_store
from recsys.settings import store_urls
from recsys.stores import open_store

ROWS = pl.DataFrame(
    {
        "user_id": [7, 7, 7, 9, 9],
        "rank": [1, 2, 3, 1, 2],
        "movie_id": [30, 10, 20, 10, 40],
        "score": [4.5, 4.25, 3.0, 5.0, 0.5],
    },
    schema={"user_id": pl.Int64, "rank": pl.Int16, "movie_id": pl.Int64, "score": pl.Float32},
)
READ = "SELECT user_id, rank, movie_id, score FROM recommendation_rows WHERE model_version = $v AND as_of_batch = $a ORDER BY user_id, rank"


def test_lists_read_back_as_ranked_rows_and_are_carried_for_missing_users(store_base):
    with open_store(store_urls(store_base)["features"]) as db:
        db.apply_schema("features")
        # Written out of order: the stored list follows the rank.
        assert serving_store.write_recommendations(db, "v1", 3, ROWS.reverse()) == 2
        assert db.query(READ, {"v": "v1", "a": 3}).equals(ROWS)
        fresh = pl.DataFrame({"user_id": [9], "rank": [1], "movie_id": [50], "score": [2.0]}).cast({"rank": pl.Int16, "score": pl.Float32})
        serving_store.write_recommendations(db, "v1", 4, fresh)
        assert serving_store.carry_recommendations(db, "v1", 3, 4) == 1  # user 7's list; user 9 has a new one
        expected = pl.concat([ROWS.filter(pl.col("user_id") == 7), fresh])
        assert db.query(READ, {"v": "v1", "a": 4}).equals(expected)


def test_a_store_with_the_row_per_movie_layout_is_upgraded_to_lists(store_base):
    with open_store(store_urls(store_base)["features"]) as db:
        db.execute(
            "CREATE TABLE batch_recommendations (model_version TEXT NOT NULL, as_of_batch INTEGER NOT NULL, "
            "user_id BIGINT NOT NULL, rank SMALLINT NOT NULL, movie_id BIGINT NOT NULL, score REAL NOT NULL)"
        )
        db.insert("batch_recommendations", ROWS.reverse().select(pl.lit("v1").alias("model_version"), pl.lit(3, pl.Int32).alias("as_of_batch"), pl.all()))
        db.apply_schema("features")
        assert not db.table_exists("batch_recommendations")
        assert db.query(READ, {"v": "v1", "a": 3}).equals(ROWS)
        db.apply_schema("features")  # nothing left to upgrade: the lists stay as they are
        assert db.scalar("SELECT count(*) FROM recommendation_lists") == 2
