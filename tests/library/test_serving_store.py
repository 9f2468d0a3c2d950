"""The serving store's recommendation lists on both engines: one row per user, read back as
ranked rows, carried for the users a set lacks, and upgraded from the older row-per-movie layout;
and the retrieval candidates stored beside them."""

from __future__ import annotations

import numpy as np
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


def test_candidates_read_back_padded_only_while_they_hold(store_base):
    """Stage one's candidates come back as stored, short rows padded with -1 / -inf, for the users
    who have not rated after the batch they were searched for; a user's new search replaces theirs."""
    with open_store(store_urls(store_base)["features"]) as db:
        db.apply_schema("features")
        movies = np.array([[30, 10, 20], [40, -1, -1], [10, 20, -1]])
        scores = np.array([[3.0, 2.5, 1.0], [0.5, -np.inf, -np.inf], [2.0, 1.5, -np.inf]], dtype=np.float32)
        assert serving_store.write_candidates(db, "r1", 3, np.array([9, 7, 8]), movies, scores) == 3
        assert serving_store.write_candidates(db, "r2", 3, np.array([7]), movies[:1], scores[:1]) == 1
        users, back_movies, back_scores = serving_store.read_candidates(db, "r1", 3, 4)
        assert users.tolist() == [7, 8, 9]
        assert back_movies.tolist() == [[40, -1, -1, -1], [10, 20, -1, -1], [30, 10, 20, -1]]
        assert np.array_equal(back_scores, np.array([[0.5] + [-np.inf] * 3, [2.0, 1.5] + [-np.inf] * 2, [3.0, 2.5, 1.0, -np.inf]], dtype=np.float32))
        assert serving_store.read_candidates(db, "r1", 2, 4)[0].size == 0  # searched after batch 2
        # User 8 rates in batch 4: their candidates no longer hold as of 4, the others' do.
        # Only the columns the check reads: the feature store's examples carry every feature too.
        db.execute("DROP TABLE training_examples")
        db.execute("CREATE TABLE training_examples (user_id BIGINT, movie_id BIGINT, batch INTEGER)")
        db.insert("training_examples", pl.DataFrame({"user_id": [8], "movie_id": [30], "batch": [4]}).cast({"batch": pl.Int32}))
        assert serving_store.read_candidates(db, "r1", 4, 4)[0].tolist() == [7, 9]
        serving_store.write_candidates(db, "r1", 4, np.array([8]), movies[2:], scores[2:])
        assert db.scalar("SELECT count(*) FROM retrieval_candidates WHERE retrieval_version = 'r1' AND user_id = 8") == 1
        assert serving_store.read_candidates(db, "r1", 4, 4)[0].tolist() == [7, 8, 9]
        # A user who rated every movie has no candidates: no row, so a search next time.
        assert serving_store.write_candidates(db, "r1", 4, np.array([5]), np.full((1, 3), -1), np.full((1, 3), -np.inf)) == 0
        assert 5 not in serving_store.read_candidates(db, "r1", 4, 4)[0]
