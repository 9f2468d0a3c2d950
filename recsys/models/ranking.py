"""Ranking: top-N of the movies a user has not rated, the popularity ranking, NDCG@k and recall@k.

Pure functions over numpy arrays and Polars frames; nothing here reads a store or knows Dagster.

A recommendation list is a frame (user_id, rank, movie_id) with rank 1 first. Relevance is
binary, as in the issue: a movie is relevant to a user when the user rated it at least
`RELEVANT_RATING` in the batch being evaluated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np
import polars as pl

RELEVANT_RATING = 4.0
K = 10  # the cut-off of the reported NDCG@10 and recall@10

# faiss's flat index scores a search of fewer queries than this (times the dimension, since
# faiss 1.15: 128,000) one query at a time instead of through BLAS, about 4x slower per query
# here: 305 against 67 us per query for 805 to 2,450 users over MovieLens-32M's 87k movies at
# 32 dimensions (by hand). A day's searches are a few thousand users, often in such a block.
# faiss's earlier default, 20, keeps BLAS for them; the answers are the same exact top-N.
faiss.cvar.distance_compute_blas_threshold = 20


PopularityOrder = Literal["count", "mean"]


@dataclass(frozen=True)
class PopularityWindow:
    """Which recent ratings the popularity ranking (the cold-start fallback) is computed from.

    The fallback ranks by count, what people choose to watch: on real MovieLens 100K the best
    rated movies (order "mean", still reported beside it) rank the day's liked movies about half
    as well."""

    days: int = 14  # daily batches of ratings (the bootstrap counts as one)
    min_ratings: int = 20  # ratings a movie needs in that window to be ranked at all


def rank_popularity(counts: pl.DataFrame, min_ratings: int, order: PopularityOrder = "count") -> pl.DataFrame:
    """Movies rated at least `min_ratings` times, from per-movie aggregates (movie_id,
    mean_rating, ratings, counted by the store that holds the ratings): most rated first
    (order="count") or best mean rating first (order="mean").

    Ties go to the other criterion, then the lower id, so the ranking is deterministic.
    Returns movie_id, rank (1 = best), mean_rating, ratings.
    """
    keys = ["ratings", "mean_rating"] if order == "count" else ["mean_rating", "ratings"]
    return (
        counts.filter(pl.col("ratings") >= min_ratings)
        .sort([*keys, "movie_id"], descending=[True, True, False])
        .with_row_index("rank", offset=1)
        .select("movie_id", pl.col("rank").cast(pl.Int32), "mean_rating", "ratings")
    )


def catalog_positions(movie_ids: np.ndarray, catalog: np.ndarray) -> np.ndarray:
    """Positions in the sorted `catalog` of an array of movie ids; -1 for -1 and for ids not in it."""
    positions = np.minimum(np.searchsorted(catalog, movie_ids), len(catalog) - 1)
    return np.where((movie_ids >= 0) & (catalog[positions] == movie_ids), positions, -1).astype(np.int32)


def rated_positions(rated: pl.DataFrame, user_ids: np.ndarray, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (user_id, movie_id) pairs of `rated` as a CSR over positions: for user row i, the movie
    columns rated are indices[indptr[i]:indptr[i + 1]] (unordered, possibly repeated). Pairs of
    other users or movies are ignored."""
    users = pl.DataFrame({"user_id": user_ids, "row": np.arange(len(user_ids), dtype=np.int64)})
    movies = pl.DataFrame({"movie_id": movie_ids, "column": np.arange(len(movie_ids), dtype=np.int32)})
    # A pair listed twice only masks its movie twice, so no unique() (a third of the time here).
    pairs = rated.select("user_id", "movie_id").join(users, on="user_id").join(movies, on="movie_id").select("row", "column").sort("row")
    counts = np.bincount(pairs["row"].to_numpy(), minlength=len(user_ids))
    indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, pairs["column"].to_numpy().astype(np.int32)


