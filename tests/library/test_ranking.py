"""Ranking functions without Dagster: NDCG and recall against hand-computed values, exact top-N
of unrated movies against brute force, the popularity ranking and its per-user exclusion."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from recsys.models import ranking


def recs(rows: dict[int, list[int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(user, rank, movie) for user, movies in rows.items() for rank, movie in enumerate(movies, start=1)],
        schema={"user_id": pl.Int64, "rank": pl.Int16, "movie_id": pl.Int64},
        orient="row",
    )


def pairs(rows: dict[int, list[int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(user, movie) for user, movies in rows.items() for movie in movies],
        schema={"user_id": pl.Int64, "movie_id": pl.Int64},
        orient="row",
    )


def test_ndcg_and_recall_match_a_hand_computed_case():
    # User 1: relevant {1, 2}; list 3, 1, 4, 2 with k = 3 finds 1 at rank 2 only.
    #   DCG = 1/log2(3) = 0.63093, IDCG = 1 + 1/log2(3) = 1.63093, NDCG = 0.38685; recall = 1/2.
    # User 2: relevant {5} at rank 1: NDCG 1, recall 1.
    # User 3: relevant {9}, not in the list: 0 and 0. User 4 has no relevant movie: not counted.
    recommended = recs({1: [3, 1, 4, 2], 2: [5, 6, 7], 3: [1, 2, 3], 4: [1, 2, 3]})
    relevant = pairs({1: [1, 2], 2: [5], 3: [9]})
    figures = ranking.ranking_metrics(recommended, relevant, k=3)
    user_1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert figures["users"] == 3
    assert figures["ndcg"] == pytest.approx((user_1 + 1 + 0) / 3, abs=1e-12)
    assert figures["recall"] == pytest.approx((0.5 + 1 + 0) / 3, abs=1e-12)
    assert user_1 == pytest.approx(0.38685, abs=1e-5)


def test_recall_is_normalized_by_k_when_more_movies_are_relevant():
    # 4 relevant movies, k = 2, both slots hit: a perfect list, so recall and NDCG are 1.
    figures = ranking.ranking_metrics(recs({1: [1, 2, 3]}), pairs({1: [1, 2, 3, 4]}), k=2)
    assert figures == {"users": 1, "ndcg": pytest.approx(1.0), "recall": pytest.approx(1.0)}


def test_a_user_without_a_list_scores_zero_and_no_relevant_movie_means_no_figures():
    assert ranking.ranking_metrics(recs({}), pairs({7: [1]}))["ndcg"] == 0.0
    assert ranking.ranking_metrics(recs({1: [1]}), pairs({}))["users"] == 0


def test_top_n_unrated_is_the_brute_force_top_n_without_rated_movies():
    rng = np.random.default_rng(3)
    users, movies = rng.standard_normal((37, 8)).astype(np.float32), rng.standard_normal((50, 8)).astype(np.float32)
    user_ids, movie_ids = np.arange(100, 137), np.arange(1000, 1050)
    rated = pl.DataFrame(
        {"user_id": rng.choice(user_ids, 400), "movie_id": rng.choice(movie_ids, 400)}
    ).vstack(pl.DataFrame({"user_id": [999], "movie_id": [1000]}))  # an unknown user is ignored
    indptr, indices = ranking.rated_positions(rated, user_ids, movie_ids)
    columns, scores = ranking.top_n_unrated(users, movies, indptr, indices, n=5, block_users=8)
    seen = set(map(tuple, rated.rows()))
    for i, user in enumerate(user_ids):
        expected = [
            int(j) for j in np.argsort(-(movies @ users[i]), kind="stable") if (user, movie_ids[j]) not in seen
        ][:5]
        assert columns[i].tolist() == expected
        assert np.allclose(scores[i], movies[expected] @ users[i], atol=1e-5)
    listed = ranking.as_list(user_ids, movie_ids, columns, scores)
    assert listed.height == 37 * 5 and listed.join(rated, on=["user_id", "movie_id"]).height == 0


def test_a_user_who_rated_almost_everything_gets_a_short_list():
    movies = np.eye(4, dtype=np.float32)
    rated = pl.DataFrame({"user_id": [1, 1, 1], "movie_id": [10, 11, 12]})
    indptr, indices = ranking.rated_positions(rated, np.array([1]), np.array([10, 11, 12, 13]))
    columns, scores = ranking.top_n_unrated(np.ones((1, 4), np.float32), movies, indptr, indices, n=3)
    assert columns.tolist() == [[3, -1, -1]] and np.isneginf(scores[0, 1:]).all()
    assert ranking.as_list(np.array([1]), np.array([10, 11, 12, 13]), columns, scores)["movie_id"].to_list() == [13]


def test_popularity_ranks_by_count_or_mean_among_movies_with_enough_ratings():
    ratings = pl.DataFrame(
        {
            "movie_id": [1, 1, 1, 2, 2, 2, 2, 3, 4, 4, 4, 5, 5],
            "rating": [4.0, 4.0, 4.0, 5.0, 4.0, 2.0, 1.0, 5.0, 4.0, 4.0, 4.0, 5.0, 5.0],
        }
    )
    # Per movie as the stores count them (`state.movie_counts_between`).
    counts = ratings.group_by("movie_id").agg(pl.col("rating").mean().alias("mean_rating"), pl.len().cast(pl.Int64).alias("ratings"))
    # 3 has a single rating: below the threshold. 1 and 4 tie on count and mean: lower id first.
    by_count = ranking.rank_popularity(counts, min_ratings=2)
    assert by_count["movie_id"].to_list() == [2, 1, 4, 5]  # 2 is rated most, though rated worst
    assert by_count["rank"].to_list() == [1, 2, 3, 4]
    assert ranking.rank_popularity(counts, min_ratings=2, order="mean")["movie_id"].to_list() == [5, 1, 4, 2]


def test_popularity_for_a_user_skips_what_they_rated():
    popular = pl.DataFrame({"movie_id": [5, 6, 7, 8], "rank": [1, 2, 3, 4]})
    rated = pl.DataFrame({"user_id": [1, 1], "movie_id": [5, 7]})
    lists = ranking.unrated_from_ranking(popular, pl.Series([1, 2]), rated, n=2)
    assert lists.filter(pl.col("user_id") == 1)["movie_id"].to_list() == [6, 8]
    assert lists.filter(pl.col("user_id") == 2)["movie_id"].to_list() == [5, 6]


def test_rank_by_score_breaks_ties_by_id_and_puts_missing_scores_last():
    candidates = pl.DataFrame({"user_id": [1, 1, 1, 1], "movie_id": [4, 3, 2, 1], "score": [2.0, None, 2.0, 3.0]})
    assert ranking.rank_by_score(candidates, "score")["movie_id"].to_list() == [1, 2, 4, 3]


def test_a_global_ranking_minus_each_users_rated_movies_is_the_brute_force_list():
    rng = np.random.default_rng(1)
    popular = pl.DataFrame({"movie_id": rng.permutation(300), "rank": np.arange(1, 301)})
    # Heavy and light users; user 7 rated the whole ranking, users 50-59 nothing.
    rated = pl.concat([
        pl.DataFrame({"user_id": rng.integers(0, 50, 3000), "movie_id": rng.integers(0, 300, 3000)}),
        pl.DataFrame({"user_id": np.full(300, 7), "movie_id": np.arange(300)}),
    ])  # fmt: skip
    lists = ranking.unrated_from_ranking(popular, pl.Series(np.arange(60)), rated, n=10)
    order = popular.sort("rank")["movie_id"].to_list()
    for user in range(60):
        seen = set(rated.filter(pl.col("user_id") == user)["movie_id"].to_list())
        listed = lists.filter(pl.col("user_id") == user).sort("rank")
        assert listed["movie_id"].to_list() == [m for m in order if m not in seen][:10]
        assert listed["rank"].to_list() == list(range(1, listed.height + 1))
    assert lists.filter(pl.col("user_id") == 7).height == 0
