"""Point-in-time features and training examples (pure Polars).

A feature computed with the rating it describes would be target leakage, so every example sees
only ratings strictly before it. Two definitions of "before" (`FeatureTime`):

- event time (the default, what Feast's point-in-time join does at the row's own timestamp): a
  rating made at second t sees every earlier rating of its user and of its movie with timestamp
  < t, the same day included, never itself nor another rating of the same second. MovieLens
  users rate in sessions, dozens of movies within minutes, so on real data most of a user's
  history on a new day is from that same day: at batch time it would be invisible.
- batch time (kept as a baseline): a rating in block b (a daily batch, or a slice of the
  bootstrap) sees the state as it stood when block b began.

The global mean is the block's start in both: one number per day, as the service has it.

State is cumulative sums and counts, so it updates incrementally: `build_examples` takes the state
before the first block of a range, walks the range's blocks in one vectorized pass (per-block
deltas, cumulative sums per user and movie, an as-of join for "before this block") and returns the
examples plus the state after the range. One day is a range of one block; a backfill is a range
of many, with results identical to running its days one at a time.

User state, one row per user: u_sum, u_count (all ratings) and ug_sum_<genre>, ug_count_<genre>
(ratings of movies in that genre; a movie counts toward each of its genres). Movie state: m_sum,
m_count. Global state: the sum and count of all ratings.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from recsys.errors import RecsysError
from recsys.genres import GENRE_SLUGS, GENRES

# The rating a movie or the platform is assumed to have before any rating exists: the middle of
# MovieLens' long-run mean (3.5). Used for `global_mean` before the first rating and, through
# it, for a movie's mean before its first rating (a movie without ratings gets the global mean).
PRIOR_RATING = 3.5

GENRE_FLAGS = [f"mg_{s}" for s in GENRE_SLUGS]
USER_SUMS = ["u_sum", *[f"ug_sum_{s}" for s in GENRE_SLUGS]]
USER_COUNTS = ["u_count", *[f"ug_count_{s}" for s in GENRE_SLUGS]]
USER_STATE_COLUMNS = ["user_id", *[c for pair in zip(USER_SUMS, USER_COUNTS) for c in pair]]
MOVIE_STATE_COLUMNS = ["movie_id", "m_sum", "m_count"]
MOVIE_FEATURE_COLUMNS = ["movie_id", *GENRE_FLAGS, "m_no_genre", "m_year_z", "m_year_known"]

FeatureTime = Literal["event", "batch"]
FEATURE_TIMES: tuple[FeatureTime, ...] = ("event", "batch")
RATING_COLUMNS = ["user_id", "movie_id", "rating", "timestamp"]

EXAMPLE_KEYS = ["batch", "seq", "user_id", "movie_id", "rating", "timestamp"]
EXAMPLE_FEATURES = [
    "global_mean",
    "u_count",
    "u_mean",
    *[f"ug_count_{s}" for s in GENRE_SLUGS],
    *[f"ug_mean_{s}" for s in GENRE_SLUGS],
    "m_count",
    "m_mean",
    *GENRE_FLAGS,
    "m_no_genre",
    "m_year_z",
    "m_year_known",
]
EXAMPLE_COLUMNS = [*EXAMPLE_KEYS, *EXAMPLE_FEATURES]


def empty_user_state() -> pl.DataFrame:
    return pl.DataFrame(
        schema={c: (pl.Int64 if c == "user_id" or c in USER_COUNTS else pl.Float64) for c in USER_STATE_COLUMNS}
    )


def empty_movie_state() -> pl.DataFrame:
    return pl.DataFrame(schema={"movie_id": pl.Int64, "m_sum": pl.Float64, "m_count": pl.Int64})


@dataclass(frozen=True)
class YearScaler:
    """Release-year standardization, fitted once on the movies rated in the bootstrap slice."""

    mean: float
    std: float

    @classmethod
    def fit(cls, bootstrap_ratings: pl.DataFrame, movies: pl.DataFrame) -> YearScaler:
        years = movies.join(bootstrap_ratings.select("movie_id").unique(), on="movie_id")["year"].drop_nulls()
        if years.len() < 2 or not years.std():
            return cls(mean=float(years.mean() or 0.0), std=1.0)
        return cls(mean=float(years.mean()), std=float(years.std()))


def movie_features(movies: pl.DataFrame, scaler: YearScaler) -> pl.DataFrame:
    """Static movie features: one-hot genres, a no-genre flag, standardized release year.

    A movie without a known year gets year_z 0 (the mean) and m_year_known 0, so the model can
    tell "average year" from "unknown year".
    """
    genres = pl.col("genres").str.split("|")
    flags = [genres.list.contains(pl.lit(g)).fill_null(False).cast(pl.Int8).alias(f) for g, f in zip(GENRES, GENRE_FLAGS)]
    return (
        movies.with_columns(flags)
        .with_columns(
            m_no_genre=(pl.sum_horizontal(GENRE_FLAGS) == 0).cast(pl.Int8),
            m_year_z=((pl.col("year").cast(pl.Float64) - scaler.mean) / scaler.std).fill_null(0.0),
            m_year_known=pl.col("year").is_not_null().cast(pl.Int8),
        )
        .select(MOVIE_FEATURE_COLUMNS)
        .sort("movie_id")
    )


@dataclass(frozen=True)
class Built:
    """What a range of blocks produces: its examples and the state after its last block."""

    examples: pl.DataFrame
    user_deltas: pl.DataFrame  # per (block, user): the block's own sums and counts
    movie_deltas: pl.DataFrame  # per (block, movie)
    users_after: pl.DataFrame  # new state rows of every user the range touched
    movies_after: pl.DataFrame
    global_sum: float
    global_count: int


def _user_contributions() -> list[pl.Expr]:
    """What one rating adds to its user's state: the rating and a count, overall and per genre."""
    flag = [pl.col(f) for f in GENRE_FLAGS]
    return [
        pl.col("rating").alias("u_sum"),
        pl.lit(1, dtype=pl.Int64).alias("u_count"),
        *[(pl.col("rating") * f).alias(f"ug_sum_{s}") for f, s in zip(flag, GENRE_SLUGS)],
        *[f.cast(pl.Int64).alias(f"ug_count_{s}") for f, s in zip(flag, GENRE_SLUGS)],
    ]


