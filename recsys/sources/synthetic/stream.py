"""The synthetic rating stream: ratings drawn in time order, chunk by chunk, with their exact error expectations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.errors import RecsysError
from recsys.genres import GENRES
from recsys.sources.synthetic.moments import rating_moments
from recsys.sources.synthetic.population import initial_count, rng_for

# Redraw only the movie of a repeated (user, movie) pair this many times before also redrawing
# the user (that user may have rated nearly every movie present so far).
_MOVIE_REDRAWS = 8
_MAX_REDRAW_ROUNDS = 2_000


def write_ratings(
    path: Path, n_ratings: int, seed: int, settings: dict[str, Any], population: dict[str, Any]
) -> dict[str, Any]:
    """Append ratings chunk by chunk; accumulate the exact error expectations as we go."""
    # Everyone who may rate, the drift scenarios' newcomers included.
    n_users, n_movies = population["user_bias"].size, population["item_bias"].size
    chunk_size = int(settings["chunk_size"])
    sigma_noise = float(settings["sigma_noise"])
    mu = float(settings["mu"])
    initial_users = initial_count(settings["n_users"], settings["initial_user_fraction"])
    initial_movies = initial_count(settings["n_movies"], settings["initial_movie_fraction"])

    floor_sum = 0.0
    prior_sum = 0.0
    # Per-user sums of d = E[r|m] - (mu + b_u + b_i): the best per-user offset is their mean.
    offset_sum = np.zeros(n_users)
    offset_square_sum = np.zeros(n_users)
    user_counts = np.zeros(n_users, dtype=np.int64)
    movie_rated = np.zeros(n_movies, dtype=bool)
    last_timestamp = int(settings["start_timestamp"])
    first_timestamp = last_timestamp
    # Sorted keys user * n_movies + movie of every pair written so far (unique_pairs only).
    written_pairs = np.empty(0, dtype=np.int64)

    with path.open("wb") as file:
        for chunk, start in enumerate(range(0, n_ratings, chunk_size)):
            rng = rng_for(seed, 1, chunk)
            index = np.arange(start, min(start + chunk_size, n_ratings), dtype=np.int64)
            size = index.size
            users = _draw_arrived(
                rng, index, n_ratings, initial_users, population["user_cumulative_weight"]
            )
            movies = _draw_arrived(
                rng, index, n_ratings, initial_movies, population["movie_cumulative_weight"]
            )
            _newcomers(rng, index, users, movies, population["arrivals"])
            if settings["unique_pairs"]:
                users, movies, chunk_pairs = _redraw_repeated_pairs(
                    rng,
                    index,
                    users,
                    movies,
                    written_pairs,
                    n_ratings,
                    user_pool=(initial_users, population["user_cumulative_weight"]),
                    movie_pool=(initial_movies, population["movie_cumulative_weight"]),
                    n_movies=n_movies,
                )
                written_pairs = _merge_sorted(written_pairs, chunk_pairs)

            gaps = rng.poisson(settings["mean_gap_seconds"], size)
            if chunk == 0:
                gaps[0] = 0  # the first rating is at start_timestamp exactly
            timestamps = last_timestamp + np.cumsum(gaps)
            last_timestamp = int(timestamps[-1])

            base = mu + population["user_bias"][users] + population["item_bias"][movies]
            latent = base + _genre_term(users, movies, population) + _drift_term(index, movies, settings["drift"], population)
            noisy = latent + rng.normal(0.0, sigma_noise, size)
            ratings = np.clip(np.round(noisy * 2.0) / 2.0, 0.5, 5.0)

            pl.DataFrame(
                {"userId": users + 1, "movieId": movies + 1, "rating": ratings, "timestamp": timestamps}
            ).write_csv(file, include_header=chunk == 0, float_precision=1)

            mean, second = rating_moments(latent, sigma_noise)
            variance = np.maximum(second - mean * mean, 0.0)
            offset = mean - base
            floor_sum += float(variance.sum())
            prior_sum += float((variance + offset * offset).sum())
            offset_sum += np.bincount(users, weights=offset, minlength=n_users)
            offset_square_sum += np.bincount(users, weights=offset * offset, minlength=n_users)
            user_counts += np.bincount(users, minlength=n_users)
            movie_rated[movies] = True

    rated = user_counts > 0
    # sum over a user's ratings of (d - mean d)^2 = sum d^2 - (sum d)^2 / n
    bias_residual = float(
        (offset_square_sum[rated] - offset_sum[rated] ** 2 / user_counts[rated]).sum()
    )
    return {
        "noise_floor_mse": floor_sum / n_ratings,
        "oracle_bias_mse": (floor_sum + bias_residual) / n_ratings,
        "oracle_bias_prior_mse": prior_sum / n_ratings,
        "n_users_rated": int(rated.sum()),
        "n_movies_rated": int(movie_rated.sum()),
        "first_timestamp": first_timestamp,
        "last_timestamp": last_timestamp,
    }


def _draw_arrived(
    rng: np.random.Generator,
    index: np.ndarray,
    n_ratings: int,
    initial: int,
    cumulative_weight: np.ndarray,
) -> np.ndarray:
    """0-based ids drawn by weight among the first `arrived(index)` ids, one per stream position.

    `initial` ids are present from the start; the rest arrive evenly, the last one in time for the
    final rating. Drawing a uniform on [0, total weight of the arrived prefix) and locating it in
    the cumulative weights samples within each row's own prefix, vectorised.
    """
    size = cumulative_weight.size
    arrived = initial + (size - initial) * (index + 1) // n_ratings
    arrived = np.minimum(arrived, size)
    target = rng.random(index.size) * cumulative_weight[arrived - 1]
    drawn = _searchsorted(cumulative_weight, target, side="right")
    return np.minimum(drawn, arrived - 1)


def _redraw_repeated_pairs(
    rng: np.random.Generator,
    index: np.ndarray,
    users: np.ndarray,
    movies: np.ndarray,
    written_pairs: np.ndarray,
    n_ratings: int,
    user_pool: tuple[int, np.ndarray],
    movie_pool: tuple[int, np.ndarray],
    n_movies: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Redraw every draw whose (user, movie) pair was already used; return the chunk's sorted keys.

    Earlier positions keep their pair; later repeats are redrawn in vectorised rounds over just
    the repeated positions until none is left (from the regular pools). `n_movies` counts every
    movie id that may occur, so a pair's key is unique.
    """
    users, movies = users.copy(), movies.copy()
    keys = users * n_movies + movies
    # In sorted order a repeat within the chunk sits right after its first (stable) occurrence.
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeated_sorted = _contains(written_pairs, sorted_keys)
    repeated_sorted[1:] |= sorted_keys[1:] == sorted_keys[:-1]  # stable: the earliest is kept
    accepted = sorted_keys[~repeated_sorted]
    repeated = np.empty(keys.size, dtype=bool)
    repeated[order] = repeated_sorted
    for round_number in range(_MAX_REDRAW_ROUNDS):
        positions = np.flatnonzero(repeated)
        if positions.size == 0:
            return users, movies, accepted
        if round_number >= _MOVIE_REDRAWS:
            users[positions] = _draw_arrived(rng, index[positions], n_ratings, *user_pool)
        movies[positions] = _draw_arrived(rng, index[positions], n_ratings, *movie_pool)
        candidate = users[positions] * n_movies + movies[positions]
        fresh = (
            _first_occurrence(candidate)
            & ~_contains(written_pairs, candidate)
            & ~_contains(accepted, candidate)
        )
        accepted = _merge_sorted(accepted, np.sort(candidate[fresh]))
        repeated[positions[fresh]] = False
    raise RecsysError(
        f"could not draw {n_ratings} distinct (user, movie) pairs from {user_pool[1].size} users and "
        f"{n_movies} movies as they arrive; ask for fewer ratings or a larger population."
    )


