"""The serving store's per-user rows on both engines: recommendation lists (one row per user) read
back as ranked rows, a set reading each user's newest row of its version as of its batch, the
rows the kept sets still read surviving retention; the upgrade from the older row-per-movie
layout; and the retrieval candidates stored beside them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from recsys.models.config import EMBEDDING_DIM
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


def record(db, version: str, as_of: int, created_at: int) -> None:
    """Record set (version, as_of) as complete, with the serving_sets row only its keys matter to here."""
    serving_store.record_serving_set(
        db,
        serving_store.ServingSet(
            model_version=version, as_of_batch=as_of, partition_key=str(as_of), embedding_backend=serving_store.ARRAY,
            embedding_dim=EMBEDDING_DIM, global_mean=3.5, users=2, movies=4, recommendations_per_user=3,
            created_at=dt.datetime(2025, 1, 1) + dt.timedelta(minutes=created_at), retrieval_version="r1",
        ),
    )  # fmt: skip


def test_a_set_reads_each_users_newest_row_and_retention_keeps_what_kept_sets_read(store_base):
    with open_store(store_urls(store_base)["features"]) as db:
        db.apply_schema("features")
        serving_store.prepare_embeddings(db, serving_store.ARRAY)
        vectors = {(user, batch): np.full(EMBEDDING_DIM, user + batch / 10, dtype=np.float32) for user in (7, 9) for batch in (3, 4, 5)}

        def write(batch: int, users: list[int]) -> None:
            lists = ROWS.filter(pl.col("user_id").is_in(users)).with_columns(pl.col("score") + batch)
            ids = np.array(users)
            serving_store.write_embeddings(db, "user", "v1", batch, ids, np.stack([vectors[u, batch] for u in users]), serving_store.ARRAY)
            # Written out of order: the stored list follows the rank.
            assert serving_store.write_recommendations(db, "v1", batch, lists.reverse()) == len(users)

        def expected(newest: dict[int, int]) -> pl.DataFrame:
            return pl.concat([ROWS.filter(pl.col("user_id") == u).with_columns(pl.col("score") + b) for u, b in sorted(newest.items())])

        def assert_set(batch: int, newest: dict[int, int]) -> None:
            assert db.query(READ, {"v": "v1", "a": batch}).equals(expected(newest))
            ids, read = serving_store.read_embeddings(db, "user", "v1", batch)
            assert ids.tolist() == sorted(newest) and np.array_equal(read, np.stack([vectors[u, b] for u, b in sorted(newest.items())]))
            assert serving_store.set_users(db, "recommendation_lists", "v1", batch) == len(newest)

        write(3, [7, 9])
        record(db, "v1", 3, created_at=0)
        write(4, [9])  # a day without a new champion: only user 9 rated
        record(db, "v1", 4, created_at=1)
        assert_set(3, {7: 3, 9: 3})
        assert_set(4, {7: 3, 9: 4})
        ids, read = serving_store.read_embeddings(db, "user", "v1", 4, users=np.array([9]))
        assert ids.tolist() == [9] and np.array_equal(read[0], vectors[9, 4])

        # Set 3 leaves retention: user 9's row of batch 3 is read by no kept set any more, user 7's
        # is still set 4's (and 5's, until user 7 rates).
        write(5, [7])
        record(db, "v1", 5, created_at=2)
        assert_set(4, {7: 3, 9: 4})
        assert_set(5, {7: 5, 9: 4})
        for table in ("recommendation_lists", "user_embeddings"):
            kept = db.query(f"SELECT user_id, as_of_batch FROM {table} ORDER BY as_of_batch, user_id").rows()
            assert kept == [(7, 3), (9, 4), (7, 5)], table
        assert db.query(READ, {"v": "v1", "a": 3}).height == 0  # no longer a set

        # A new champion's first set is everyone's, and the old version's rows go with its last set.
        db.execute("DELETE FROM serving_sets WHERE as_of_batch = 4")
        serving_store.write_recommendations(db, "v2", 6, ROWS)
        record(db, "v2", 6, created_at=3)
        assert db.query(READ, {"v": "v2", "a": 6}).equals(ROWS)
        assert db.scalar("SELECT count(*) FROM recommendation_lists WHERE model_version = 'v1'") == 2  # set 5's rows


def test_a_store_with_the_row_per_movie_layout_is_upgraded_to_lists(store_base):
    with open_store(store_urls(store_base)["features"]) as db:
        db.execute(
            "CREATE TABLE batch_recommendations (model_version TEXT NOT NULL, as_of_batch INTEGER NOT NULL, "
            "user_id BIGINT NOT NULL, rank SMALLINT NOT NULL, movie_id BIGINT NOT NULL, score REAL NOT NULL)"
        )
        db.insert("batch_recommendations", ROWS.reverse().select(pl.lit("v1").alias("model_version"), pl.lit(3, pl.Int32).alias("as_of_batch"), pl.all()))
        db.apply_schema("features")
        assert not db.table_exists("batch_recommendations")
        serving_store.prepare_embeddings(db, serving_store.ARRAY)
        record(db, "v1", 3, created_at=0)
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