def _movie_contributions() -> list[pl.Expr]:
    return [pl.col("rating").alias("m_sum"), pl.lit(1, dtype=pl.Int64).alias("m_count")]


def _with_genres(ratings: pl.DataFrame, features: pl.DataFrame) -> pl.DataFrame:
    return ratings.join(features.select("movie_id", *GENRE_FLAGS), on="movie_id", how="left", maintain_order="left").with_columns(
        pl.col(GENRE_FLAGS).fill_null(0)
    )


def _deltas(rated: pl.DataFrame, by: list[str], contributions: list[pl.Expr], columns: list[str]) -> pl.DataFrame:
    """Sums of the ratings' contributions per group `by` (e.g. per block and user)."""
    return rated.select(*by, *contributions).group_by(by).agg(pl.col(columns).sum()).select(*by, *columns)


def _before_each_block(
    ratings: pl.DataFrame, deltas: pl.DataFrame, key: str, state_before: pl.DataFrame, columns: list[str]
) -> pl.DataFrame:
    """Attach to every rating its key's state as it stood when the rating's block began."""
    cumulative = deltas.sort(key, "block").with_columns(pl.col(columns).cum_sum().over(key)).sort("block")
    # Strictly earlier blocks of this range only: a rating never sees its own block.
    within = ratings.sort("block").join_asof(
        cumulative.select("block", key, *columns),
        on="block",
        by=key,
        strategy="backward",
        allow_exact_matches=False,
        # Both sides are sorted by block just above; Polars cannot verify it when `by` is given
        # and would warn on every call.
        check_sortedness=False,
    )
    start = state_before.select(key, *[pl.col(c).alias(f"{c}__start") for c in columns])
    return within.join(start, on=key, how="left").with_columns(
        (pl.col(c).fill_null(0) + pl.col(f"{c}__start").fill_null(0)).alias(c) for c in columns
    )


