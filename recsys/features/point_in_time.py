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
before the first block of a range, walks the range's ratings once in time order (a compiled loop
that reads each rating's user and movie state, then adds the rating and its per-block delta) and
returns the examples plus the state after the range. One day is a range of one block; a backfill
is a range of many, with results identical to running its days one at a time.

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


def _with_genres(ratings: pl.DataFrame, features: pl.DataFrame) -> pl.DataFrame:
    return ratings.join(features.select("movie_id", *GENRE_FLAGS), on="movie_id", how="left", maintain_order="left").with_columns(
        pl.col(GENRE_FLAGS).fill_null(0)
    )


@dataclass(frozen=True)
class _Walked:
    """One key's side (users or movies) of a range, from `_walk_range`."""

    before: pl.DataFrame  # per rated row, in its order: its key's counts and means just before its period
    deltas: pl.DataFrame  # per (block, key): the block's own sums and counts
    after: pl.DataFrame  # per key the range rated, by key: its state after the range


def _walk_range(
    rated: pl.DataFrame,
    carried: pl.DataFrame,
    key: str,
    flags: list[str],
    state_before: pl.DataFrame,
    columns: list[str],
    period: str,
    no_mean: float,
) -> _Walked:
    """Walk a key's state through a range of ratings (`rated`: with block, timestamp and the
    `flags` its state counts), from the state before the range.

    `columns` alternate a sum and a count: the overall pair, then one pair per flag (a rating
    adds to a flag's pair when its movie has the flag). Rows with one value of `period` see the
    same state, the one before all of them: "timestamp" at event time (a second, across a block
    boundary too), "block" at batch time. `carried` (user_id, movie_id, rating, timestamp and the
    flags) are ratings already in that state whose timestamp is not earlier than the range's
    first (in a replay, those of the previous day that share the day's first second): the walk
    takes them out and adds them back in time order, so no rating sees another of its second.
    What a rated row sees is each pair's count and mean (its sum over its count; `no_mean` while
    the count is 0), named with "_mean" for "_sum": the sums themselves are never needed there.
    """
    dtype = rated.schema["block"]
    first_block = rated["block"].min() if rated.height else 0
    stream = pl.concat(
        [
            rated.select(key, "block", "timestamp", "rating", *flags),
            carried.select(key, pl.lit(first_block, dtype=dtype).alias("block"), "timestamp", "rating", *flags),
        ]
    )
    key_ids, key_index = np.unique(stream[key].to_numpy(), return_inverse=True)
    base = (
        pl.DataFrame({key: key_ids})
        .join(state_before.select(key, *columns), on=key, how="left", maintain_order="left")
        .select(pl.col(columns).fill_null(0))
    )
    # Copies: the walk writes them, and Polars hands out read-only views.
    sums = np.array(base.select(columns[0::2]).to_numpy(), dtype=np.float64, order="C")
    counts = np.array(base.select(columns[1::2]).to_numpy(), dtype=np.int64, order="C")
    width = len(flags) + 1
    out_means = np.empty((width, rated.height), dtype=np.float64)
    out_counts = np.empty((width, rated.height), dtype=np.int64)
    # At most one delta per rated row; zeroed pages the walk does not reach are never touched.
    delta_sums = np.zeros((rated.height, width), dtype=np.float64)
    delta_counts = np.zeros((rated.height, width), dtype=np.int64)
    delta_keys = np.empty(rated.height, dtype=np.int64)
    delta_blocks = np.empty(rated.height, dtype=np.int64)
    delta_of_key = np.full(len(key_ids), -1, dtype=np.int64)
    from recsys.features.walk import walk  # numba's import, only where features are built

    deltas = walk(
        stream.select(pl.arg_sort_by("block", "timestamp", maintain_order=True)).to_series().to_numpy(),
        stream[period].to_numpy().astype(np.int64),
        stream["block"].to_numpy().astype(np.int64),
        key_index.astype(np.int64),
        stream["rating"].to_numpy().astype(np.float64),
        np.ascontiguousarray(stream.select(flags).to_numpy(), dtype=np.int8).reshape(stream.height, len(flags)),
        sums,
        counts,
        no_mean,
        out_means,
        out_counts,
        delta_of_key,
        delta_keys,
        delta_blocks,
        delta_sums,
        delta_counts,
    )

    def pairs(names: list[str], sum_rows: np.ndarray, count_rows: np.ndarray) -> dict[str, np.ndarray]:
        return {c: (sum_rows if i % 2 == 0 else count_rows)[i // 2] for i, c in enumerate(names)}

    touched = delta_of_key >= 0
    return _Walked(
        before=pl.DataFrame(pairs([c.replace("_sum", "_mean") for c in columns], out_means, out_counts)),
        deltas=pl.DataFrame(
            {
                "block": pl.Series(delta_blocks[:deltas]).cast(dtype),
                key: key_ids[delta_keys[:deltas]],
                **pairs(columns, delta_sums[:deltas].T, delta_counts[:deltas].T),
            }
        ).sort("block", key),
        after=pl.DataFrame({key: key_ids[touched], **pairs(columns, sums[touched].T, counts[touched].T)}),
    )


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
    # At batch time a block sees all of the state before it, carried ratings included.
    if feature_time == "batch" or carried is None:
        carried = ratings.clear().select(RATING_COLUMNS)
    earlier = _with_genres(carried, features)
    period = "timestamp" if feature_time == "event" else "block"
    # The walks are compiled and let go of the GIL, so the two sides run on both cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        walking_users = pool.submit(_walk_range, rated, earlier, "user_id", GENRE_FLAGS, users_before, user_columns, period, 0.0)
        # A movie without ratings takes the global mean, which is per block: NaN marks it until then.
        walking_movies = pool.submit(_walk_range, rated, earlier, "movie_id", [], movies_before, movie_columns, period, np.nan)
        users, movies = walking_users.result(), walking_movies.result()
    frame = pl.concat([ratings, users.before, movies.before], how="horizontal")

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
            pl.col("m_mean").fill_nan(pl.col("global_mean")),
            # A movie missing from the features table has no genres and no known year.
            pl.col(GENRE_FLAGS).fill_null(0),
            pl.col("m_no_genre").fill_null(1),
            pl.col("m_year_z").fill_null(0.0),
            pl.col("m_year_known").fill_null(0),
        )
        .select(EXAMPLE_COLUMNS)
    )
    return Built(
        examples=examples,
        user_deltas=users.deltas,
        movie_deltas=movies.deltas,
        users_after=users.after,
        movies_after=movies.after,
        global_sum=global_sum + float(ratings["rating"].sum()),
        global_count=global_count + ratings.height,
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