def top_n_unrated(
    user_vectors: np.ndarray,
    movie_vectors: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    n: int,
    block_users: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """For each user, the `n` movies with the highest dot product that the user has not rated.

    Returns (columns, scores), both (users, n): movie positions in `movie_vectors` best first, and
    their dot products. Where a user has fewer than n unrated movies the row ends in -1 / -inf.

    Exact, with faiss's flat inner-product index, which cannot leave out a different set of movies
    per user, hence two passes: every user's top 2n, the rated ones dropped; then, for the users
    that left fewer than n, their top n + (movies they rated), which must hold n unrated ones. On
    32-dimensional vectors over MovieLens-32M's catalog this is 3 to 5 times as fast as TensorFlow's matrix
    product + mask + `top_k` (benchmarks/batch_recommendations.py times both side by side).
    """
    users, movies = len(user_vectors), len(movie_vectors)
    columns = np.full((users, n), -1, dtype=np.int32)
    scores = np.full((users, n), -np.inf, dtype=np.float32)
    if users == 0 or movies == 0 or n == 0:
        return columns, scores
    index = faiss.IndexFlatIP(movie_vectors.shape[1])
    index.add(np.ascontiguousarray(movie_vectors, dtype=np.float32))
    # One machine code for every caller (numba compiles a version per argument type).
    indptr, indices = np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int32)
    rated_counts = np.diff(indptr)
    short = []
    for start in range(0, users, block_users):
        rows = np.arange(start, min(start + block_users, users))
        found = _search_unrated(index, user_vectors, rows, min(movies, 2 * n), n, indptr, indices, columns, scores)
        short.append(rows[(found < n) & (rated_counts[rows] + found < movies)])
    # Second pass, fewest rated first, so a block's fetch (n + its largest rated count) stays near
    # what each of its users needs; a block holds about `block_users * 2n` fetched entries.
    retry = np.concatenate(short)
    retry = retry[np.argsort(rated_counts[retry], kind="stable")]
    start = 0
    while start < len(retry):
        fetch = int(min(movies, n + rated_counts[retry[start]]))
        stop = min(len(retry), start + max(1, block_users * 2 * n // fetch))
        fetch = int(min(movies, n + rated_counts[retry[stop - 1]]))
        _search_unrated(index, user_vectors, retry[start:stop], fetch, n, indptr, indices, columns, scores)
        start = stop
    return columns, scores


def _search_unrated(
    index: faiss.Index,
    user_vectors: np.ndarray,
    rows: np.ndarray,
    fetch: int,
    n: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    columns: np.ndarray,
    scores: np.ndarray,
) -> np.ndarray:
    """Search the top `fetch` movies of users `rows`, keep their first n unrated ones in
    `columns`/`scores`, and return how many each kept."""
    from recsys.models.unrated import keep_unrated  # numba's import, only where rankings are made

    found_scores, found = index.search(np.ascontiguousarray(user_vectors[rows], dtype=np.float32), fetch)
    kept = np.zeros(len(rows), dtype=np.int64)
    rated = np.zeros(index.ntotal, dtype=np.bool_)
    keep_unrated(found, found_scores, rows, indptr, indices, n, columns, scores, rated, kept)
    return kept


def as_list(user_ids: np.ndarray, movie_ids: np.ndarray, columns: np.ndarray, scores: np.ndarray) -> pl.DataFrame:
    """The output of `top_n_unrated` as a frame (user_id, rank, movie_id, score), without empty slots."""
    users, n = columns.shape
    frame = pl.DataFrame(
        {
            "user_id": np.repeat(np.asarray(user_ids, dtype=np.int64), n),
            "rank": np.tile(np.arange(1, n + 1, dtype=np.int16), users),
            "column": columns.reshape(-1),
            "score": scores.reshape(-1),
        }
    ).filter(pl.col("column") >= 0)
    return frame.select(
        "user_id", "rank", pl.Series("movie_id", np.asarray(movie_ids, dtype=np.int64))[frame["column"]], "score"
    )


def unrated_from_ranking(ranking: pl.DataFrame, users: pl.Series, rated: pl.DataFrame, n: int) -> pl.DataFrame:
    """Each user's top-n of a global ranking (movie_id, rank) after dropping the movies they rated.

    How the popularity ranking is personalized only by exclusion: everyone gets the same list
    minus what they have seen. A user's first n unrated movies lie within the ranking's first
    n + (movies of it they rated), so that head is all a user's list is drawn from: joins over
    about users x n + rated pairs, with no search over the catalog.
    Returns user_id, rank (1..n), movie_id.
    """
    ordered = ranking.sort("rank").select("movie_id").with_row_index("position")
    seen = rated.select("user_id", "movie_id").unique().join(ordered, on="movie_id")
    heads = (
        pl.DataFrame({"user_id": users.unique().sort()})
        .join(seen.group_by("user_id").len("rated"), on="user_id", how="left")
        .select("user_id", pl.int_ranges(0, pl.min_horizontal(n + pl.col("rated").fill_null(0), ordered.height), dtype=pl.UInt32).alias("position"))
        .explode("position")
    )
    return (
        heads.join(ordered, on="position")
        .join(seen, on=["user_id", "movie_id"], how="anti")
        .sort("user_id", "position")
        .group_by("user_id", maintain_order=True)
        .head(n)
        .select("user_id", (pl.int_range(pl.len()).over("user_id") + 1).cast(pl.Int16).alias("rank"), "movie_id")
    )


def rank_by_score(candidates: pl.DataFrame, score: str) -> pl.DataFrame:
    """Each user's candidates (user_id, movie_id, `score`) ranked best first, ties by movie id;
    a null score ranks last. Returns user_id, rank, movie_id."""
    return (
        candidates.sort(["user_id", score, "movie_id"], descending=[False, True, False], nulls_last=True)
        .with_columns(pl.int_range(1, pl.len() + 1).over("user_id").cast(pl.Int16).alias("rank"))
        .select("user_id", "rank", "movie_id")
    )


def ranking_metrics(recommended: pl.DataFrame, relevant: pl.DataFrame, k: int = K) -> dict[str, float | int]:
    """Mean NDCG@k and recall@k over the users in `relevant` (user_id, movie_id).

    NDCG@k = DCG@k / IDCG@k with binary gains: DCG@k sums 1 / log2(rank + 1) over the relevant
    movies in a user's top k, IDCG@k is that sum for a perfect list, over min(k, relevant) ranks.
    recall@k = relevant movies in the top k / min(k, relevant), so a perfect list scores 1 even
    for users with more than k relevant movies. A user without recommendations scores 0.
    """
    relevant = relevant.select("user_id", "movie_id").unique()
    per_user = relevant.group_by("user_id").len("relevant")
    if per_user.height == 0:
        return {"users": 0, "ndcg": math.nan, "recall": math.nan}
    hits = (
        recommended.filter(pl.col("rank") <= k)
        .join(relevant, on=["user_id", "movie_id"])
        .group_by("user_id")
        .agg((1.0 / (pl.col("rank").cast(pl.Float64) + 1.0).log(2)).sum().alias("dcg"), pl.len().alias("hits"))
    )
    ideal_prefix = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    scored = per_user.join(hits, on="user_id", how="left").with_columns(
        pl.col("dcg").fill_null(0.0),
        pl.col("hits").fill_null(0),
        pl.min_horizontal(pl.col("relevant"), pl.lit(k)).alias("ideal_count"),
    )
    idcg = ideal_prefix[scored["ideal_count"].to_numpy()]
    ndcg = scored["dcg"].to_numpy() / idcg
    recall = scored["hits"].to_numpy() / scored["ideal_count"].to_numpy()
    return {"users": scored.height, "ndcg": float(ndcg.mean()), "recall": float(recall.mean())}