def _before_each_second(
    rated: pl.DataFrame,
    carried: pl.DataFrame,
    key: str,
    contributions: list[pl.Expr],
    state_before: pl.DataFrame,
    columns: list[str],
) -> pl.DataFrame:
    """For every row of `rated` (ratings with what the contributions read, e.g. genre flags), in
    its row order: its key's state just before the rating's second.

    That is the state before the range, less `carried` (ratings already in that state whose
    timestamp is not earlier: in a replay, those of the previous day that share the day's first
    second), plus the range's and the carried ratings of earlier seconds. One pass over the
    ratings sorted by (key, timestamp): a running sum, taken at the first row of each second and
    less its value at the key's first row, is the key's sum over earlier seconds.

    The sums run in numpy, one column at a time: at 5M ratings and 40 user columns this is 1.6 GB
    a copy, and Polars' per-second group-by, windowed cumulative sums and joins made several.
    """
    n = rated.height
    # Only what the contributions read goes through the sort (the movie side reads the rating alone).
    inputs = sorted({name for expr in contributions for name in expr.meta.root_names()})
    stream = pl.concat([rated.select(key, "timestamp", *inputs), carried.select(key, "timestamp", *inputs)])
    order = stream.select(pl.arg_sort_by(key, "timestamp")).to_series().to_numpy()
    keys = stream[key].to_numpy()[order]
    seconds = stream["timestamp"].to_numpy()[order]
    new_key = np.ones(len(keys), dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=new_key[1:])
    new_second = new_key.copy()
    new_second[1:] |= seconds[1:] != seconds[:-1]
    rows = np.arange(len(keys))
    key_start = np.maximum.accumulate(np.where(new_key, rows, 0))
    second_start = np.maximum.accumulate(np.where(new_second, rows, 0))
    # Each key's state before the range, less its carried ratings, in sorted key order.
    carried_totals = _deltas(carried, [key], contributions, columns)
    base = (
        pl.DataFrame({key: keys[new_key]})
        .join(state_before.select(key, *columns), on=key, how="left", maintain_order="left")
        .join(carried_totals, on=key, how="left", suffix="__carried", maintain_order="left")
        .select((pl.col(c).fill_null(0) - pl.col(f"{c}__carried").fill_null(0)).alias(c) for c in columns)
    )
    key_index = np.cumsum(new_key) - 1
    sorted_values = stream[order].select(contributions).select(columns)
    # Sorted positions of `rated`'s rows (the carried ones are dropped) and where each goes back.
    if len(order) > n:
        from_rated = order < n
        destination = order[from_rated]
    else:
        from_rated, destination = slice(None), order

    def before(column: str) -> np.ndarray:
        values = sorted_values[column].to_numpy()
        # Everything before the row, all keys: one running sum, where a key's own starts at its
        # first row. Ratings are half stars, so these float sums are exact and so is each difference.
        running = np.cumsum(values)
        running -= values
        state = running[second_start]
        state -= running[key_start]
        state += base[column].to_numpy()[key_index]
        out = np.empty(n, dtype=state.dtype)
        out[destination] = state[from_rated]
        return out

    # numpy releases the GIL in these loops: two threads use both cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return pl.DataFrame(dict(zip(columns, pool.map(before, columns))))


def _mean(total: str, count: str, otherwise: pl.Expr) -> pl.Expr:
    return pl.when(pl.col(count) > 0).then(pl.col(total) / pl.col(count)).otherwise(otherwise)


def build_examples(
    ratings: pl.DataFrame,
    features: pl.DataFrame,
    users_before: pl.DataFrame,
    movies_before: pl.DataFrame,
    global_sum: float,
    global_count: int,
    *,
    feature_time: FeatureTime = "event",
    carried: pl.DataFrame | None = None,
) -> Built:
    """Examples for every rating of a range of blocks, from the state before the range.

    `ratings` has block, batch, seq, user_id, movie_id, rating, timestamp (block orders the days:
    the batch, or a bootstrap slice); `features` is `movie_features` output. `users_before` and
    `movies_before` hold the state rows (at least) of the users and movies in `ratings`.
    `carried` (event time only): the ratings before the range, already in that state, whose
    timestamp is not before the range's first one (user_id, movie_id, rating, timestamp), so
    that a rating never sees another of its own second across a day boundary.
    """
    if feature_time not in FEATURE_TIMES:
        raise RecsysError(f"Feature time must be one of {', '.join(FEATURE_TIMES)}, got {feature_time!r}.")
    ratings = ratings.sort("seq")
    rated = _with_genres(ratings, features)
    user_columns, movie_columns = USER_STATE_COLUMNS[1:], MOVIE_STATE_COLUMNS[1:]
    user_deltas = _deltas(rated, ["block", "user_id"], _user_contributions(), user_columns)
    movie_deltas = _deltas(ratings, ["block", "movie_id"], _movie_contributions(), movie_columns)
    if feature_time == "event":
        earlier = _with_genres(carried if carried is not None else ratings.clear().select(RATING_COLUMNS), features)
        users = _before_each_second(rated, earlier, "user_id", _user_contributions(), users_before, user_columns)
        movies = _before_each_second(rated, earlier, "movie_id", _movie_contributions(), movies_before, movie_columns)
        frame = pl.concat([ratings, users, movies], how="horizontal")
    else:
        frame = _before_each_block(ratings, user_deltas, "user_id", users_before, user_columns)
        frame = _before_each_block(frame, movie_deltas, "movie_id", movies_before, movie_columns).sort("seq")

    per_block = (
        ratings.group_by("block")
        .agg(pl.col("rating").sum().alias("g_sum"), pl.len().cast(pl.Int64).alias("g_count"))
        .sort("block")
        .with_columns(
            (pl.col("g_sum").cum_sum().shift(1, fill_value=0.0) + global_sum).alias("g_sum_before"),
            (pl.col("g_count").cum_sum().shift(1, fill_value=0) + global_count).alias("g_count_before"),
        )
    )
    global_mean = _mean("g_sum_before", "g_count_before", pl.lit(PRIOR_RATING))
    examples = (
        frame.join(per_block.select("block", global_mean.alias("global_mean")), on="block", how="left", maintain_order="left")
        .join(features, on="movie_id", how="left", maintain_order="left")
        .with_columns(
            u_mean=_mean("u_sum", "u_count", pl.lit(0.0)),
            m_mean=_mean("m_sum", "m_count", pl.col("global_mean")),
            **{f"ug_mean_{s}": _mean(f"ug_sum_{s}", f"ug_count_{s}", pl.lit(0.0)) for s in GENRE_SLUGS},
        )
        .with_columns(
            # A movie missing from the features table has no genres and no known year.
            pl.col(GENRE_FLAGS).fill_null(0),
            pl.col("m_no_genre").fill_null(1),
            pl.col("m_year_z").fill_null(0.0),
            pl.col("m_year_known").fill_null(0),
        )
        .select(EXAMPLE_COLUMNS)
    )
    users_after = _add_totals(users_before, user_deltas, "user_id", user_columns)
    movies_after = _add_totals(movies_before, movie_deltas, "movie_id", movie_columns)
    return Built(
        examples=examples,
        user_deltas=user_deltas,
        movie_deltas=movie_deltas,
        users_after=users_after,
        movies_after=movies_after,
        global_sum=global_sum + float(ratings["rating"].sum()),
        global_count=global_count + ratings.height,
    )


