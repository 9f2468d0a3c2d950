"""The synthetic population: genres, movies, users and their latent parameters, and the settings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from recsys.errors import RecsysError
from recsys.genres import GENRES, NO_GENRES

# Relative genre frequencies, roughly the counts of genre tags in MovieLens-32M's movies.csv.
GENRE_WEIGHTS = {
    "Action": 9.7,
    "Adventure": 5.4,
    "Animation": 5.0,
    "Children": 4.5,
    "Comedy": 23.0,
    "Crime": 6.9,
    "Documentary": 9.4,
    "Drama": 34.0,
    "Fantasy": 3.8,
    "Film-Noir": 0.35,
    "Horror": 8.7,
    "IMAX": 0.2,
    "Musical": 1.1,
    "Mystery": 3.9,
    "Romance": 10.3,
    "Sci-Fi": 4.9,
    "Thriller": 11.8,
    "War": 2.3,
    "Western": 1.7,
}


# MovieLens-32M: 32,000,204 ratings by 200,948 users of 87,585 movies.
_ML32M_RATINGS, _ML32M_USERS, _ML32M_MOVIES = 32_000_204, 200_948, 87_585

DEFAULT_PARAMS: dict[str, Any] = {
    "mu": 3.5,
    "sigma_user": 0.35,
    "sigma_item": 0.35,
    "sigma_pref": 0.8,
    "sigma_noise": 0.5,
    "n_users": None,  # None: scaled from n_ratings, see population_size
    "n_movies": None,
    "popularity_alpha": 1.5,
    "popularity_offset": None,  # None: chosen so the top movie gets top_movie_share of the weight
    "top_movie_share": 0.004,
    "activity_sigma": 1.0,
    "genre_count_probs": [0.5, 0.33, 0.17],  # P(1 genre), P(2), P(3)
    "no_genre_fraction": 0.01,
    "initial_user_fraction": 0.05,
    "initial_movie_fraction": 0.2,
    "start_timestamp": 946_684_800,  # 2000-01-01T00:00:00Z
    "mean_gap_seconds": 5.0,
    "chunk_size": 1_000_000,
    "unique_pairs": True,  # each user rates a movie at most once, as in MovieLens
    # Sessions (MovieLens users rate dozens of movies within minutes): the stream is a run of
    # sessions, each one user's consecutive ratings. A new user arrives with a first session of
    # first_session_min + Geometric ratings (mean first_session_mean); later sessions, drawn by
    # activity among the users present, are Geometric with mean session_mean. False: every
    # rating draws its user anew (the generator before sessions, kept for comparison).
    "sessions": True,
    "first_session_min": 15,
    "first_session_mean": 40.0,
    "session_mean": 8.0,
    # Preference-driven choice: each session has a focal genre, drawn with probability
    # proportional to the genre's popularity mass times exp(focus_strength * the user's
    # preference for it); a genre_focus share of the session's ratings picks among that genre's
    # movies (by popularity), the rest among all. 0: movies chosen by popularity alone.
    "genre_focus": 0.5,
    "focus_strength": 1.5,
    # Drift scenarios, each from rating `from_row` of the stream on:
    # {"kind": "genre_appeal", "genre": "Comedy", "shift": -1.5}: the genre's movies are rated
    #   `shift` stars differently;
    # {"kind": "new_population", "count": 500, "share": 0.5}: `count` users who were not there
    #   before (drawn from the same priors) make a `share` of the ratings;
    # {"kind": "catalog_growth", "count": 300, "share": 0.3}: `count` new movies get a `share`.
    "drift": [],
}

# The generator before sessions and preference-driven choice: independent draws by activity and
# popularity (`recsys generate --independent`).
INDEPENDENT_PARAMS: dict[str, Any] = {"sessions": False, "genre_focus": 0.0}


def population_size(n_ratings: int) -> tuple[int, int]:
    """(n_users, n_movies) for `n_ratings`, matching MovieLens-32M at 32M ratings.

    Users keep ML-32M's users-per-rating ratio, but at least 3 * sqrt(n_ratings) so small sets are
    not too dense (that gives ml-100k's 943-ish users at 100k). Movies grow sublinearly, as the
    real MovieLens releases do (ml-100k: 1,682 movies, ml-1m: 3,706, ml-32m: 87,585, about
    n^0.685); a linear ratio would give a 100k set only 274 movies.
    """
    n_users = max(20, round(n_ratings * _ML32M_USERS / _ML32M_RATINGS), round(3 * math.sqrt(n_ratings)))
    n_movies = max(50, round(_ML32M_MOVIES * (n_ratings / _ML32M_RATINGS) ** 0.685))
    return n_users, n_movies



def settings_for(n_ratings: int, params: dict[str, Any]) -> dict[str, Any]:
    if isinstance(n_ratings, bool) or not isinstance(n_ratings, (int, np.integer)) or n_ratings < 1:
        raise RecsysError(f"n_ratings must be a positive whole number, got {n_ratings!r}.")
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise RecsysError(
            f"unknown synthetic data parameter(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_PARAMS)})."
        )
    settings = {**DEFAULT_PARAMS, **params}
    for key in ("n_users", "n_movies"):
        if settings[key] is not None and (isinstance(settings[key], bool) or int(settings[key]) < 1):
            raise RecsysError(f"{key} must be a positive whole number, got {settings[key]!r}.")
    default_users, default_movies = population_size(int(n_ratings))
    settings["n_users"] = int(settings["n_users"] or default_users)
    settings["n_movies"] = int(settings["n_movies"] or default_movies)
    if settings["popularity_offset"] is None:
        settings["popularity_offset"] = _popularity_offset(
            settings["n_movies"], float(settings["popularity_alpha"]), float(settings["top_movie_share"])
        )
    settings["genre_count_probs"] = [float(p) for p in settings["genre_count_probs"]]
    if settings["sigma_noise"] <= 0:
        raise RecsysError(f"sigma_noise must be positive, got {settings['sigma_noise']!r}.")
    if len(settings["genre_count_probs"]) != 3 or not math.isclose(sum(settings["genre_count_probs"]), 1.0):
        raise RecsysError("genre_count_probs must be three probabilities (1, 2, 3 genres) that sum to 1.")
    for drift in settings["drift"]:
        kind = drift.get("kind")
        if kind == "genre_appeal" and drift.get("genre") in GENRE_WEIGHTS:
            continue
        if kind in ("new_population", "catalog_growth") and int(drift.get("count", 0)) > 0 and 0 < float(drift.get("share", 0)) <= 1:
            continue
        raise RecsysError(
            f"Drift {drift!r} is neither a genre_appeal shift of one of the genres {', '.join(GENRE_WEIGHTS)} nor a "
            "new_population or catalog_growth with a positive count and a share in (0, 1]."
        )
    if settings["sessions"] and not (1 <= int(settings["first_session_min"]) <= settings["first_session_mean"] and settings["session_mean"] >= 1):
        raise RecsysError("Sessions need 1 <= first_session_min <= first_session_mean and session_mean >= 1.")
    if not 0 <= float(settings["genre_focus"]) <= 1:
        raise RecsysError(f"genre_focus must be a share in [0, 1], got {settings['genre_focus']!r}.")
    if int(settings["chunk_size"]) < 1:
        raise RecsysError(f"chunk_size must be positive, got {settings['chunk_size']!r}.")
    return settings


def _popularity_offset(n_movies: int, alpha: float, top_share: float) -> float:
    """The Zipf-Mandelbrot offset that gives the most popular movie `top_share` of the weight.

    Without an offset the top movie of a pure Zipf law takes several percent of all ratings, far
    more than any real movie (MovieLens' most rated holds 0.3-0.6%); the offset flattens the head.
    Found by bisection on the offset (a loop of iterations, each one vectorised over the movies).
    """
    ranks = np.arange(n_movies, dtype=np.float64)

    def share(offset: float) -> float:
        weights = (ranks + offset) ** -alpha
        return float(weights[0] / weights.sum())

    low, high = 0.0, float(n_movies)
    if share(high) > top_share:  # too few movies to get that flat: take the flattest head allowed
        return high
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if share(middle) > top_share else (low, middle)
    return round(high, 6)


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """An independent generator per purpose: the same (seed, key) always gives the same stream."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def make_population(n_ratings: int, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    rng = rng_for(seed, 0)
    # The drift scenarios' newcomers come after the regular users and movies, drawn from the same
    # priors; the regular arrival draws never pick them (see `arrivals` below).
    extra = {kind: sum(int(d["count"]) for d in settings["drift"] if d["kind"] == kind) for kind in ("new_population", "catalog_growth")}
    n_users, n_movies = settings["n_users"] + extra["new_population"], settings["n_movies"] + extra["catalog_growth"]
    n_genres = len(GENRES)

    # Genres: k distinct genres per movie by Gumbel top-k over the log frequencies.
    log_weights = np.log(np.array([GENRE_WEIGHTS[genre] for genre in GENRES]))
    keys = log_weights + rng.gumbel(size=(n_movies, n_genres))
    top3 = np.argsort(-keys, axis=1)[:, :3]
    genre_count = rng.choice([1, 2, 3], size=n_movies, p=settings["genre_count_probs"])
    genre_count[rng.random(n_movies) < settings["no_genre_fraction"]] = 0
    absent = np.arange(3)[None, :] >= genre_count[:, None]
    # Sorted so the text lists genres alphabetically, as MovieLens does; absent slots sort last.
    movie_genres = np.sort(np.where(absent, n_genres, top3), axis=1)
    movie_genres[movie_genres == n_genres] = -1

    item_bias = rng.normal(0.0, settings["sigma_item"], n_movies)
    popularity_rank = rng.permutation(n_movies)
    popularity = (popularity_rank + settings["popularity_offset"]) ** -settings["popularity_alpha"]

    user_bias = rng.normal(0.0, settings["sigma_user"], n_users)
    preferences = rng.normal(0.0, settings["sigma_pref"], (n_users, n_genres))
    activity = rng.lognormal(0.0, settings["activity_sigma"], n_users)

    # Release year: at most the year the movie enters the stream, usually a few years before.
    movie_ids = np.arange(1, n_movies + 1)
    regular_movies = settings["n_movies"]
    initial_movies = initial_count(regular_movies, settings["initial_movie_fraction"])
    late_share = np.maximum(movie_ids - 1 - initial_movies, 0) / max(regular_movies - initial_movies, 1)
    arrival_index = late_share * n_ratings  # the stream position where the movie becomes available
    arrivals, next_id = [], {"new_population": settings["n_users"], "catalog_growth": regular_movies}
    for drift in settings["drift"]:
        if drift["kind"] in next_id:
            first, count = next_id[drift["kind"]], int(drift["count"])
            weights = (activity if drift["kind"] == "new_population" else popularity)[first : first + count]
            arrivals.append({**drift, "first_id": first, "cumulative_weight": np.cumsum(weights)})
            if drift["kind"] == "catalog_growth":
                arrival_index[first : first + count] = drift["from_row"]
            next_id[drift["kind"]] += count
    arrival_time = settings["start_timestamp"] + arrival_index * settings["mean_gap_seconds"]
    arrival_year = 1970 + np.floor(arrival_time / 31_556_952).astype(np.int64)
    year = np.maximum(arrival_year - np.floor(rng.exponential(10.0, n_movies)).astype(np.int64), 1902)

    genre_text = pl.concat_str(
        [pl.col(f"genre_{slot}") for slot in range(3)], separator="|", ignore_nulls=True
    )
    movies = pl.DataFrame(
        {
            "movieId": movie_ids,
            "year": year,
            **{f"genre_{slot}": movie_genres[:, slot] for slot in range(3)},
        }
    ).with_columns(
        # Genre index -> name; the empty slot (-1) becomes null and is skipped by concat_str.
        pl.col(f"genre_{slot}").replace_strict(
            list(range(n_genres)), GENRES, default=None, return_dtype=pl.String
        )
        for slot in range(3)
    ).select(
        "movieId",
        # Some titles carry a comma or quotes, as real ones do, so movies.csv needs CSV quoting.
        pl.when(pl.col("movieId") % 37 == 0)
        .then(pl.format("Synthetic Movie {}, The ({})", "movieId", "year"))
        .when(pl.col("movieId") % 101 == 0)
        .then(pl.format('Synthetic Movie {}: "Redux" ({})', "movieId", "year"))
        .otherwise(pl.format("Synthetic Movie {} ({})", "movieId", "year"))
        .alias("title"),
        pl.when(genre_text == "").then(pl.lit(NO_GENRES)).otherwise(genre_text).alias("genres"),
    )
    truth_movies = movies.select("movieId", pl.Series("bias", item_bias), "genres")
    truth_users = pl.DataFrame(
        {
            "userId": np.arange(1, n_users + 1),
            "bias": user_bias,
            **{f"pref_{genre}": preferences[:, index] for index, genre in enumerate(GENRES)},
        }
    )
    # Per genre, its regular movies' ids in order and their cumulative popularity: a focal-genre
    # draw among the movies present is a draw in a prefix, as for the whole catalog.
    regular_genres = movie_genres[:regular_movies]
    genre_pools = []
    for genre in range(n_genres):
        ids = np.flatnonzero((regular_genres == genre).any(axis=1))
        genre_pools.append((ids, np.cumsum(popularity[ids])))
    return {
        "movies": movies,
        "truth_movies": truth_movies,
        "truth_users": truth_users,
        "movie_genres": movie_genres,
        "genre_count": genre_count,
        "item_bias": item_bias,
        "user_bias": user_bias,
        "preferences": preferences,
        "user_cumulative_weight": np.cumsum(activity[: settings["n_users"]]),
        "movie_cumulative_weight": np.cumsum(popularity[:regular_movies]),
        "genre_pools": genre_pools,
        # log of each genre's share of the popularity: the focal genre's prior.
        "genre_log_mass": np.log(np.array([max(cw[-1] if cw.size else 0.0, 1e-300) for _, cw in genre_pools])),
        # The drift scenarios' newcomers: their kind, first id, weights and when they come.
        "arrivals": arrivals,
    }


def initial_count(size: int, fraction: float) -> int:
    return min(size, max(1, math.ceil(size * fraction)))