def _first_occurrence(keys: np.ndarray) -> np.ndarray:
    """True at the first position of each distinct key."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first_sorted = np.ones(keys.size, dtype=bool)
    first_sorted[1:] = sorted_keys[1:] != sorted_keys[:-1]
    first = np.empty(keys.size, dtype=bool)
    first[order] = first_sorted
    return first


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of `keys` is in `sorted_keys`."""
    if sorted_keys.size == 0:
        return np.zeros(keys.size, dtype=bool)
    where = np.minimum(_searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[where] == keys


def _searchsorted(haystack: np.ndarray, needles: np.ndarray, side: str = "left") -> np.ndarray:
    """np.searchsorted, with the needles sorted first.

    numpy's binary search reuses its last bound when the needles are sorted, which saves most of
    the cache misses in a large haystack (every pair written so far, or 200k cumulative weights):
    sorting first is several times faster for the pair set and ~1.5x for the weights.
    """
    order = np.argsort(needles)
    where = np.empty(needles.size, dtype=np.int64)
    where[order] = np.searchsorted(haystack, needles[order], side=side)
    return where


def _merge_sorted(sorted_keys: np.ndarray, new_sorted_keys: np.ndarray) -> np.ndarray:
    """Merge two sorted arrays in linear time (np.insert at the searchsorted positions)."""
    return np.insert(sorted_keys, np.searchsorted(sorted_keys, new_sorted_keys), new_sorted_keys)


def _newcomers(rng: np.random.Generator, index: np.ndarray, users: np.ndarray, movies: np.ndarray, arrivals: list[dict[str, Any]]) -> None:
    """From each new_population / catalog_growth scenario's row on, give its `share` of the ratings
    to its newcomers (by their activity or popularity weight), in place."""
    for arrival in arrivals:
        pick = np.flatnonzero((index >= arrival["from_row"]) & (rng.random(index.size) < arrival["share"]))
        weights = arrival["cumulative_weight"]
        drawn = arrival["first_id"] + np.minimum(_searchsorted(weights, rng.random(pick.size) * weights[-1], side="right"), weights.size - 1)
        (users if arrival["kind"] == "new_population" else movies)[pick] = drawn


def _drift_term(index: np.ndarray, movies: np.ndarray, drifts: list[dict[str, Any]], population: dict[str, Any]) -> np.ndarray:
    """The shifts of the drift scenarios in force at each rating (see DEFAULT_PARAMS["drift"])."""
    term = np.zeros(index.size)
    for drift in drifts:
        if drift["kind"] != "genre_appeal":
            continue
        genre = GENRES.index(drift["genre"])
        has_genre = (population["movie_genres"][movies] == genre).any(axis=1)
        term += np.where((index >= drift["from_row"]) & has_genre, float(drift["shift"]), 0.0)
    return term


def _genre_term(users: np.ndarray, movies: np.ndarray, population: dict[str, Any]) -> np.ndarray:
    """Mean of the user's preferences over the movie's genres (0 for movies without genres)."""
    genres = population["movie_genres"][movies]  # (n, 3), -1 where the slot is empty
    preferences = population["preferences"]
    total = np.zeros(users.size)
    for slot in range(3):  # three slots, not a loop over rows
        present = genres[:, slot] >= 0
        total += np.where(present, preferences[users, np.maximum(genres[:, slot], 0)], 0.0)
    count = population["genre_count"][movies]
    return np.divide(total, count, out=np.zeros(users.size), where=count > 0)


_MOMENT_TABLES: dict[float, tuple[float, float, np.ndarray, np.ndarray]] = {}