def _add_totals(before: pl.DataFrame, deltas: pl.DataFrame, key: str, columns: list[str]) -> pl.DataFrame:
    """State after the range for every key the range touched: state before plus all its deltas."""
    totals = deltas.group_by(key).agg(pl.col(columns).sum())
    return (
        totals.join(before, on=key, how="left", suffix="__before")
        .with_columns((pl.col(c) + pl.col(f"{c}__before").fill_null(0)).alias(c) for c in columns)
        .select(key, *columns)
        .sort(key)
    )


def subtract(state: pl.DataFrame, deltas: pl.DataFrame, key: str) -> pl.DataFrame:
    """State with some blocks' deltas taken back out (rewinding); keys left with no ratings drop."""
    columns = [c for c in state.columns if c != key]
    count = "u_count" if key == "user_id" else "m_count"
    totals = deltas.group_by(key).agg(pl.col(columns).sum())
    return (
        state.join(totals, on=key, how="left", suffix="__delta")
        .with_columns((pl.col(c) - pl.col(f"{c}__delta").fill_null(0)).alias(c) for c in columns)
        .select(key, *columns)
        .filter(pl.col(count) > 0)
    )


def user_features(users: pl.DataFrame, global_mean: float) -> pl.DataFrame:
    """Users' features from their state rows, defined exactly as in training examples.

    What the model sees of a user as of the state: used to embed every user for serving.
    """
    return users.select(
        "user_id",
        pl.lit(global_mean, dtype=pl.Float64).alias("global_mean"),
        "u_count",
        _mean("u_sum", "u_count", pl.lit(0.0)).alias("u_mean"),
        *[f"ug_count_{s}" for s in GENRE_SLUGS],
        *[_mean(f"ug_sum_{s}", f"ug_count_{s}", pl.lit(0.0)).alias(f"ug_mean_{s}") for s in GENRE_SLUGS],
    )



def cold_user(global_mean: float) -> pl.DataFrame:
    """The features of a user with no ratings (user id 0): what the model sees of a new user."""
    return user_features(pl.DataFrame({c: [0] for c in USER_STATE_COLUMNS}, schema=empty_user_state().schema), global_mean)


def catalog_features(features: pl.DataFrame, movies: pl.DataFrame, global_mean: float) -> pl.DataFrame:
    """Every movie of the catalog (`movie_features` rows) with its rating state (`movies`, which
    may lack unrated movies) as the model sees it; an unrated movie's mean is the global mean."""
    return (
        features.join(movies.select("movie_id", "m_sum", "m_count"), on="movie_id", how="left")
        .with_columns(pl.col("m_count").fill_null(0), pl.col("m_sum").fill_null(0.0), global_mean=pl.lit(global_mean, dtype=pl.Float64))
        .with_columns(m_mean=_mean("m_sum", "m_count", pl.col("global_mean")))
        .select("movie_id", "global_mean", "m_count", "m_mean", *GENRE_FLAGS, "m_no_genre", "m_year_z", "m_year_known")
        .sort("movie_id")
    )
