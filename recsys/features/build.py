"""FEATURE layer: point-in-time movie features, user profiles and training examples, built per batch.

A daily batch folds its lake rows into the cumulative state (`recsys.features.state`) after
building its examples from the state as it stood before. Days must go in order: a batch whose
previous day is not built, or whose lake batch is missing, fails with a sentence saying what to
materialize. Rebuilding days that are already built rewinds the state by taking their stored
deltas back out, so it is allowed only when the run rebuilds through the latest built day
(otherwise later days would keep features computed from the old state).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import polars as pl

from recsys.calendar import BOOTSTRAP_BATCH, Calendar
from recsys.errors import RecsysError
from recsys.features import suites
from recsys.features.point_in_time import (
    FEATURE_TIMES,
    MOVIE_FEATURE_COLUMNS,
    RATING_COLUMNS,
    FeatureTime,
    YearScaler,
    build_examples,
    empty_movie_state,
    empty_user_state,
    movie_features,
)
from recsys.features.state import (
    FeatureState,
    feature_state,
    replace_state_rows,
    rewind,
    stage_ids,
    write_state,
)
from recsys.lake.cleaning import CLEAN_RATINGS_SCHEMA
from recsys.quality.gx import validate_all
from recsys.quality.results import SuiteResult
from recsys.stores import Store

LAKE_COLUMNS = "batch, seq, user_id, movie_id, rating, timestamp"

def build_movie_features(lake: Store, features: Store) -> pl.DataFrame:
    """Fit the year scaler on the movies rated in the bootstrap slice and store movie features."""
    movies = lake.query("SELECT movie_id, title, year, genres FROM lake_movies")
    bootstrap = lake.query("SELECT DISTINCT movie_id FROM lake_ratings WHERE batch = $batch", {"batch": BOOTSTRAP_BATCH})
    if bootstrap.height == 0:
        raise RecsysError("The lake holds no bootstrap slice yet: materialize lake_bootstrap first.")
    scaler = YearScaler.fit(bootstrap, movies)
    table = movie_features(movies, scaler)
    params = pl.DataFrame({"name": ["year_mean", "year_std"], "value": [scaler.mean, scaler.std]})
    with features.transaction():
        features.execute("DELETE FROM movie_features")
        features.execute("DELETE FROM feature_params")
        features.insert("movie_features", table)
        features.insert("feature_params", params)
    return table


def stored_movie_features(features: Store) -> pl.DataFrame:
    """The movie features table; a sentence saying what to materialize when it is empty."""
    table = features.query(f"SELECT {', '.join(MOVIE_FEATURE_COLUMNS)} FROM movie_features")
    if table.height == 0:
        raise RecsysError("The feature store has no movie features yet: materialize movie_features first.")
    return table


def build_bootstrap(lake: Store, features: Store, block_rows: int, feature_time: FeatureTime = "event") -> pl.DataFrame:
    """Start the feature store over from the bootstrap slice, with features at `feature_time`.

    Inside the slice, time is cut into blocks of `block_rows` ratings (the daily batch size), and
    each block is a day: its examples see earlier blocks (and, at event time, earlier seconds
    of their own block), exactly as a day sees earlier days. The feature time is recorded in
    feature_params, so every later day is built the same way. Every later day's state and
    examples are cleared: they were built on the old start.
    """
    ratings = lake.query(
        f"SELECT {LAKE_COLUMNS} FROM lake_ratings WHERE batch = $batch ORDER BY seq", {"batch": BOOTSTRAP_BATCH}
    )
    if ratings.height == 0:
        raise RecsysError("The lake holds no bootstrap slice yet: materialize lake_bootstrap first.")
    ratings = ratings.with_columns(block=(pl.int_range(pl.len()) // block_rows).cast(pl.Int32))
    built = build_examples(
        ratings, stored_movie_features(features), empty_user_state(), empty_movie_state(), 0.0, 0, feature_time=feature_time
    )
    with features.transaction():
        features.execute("DELETE FROM feature_params WHERE name = 'event_time'")
        features.insert("feature_params", pl.DataFrame({"name": ["event_time"], "value": [float(feature_time == "event")]}))
        for table in ("user_state", "movie_state", "user_deltas", "movie_deltas", "training_examples"):
            features.clear(table)
        features.insert("user_state", built.users_after)
        features.insert("movie_state", built.movies_after)
        batch = pl.lit(BOOTSTRAP_BATCH, dtype=pl.Int32).alias("batch")
        features.insert("user_deltas", built.users_after.select(batch, pl.all()))
        features.insert("movie_deltas", built.movies_after.select(batch, pl.all()))
        with features.indexes_built_after("training_examples"):
            features.insert("training_examples", built.examples)
        write_state(features, BOOTSTRAP_BATCH, built.global_sum, built.global_count)
    features.vacuum("training_examples")
    features.analyze("user_state", "movie_state", "user_deltas", "movie_deltas", "training_examples")
    return built.examples


@dataclass
class RangeOutcome:
    examples_per_day: dict[str, int]  # partition key -> examples built
    users_updated: int
    movies_updated: int
    # One validation of the whole range per suite: GX's cost is mostly per expectation, so one
    # pass over 100 days costs about what one day does.
    example_checks: list[SuiteResult]
    profile_checks: list[SuiteResult]
    rewound_from: int | None
    seconds: float

    @property
    def examples(self) -> int:
        return sum(self.examples_per_day.values())


def check_order(state: FeatureState | None, first: int, last: int, calendar: Calendar) -> bool:
    """Whether the run must rewind; raises with what to do when the days are out of order."""
    if state is None:
        raise RecsysError("The feature store has no bootstrap state yet: materialize bootstrap_features first.")
    stands_at = "the bootstrap" if state.as_of_batch == BOOTSTRAP_BATCH else f"partition {calendar.partition_of(state.as_of_batch)}"
    if state.as_of_batch < first - 1:
        raise RecsysError(
            f"Features for partition {calendar.partition_of(first)} need partition {calendar.partition_of(first - 1)} first: "
            f"the feature store stands at {stands_at}."
        )
    if state.as_of_batch >= first and last < state.as_of_batch:
        raise RecsysError(
            f"The feature store already stands at {stands_at}; rebuilding {calendar.partition_of(first)} alone would "
            f"leave later days built on the old state: materialize {calendar.partition_of(first)} to "
            f"{calendar.partition_of(state.as_of_batch)} in one run."
        )
    return state.as_of_batch >= first


def stored_feature_time(features: Store) -> FeatureTime:
    """The feature time the bootstrap was built with (event time for stores built before it was recorded)."""
    row = features.query("SELECT value FROM feature_params WHERE name = 'event_time'")
    return FEATURE_TIMES[0] if row.height == 0 or row["value"][0] == 1.0 else FEATURE_TIMES[1]


def carried_ratings(lake: Store, first: int, since: int | None) -> pl.DataFrame:
    """The ratings of batches before `first` with a timestamp at or after `since` (the range's first
    second): in the state already, yet not before the range's first ratings. The batches are in
    time order, so this walks back from the previous batch only while a batch lies wholly at or
    after `since` (one indexed read in practice)."""
    parts = []
    batch = first - 1
    while since is not None and batch >= BOOTSTRAP_BATCH:
        bounds = {"batch": batch, "since": since}
        parts.append(lake.query(f"SELECT {', '.join(RATING_COLUMNS)} FROM lake_ratings WHERE batch = $batch AND timestamp >= $since", bounds))
        earlier = lake.query("SELECT count(*) AS n FROM lake_ratings WHERE batch = $batch AND timestamp < $since", bounds)
        if earlier["n"][0] > 0:
            break
        batch -= 1
    return pl.concat(parts) if parts else pl.DataFrame(schema={c: CLEAN_RATINGS_SCHEMA[c] for c in RATING_COLUMNS})


def build_days(batches: list[int], lake: Store, features: Store, calendar: Calendar) -> RangeOutcome:
    """Build the examples of consecutive daily batches and fold them into the state, in one pass."""
    started = time.perf_counter()
    first, last = batches[0], batches[-1]
    if batches != list(range(first, last + 1)):
        raise RecsysError(f"Feature partitions must be consecutive days, got batches {batches}.")
    state = feature_state(features)
    rewinding = check_order(state, first, last, calendar)
    cleaned = set(lake.query("SELECT batch FROM lake_batches WHERE batch BETWEEN $a AND $b", {"a": first, "b": last})["batch"])
    missing = [b for b in batches if b not in cleaned]
    if missing:
        raise RecsysError(
            f"Lake partition {calendar.partition_of(missing[0])} is not materialized: materialize lake_ratings for it first."
        )
    ratings = lake.query(
        f"SELECT {LAKE_COLUMNS} FROM lake_ratings WHERE batch BETWEEN $a AND $b ORDER BY seq", {"a": first, "b": last}
    ).with_columns(block=pl.col("batch"))
    movie_table = stored_movie_features(features)
    feature_time = stored_feature_time(features)
    carried = carried_ratings(lake, first, ratings["timestamp"].min())

    with features.transaction():
        total, count = rewind(features, first, state) if rewinding else (state.rating_sum, state.rating_count)
        stage_ids(features, "range_users", "user_id", ratings["user_id"])
        stage_ids(features, "range_movies", "movie_id", ratings["movie_id"])
        users_before = features.query("SELECT * FROM user_state WHERE user_id IN (SELECT user_id FROM range_users)")
        movies_before = features.query("SELECT * FROM movie_state WHERE movie_id IN (SELECT movie_id FROM range_movies)")
        built = build_examples(
            ratings, movie_table, users_before, movies_before, total, count, feature_time=feature_time, carried=carried
        )
        replace_state_rows(features, "user_state", "user_id", "range_users", built.users_after)
        replace_state_rows(features, "movie_state", "movie_id", "range_movies", built.movies_after)
        window = "batch BETWEEN $a AND $b"
        bounds = {"a": first, "b": last}
        features.replace("user_deltas", window, bounds, built.user_deltas.rename({"block": "batch"}))
        features.replace("movie_deltas", window, bounds, built.movie_deltas.rename({"block": "batch"}))
        features.replace("training_examples", window, bounds, built.examples)
        write_state(features, last, built.global_sum, built.global_count)
    features.vacuum("training_examples")

    counts = dict(built.examples.group_by("batch").len().iter_rows())
    return RangeOutcome(
        examples_per_day={calendar.partition_of(b): counts.get(b, 0) for b in batches},
        example_checks=validate_all(suites.examples_view(built.examples), suites.EXAMPLES_SUITES),
        profile_checks=validate_all(suites.profiles_view(built.users_after), suites.PROFILES_SUITES),
        users_updated=built.users_after.height,
        movies_updated=built.movies_after.height,
        rewound_from=state.as_of_batch if rewinding else None,
        seconds=time.perf_counter() - started,
    )
