"""The feature store's cumulative state: one storage interface for what features are computed from.

The state is the user genre sums and counts (`user_state`), the movie sums and counts
(`movie_state`) and the global totals with the batch they stand at (`feature_state`). Each
batch's delta is kept (`user_deltas`, `movie_deltas`), so the state can be read as of an
earlier batch, or rewound, exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from recsys.calendar import Calendar
from recsys.errors import RecsysError
from recsys.features.point_in_time import PRIOR_RATING, USER_STATE_COLUMNS, subtract
from recsys.stores import Store


@dataclass(frozen=True)
class FeatureState:
    as_of_batch: int
    rating_sum: float
    rating_count: int


def feature_state(store: Store) -> FeatureState | None:
    row = store.query("SELECT as_of_batch, rating_sum, rating_count FROM feature_state")
    return FeatureState(**row.row(0, named=True)) if row.height else None


def state_as_of(
    features: Store, as_of: int, calendar: Calendar, *, users: bool = True
) -> tuple[pl.DataFrame | None, pl.DataFrame, float]:
    """(user state, movie state, global mean) at the end of batch `as_of`: the stored state rewound
    by the deltas of later batches, which a backfill may already have folded in. users=False
    skips reading the user state (None then), the widest of the three."""
    state = feature_state(features)
    if state is None or state.as_of_batch < as_of:
        stands = "is empty" if state is None else f"stands at {calendar.partition_of(state.as_of_batch)}"
        raise RecsysError(
            f"The feature store {stands}: materialize training_examples through {calendar.partition_of(as_of)} first."
        )
    user_state = features.query(f"SELECT {', '.join(USER_STATE_COLUMNS)} FROM user_state") if users else None
    movies = features.query("SELECT movie_id, m_sum, m_count FROM movie_state")
    rating_sum, rating_count = state.rating_sum, state.rating_count
    if state.as_of_batch > as_of:
        later = {"as_of": as_of}
        if user_state is not None:
            user_deltas = features.query(f"SELECT {', '.join(USER_STATE_COLUMNS)} FROM user_deltas WHERE batch > $as_of", later)
            user_state = subtract(user_state, user_deltas, "user_id")
        movie_deltas = features.query("SELECT movie_id, m_sum, m_count FROM movie_deltas WHERE batch > $as_of", later)
        movies = subtract(movies, movie_deltas, "movie_id")
        rating_sum -= float(movie_deltas["m_sum"].sum())
        rating_count -= int(movie_deltas["m_count"].sum())
    global_mean = rating_sum / rating_count if rating_count else PRIOR_RATING
    return user_state, movies, global_mean


def write_state(store: Store, as_of_batch: int, rating_sum: float, rating_count: int) -> None:
    store.execute("DELETE FROM feature_state")
    store.insert(
        "feature_state",
        pl.DataFrame(
            {
                "as_of_batch": [as_of_batch],
                "rating_sum": [rating_sum],
                "rating_count": [rating_count],
                "updated_at": [dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)],
            },
            schema={"as_of_batch": pl.Int32, "rating_sum": pl.Float64, "rating_count": pl.Int64, "updated_at": pl.Datetime},
        ),
    )


def stage_ids(store: Store, table: str, column: str, ids: pl.Series) -> None:
    """Put a set of ids in a temporary table, so the state rows for them can be read and replaced."""
    store.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({column} BIGINT)")
    store.execute(f"DELETE FROM {table}")
    store.insert(table, ids.unique().to_frame(column))


def replace_state_rows(store: Store, table: str, key: str, staged: str, rows: pl.DataFrame) -> None:
    store.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {staged})")
    store.insert(table, rows)


def rewind(features: Store, first: int, state: FeatureState) -> tuple[float, int]:
    """Take batches >= first back out of the state; returns the global totals before `first`."""
    since = {"first": first}
    for table, key in (("user_state", "user_id"), ("movie_state", "movie_id")):
        deltas_table = table.replace("_state", "_deltas")
        staged = f"rewind_{key}s"
        deltas = features.query(f"SELECT * FROM {deltas_table} WHERE batch >= $first", since).drop("batch")
        stage_ids(features, staged, key, deltas[key])
        affected = features.query(f"SELECT * FROM {table} WHERE {key} IN (SELECT {key} FROM {staged})")
        replace_state_rows(features, table, key, staged, subtract(affected, deltas, key))
    taken = features.query(
        "SELECT coalesce(sum(m_sum), 0) AS s, coalesce(sum(m_count), 0) AS n FROM movie_deltas WHERE batch >= $first", since
    )
    for table in ("user_deltas", "movie_deltas", "training_examples"):
        features.execute(f"DELETE FROM {table} WHERE batch >= $first", since)
    return state.rating_sum - float(taken["s"][0]), state.rating_count - int(taken["n"][0])
