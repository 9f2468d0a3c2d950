"""FEATURE layer: point-in-time user and movie features and the training examples built on them.

The cumulative state (user genre sums and counts, movie sums and counts, global totals) lives in
the feature store with the batch it stands at. A daily partition folds its lake batch into it
after building the batch's examples from the state as it stood before. Days must go in order: a
partition whose previous day is not built, or whose lake batch is missing, fails with a sentence
saying what to materialize. Rebuilding days that are already built rewinds the state by taking
their stored deltas back out, so it is allowed only when the run rebuilds through the latest
built day (otherwise later days would keep features computed from the old state).
"""

import datetime as dt
import time
from dataclasses import dataclass

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from recsys_assets import validation
from recsys_assets.checks import check_results, check_specs, user_errors
from recsys_assets.lake import lake_bootstrap, lake_movies, lake_ratings
from recsys_assets.partitions import batch_of, daily_partitions, partition_of
from recsys_assets.reporting import markdown_table
from recsys_assets.transforms.archive import BOOTSTRAP_BATCH
from recsys_assets.transforms.features import (
    MOVIE_FEATURE_COLUMNS,
    PRIOR_RATING,
    USER_STATE_COLUMNS,
    YearScaler,
    build_examples,
    empty_movie_state,
    empty_user_state,
    movie_features as make_movie_features,
    subtract,
)
from recsys_resources import ArchiveResource, RecsysError, Store, StoreResource

GROUP = "features"
OWNERS = ["team:ml-platform"]
LAKE_COLUMNS = "batch, seq, user_id, movie_id, rating, timestamp"
MAX_DAYS_PER_PASS = 20
SUITES = validation.feature_suites()
EXAMPLES_SUITES = validation.suites_for("examples", SUITES)
PROFILES_SUITES = validation.suites_for("profiles", SUITES)
MOVIE_SUITES = validation.suites_for("movie_features", SUITES)


@dataclass(frozen=True)
class FeatureState:
    as_of_batch: int
    rating_sum: float
    rating_count: int


def feature_state(store: Store) -> FeatureState | None:
    row = store.query("SELECT as_of_batch, rating_sum, rating_count FROM feature_state")
    return FeatureState(**row.row(0, named=True)) if row.height else None


def state_as_of(features: Store, as_of: int, *, users: bool = True) -> tuple[pl.DataFrame | None, pl.DataFrame, float]:
    """(user state, movie state, global mean) at the end of batch `as_of`: the stored state rewound
    by the deltas of later batches, which a backfill may already have folded in. users=False
    skips reading the user state (None then), the widest of the three."""
    state = feature_state(features)
    if state is None or state.as_of_batch < as_of:
        stands = "is empty" if state is None else f"stands at {partition_of(state.as_of_batch)}"
        raise RecsysError(
            f"The feature store {stands}: materialize training_examples through {partition_of(as_of)} first."
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


def _write_state(store: Store, as_of_batch: int, rating_sum: float, rating_count: int) -> None:
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


def _stage_ids(store: Store, table: str, column: str, ids: pl.Series) -> None:
    """Put a set of ids in a temporary table, so the state rows for them can be read and replaced."""
    store.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({column} BIGINT)")
    store.execute(f"DELETE FROM {table}")
    store.insert(table, ids.unique().to_frame(column))


def _replace_state_rows(store: Store, table: str, key: str, staged: str, rows: pl.DataFrame) -> None:
    store.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {staged})")
    store.insert(table, rows)


def build_movie_features(lake: Store, features: Store) -> pl.DataFrame:
    """Fit the year scaler on the movies rated in the bootstrap slice and store movie features."""
    movies = lake.query("SELECT movie_id, title, year, genres FROM lake_movies")
    bootstrap = lake.query("SELECT DISTINCT movie_id FROM lake_ratings WHERE batch = $batch", {"batch": BOOTSTRAP_BATCH})
    if bootstrap.height == 0:
        raise RecsysError("The lake holds no bootstrap slice yet: materialize lake_bootstrap first.")
    scaler = YearScaler.fit(bootstrap, movies)
    table = make_movie_features(movies, scaler)
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


def build_bootstrap(lake: Store, features: Store, block_rows: int) -> pl.DataFrame:
    """Start the feature store over from the bootstrap slice.

    Inside the slice, time is cut into blocks of `block_rows` ratings (the daily batch size), and
    each block's examples see only earlier blocks, exactly as a day sees only earlier days.
    Every later day's state and examples are cleared: they were built on the old start.
    """
    ratings = lake.query(
        f"SELECT {LAKE_COLUMNS} FROM lake_ratings WHERE batch = $batch ORDER BY seq", {"batch": BOOTSTRAP_BATCH}
    )
    if ratings.height == 0:
        raise RecsysError("The lake holds no bootstrap slice yet: materialize lake_bootstrap first.")
    ratings = ratings.with_columns(block=(pl.int_range(pl.len()) // block_rows).cast(pl.Int32))
    built = build_examples(
        ratings, stored_movie_features(features), empty_user_state(), empty_movie_state(), 0.0, 0
    )
    with features.transaction():
        for table in ("user_state", "movie_state", "user_deltas", "movie_deltas", "training_examples"):
            features.execute(f"DELETE FROM {table}")
        features.insert("user_state", built.users_after)
        features.insert("movie_state", built.movies_after)
        batch = pl.lit(BOOTSTRAP_BATCH, dtype=pl.Int32).alias("batch")
        features.insert("user_deltas", built.users_after.select(batch, pl.all()))
        features.insert("movie_deltas", built.movies_after.select(batch, pl.all()))
        features.insert("training_examples", built.examples)
        _write_state(features, BOOTSTRAP_BATCH, built.global_sum, built.global_count)
    return built.examples


@dataclass
class RangeOutcome:
    examples_per_day: dict[str, int]  # partition key -> examples built
    users_updated: int
    movies_updated: int
    # One validation of the whole range per suite: GX's cost is mostly per expectation, so one
    # pass over 100 days costs about what one day does.
    example_checks: list[validation.SuiteResult]
    profile_checks: list[validation.SuiteResult]
    rewound_from: int | None
    seconds: float

    @property
    def examples(self) -> int:
        return sum(self.examples_per_day.values())


def _check_order(state: FeatureState | None, first: int, last: int) -> bool:
    """Whether the run must rewind; raises with what to do when the days are out of order."""
    if state is None:
        raise RecsysError("The feature store has no bootstrap state yet: materialize bootstrap_features first.")
    stands_at = "the bootstrap" if state.as_of_batch == BOOTSTRAP_BATCH else f"partition {partition_of(state.as_of_batch)}"
    if state.as_of_batch < first - 1:
        raise RecsysError(
            f"Features for partition {partition_of(first)} need partition {partition_of(first - 1)} first: "
            f"the feature store stands at {stands_at}."
        )
    if state.as_of_batch >= first and last < state.as_of_batch:
        raise RecsysError(
            f"The feature store already stands at {stands_at}; rebuilding {partition_of(first)} alone would "
            f"leave later days built on the old state: materialize {partition_of(first)} to "
            f"{partition_of(state.as_of_batch)} in one run."
        )
    return state.as_of_batch >= first


def _rewind(features: Store, first: int, state: FeatureState) -> tuple[float, int]:
    """Take batches >= first back out of the state; returns the global totals before `first`."""
    since = {"first": first}
    for table, key in (("user_state", "user_id"), ("movie_state", "movie_id")):
        deltas_table = table.replace("_state", "_deltas")
        staged = f"rewind_{key}s"
        deltas = features.query(f"SELECT * FROM {deltas_table} WHERE batch >= $first", since).drop("batch")
        _stage_ids(features, staged, key, deltas[key])
        affected = features.query(f"SELECT * FROM {table} WHERE {key} IN (SELECT {key} FROM {staged})")
        _replace_state_rows(features, table, key, staged, subtract(affected, deltas, key))
    taken = features.query(
        "SELECT coalesce(sum(m_sum), 0) AS s, coalesce(sum(m_count), 0) AS n FROM movie_deltas WHERE batch >= $first", since
    )
    for table in ("user_deltas", "movie_deltas", "training_examples"):
        features.execute(f"DELETE FROM {table} WHERE batch >= $first", since)
    return state.rating_sum - float(taken["s"][0]), state.rating_count - int(taken["n"][0])


def build_days(batches: list[int], lake: Store, features: Store) -> RangeOutcome:
    """Build the examples of consecutive daily batches and fold them into the state, in one pass."""
    started = time.perf_counter()
    first, last = batches[0], batches[-1]
    if batches != list(range(first, last + 1)):
        raise RecsysError(f"Feature partitions must be consecutive days, got batches {batches}.")
    state = feature_state(features)
    rewinding = _check_order(state, first, last)
    cleaned = set(lake.query("SELECT batch FROM lake_batches WHERE batch BETWEEN $a AND $b", {"a": first, "b": last})["batch"])
    missing = [b for b in batches if b not in cleaned]
    if missing:
        raise RecsysError(
            f"Lake partition {partition_of(missing[0])} is not materialized: materialize lake_ratings for it first."
        )
    ratings = lake.query(
        f"SELECT {LAKE_COLUMNS} FROM lake_ratings WHERE batch BETWEEN $a AND $b ORDER BY seq", {"a": first, "b": last}
    ).with_columns(block=pl.col("batch"))
    movie_table = stored_movie_features(features)

    with features.transaction():
        total, count = _rewind(features, first, state) if rewinding else (state.rating_sum, state.rating_count)
        _stage_ids(features, "range_users", "user_id", ratings["user_id"])
        _stage_ids(features, "range_movies", "movie_id", ratings["movie_id"])
        users_before = features.query("SELECT * FROM user_state WHERE user_id IN (SELECT user_id FROM range_users)")
        movies_before = features.query("SELECT * FROM movie_state WHERE movie_id IN (SELECT movie_id FROM range_movies)")
        built = build_examples(ratings, movie_table, users_before, movies_before, total, count)
        _replace_state_rows(features, "user_state", "user_id", "range_users", built.users_after)
        _replace_state_rows(features, "movie_state", "movie_id", "range_movies", built.movies_after)
        window = "batch BETWEEN $a AND $b"
        bounds = {"a": first, "b": last}
        features.replace("user_deltas", window, bounds, built.user_deltas.rename({"block": "batch"}))
        features.replace("movie_deltas", window, bounds, built.movie_deltas.rename({"block": "batch"}))
        features.replace("training_examples", window, bounds, built.examples)
        _write_state(features, last, built.global_sum, built.global_count)

    counts = dict(built.examples.group_by("batch").len().iter_rows())
    return RangeOutcome(
        examples_per_day={partition_of(b): counts.get(b, 0) for b in batches},
        example_checks=validation.validate_all(validation.examples_view(built.examples), EXAMPLES_SUITES),
        profile_checks=validation.validate_all(validation.profiles_view(built.users_after), PROFILES_SUITES),
        users_updated=built.users_after.height,
        movies_updated=built.movies_after.height,
        rewound_from=state.as_of_batch if rewinding else None,
        seconds=time.perf_counter() - started,
    )


# --- assets ---------------------------------------------------------------------------------


@asset(
    group_name=GROUP,
    deps=[lake_movies, lake_bootstrap],
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="Static movie features: one-hot genres, a no-genre flag, release year standardized "
    "with mean and deviation fitted on the movies rated in the bootstrap slice (in feature_params).",
    check_specs=check_specs("movie_features", MOVIE_SUITES),
)
def movie_features(lake_store: StoreResource, features_store: StoreResource):
    with user_errors(), lake_store.open() as lake, features_store.open() as features:
        table = build_movie_features(lake, features)
    checks = validation.validate_all(validation.movie_features_view(table), MOVIE_SUITES)
    return MaterializeResult(
        metadata={"dagster/row_count": table.height, "preview": MetadataValue.md(markdown_table(table.select(MOVIE_FEATURE_COLUMNS[:6])))},
        check_results=check_results("movie_features", {"all": checks}),
    )


@asset(
    group_name=GROUP,
    deps=[lake_bootstrap, movie_features],
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="The feature store started over from the bootstrap slice: user and movie state as of "
    "the end of the slice, and point-in-time training examples for the slice (cut into blocks of "
    "the daily batch size, each seeing only earlier blocks). Clears every later day.",
    check_specs=check_specs("bootstrap_features", EXAMPLES_SUITES),
)
def bootstrap_features(archive: ArchiveResource, lake_store: StoreResource, features_store: StoreResource):
    with user_errors(), lake_store.open() as lake, features_store.open() as features:
        examples = build_bootstrap(lake, features, archive.batch_size)
    checks = validation.validate_all(validation.examples_view(examples), EXAMPLES_SUITES)
    return MaterializeResult(
        metadata={"dagster/row_count": examples.height, "users": examples["user_id"].n_unique()},
        check_results=check_results("bootstrap_features", {"bootstrap": checks}),
    )


@multi_asset(
    specs=[
        AssetSpec(
            "user_genre_profiles",
            group_name=GROUP,
            deps=[lake_ratings, bootstrap_features],
            partitions_def=daily_partitions,
            kinds={"polars", "sql"},
            owners=OWNERS,
            description="Each user's cumulative ratings per genre (sum and count; the mean is their ratio, "
            "0 where none) as of the end of the day, updated from the previous day's state plus the "
            "day's clean batch. Table user_state; each day's delta in user_deltas.",
        ),
        AssetSpec(
            "training_examples",
            group_name=GROUP,
            deps=[lake_ratings, movie_features, bootstrap_features],
            partitions_def=daily_partitions,
            kinds={"polars", "sql"},
            owners=OWNERS,
            description="The day's clean ratings joined to the user and movie features as they stood "
            "before that day (point in time: no feature includes the rating it predicts).",
        ),
    ],
    check_specs=[
        *check_specs("user_genre_profiles", PROFILES_SUITES),
        *check_specs("training_examples", EXAMPLES_SUITES),
    ],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
)
def daily_features(context: AssetExecutionContext, lake_store: StoreResource, features_store: StoreResource):
    batches = [batch_of(key) for key in context.partition_keys]
    # A long backfill goes in passes of at most MAX_DAYS_PER_PASS days, each its own transaction,
    # so memory is bounded by a pass (~1.7 GB of examples at 20 days of 50k), not by the range.
    passes = [batches[i : i + MAX_DAYS_PER_PASS] for i in range(0, len(batches), MAX_DAYS_PER_PASS)]
    outcomes: list[RangeOutcome] = []
    with user_errors(), lake_store.open() as lake, features_store.open() as features:
        for days in passes:
            outcome = build_days(days, lake, features)
            note = f" after rewinding from batch {outcome.rewound_from}" if outcome.rewound_from is not None else ""
            context.log.info(
                f"Built {outcome.examples:,} examples for {_span(days)}{note} in {outcome.seconds:.2f} s; "
                f"{outcome.users_updated:,} user profiles updated."
            )
            outcomes.append(outcome)
    per_day = pl.DataFrame(
        [item for o in outcomes for item in o.examples_per_day.items()], schema=["partition", "examples"], orient="row"
    )
    yield MaterializeResult(
        asset_key="user_genre_profiles",
        metadata={
            "users_updated": sum(o.users_updated for o in outcomes),
            "movies_updated": sum(o.movies_updated for o in outcomes),
        },
        check_results=check_results("user_genre_profiles", {_span(p): o.profile_checks for p, o in zip(passes, outcomes)}),
    )
    yield MaterializeResult(
        asset_key="training_examples",
        metadata={
            "dagster/row_count": int(per_day["examples"].sum()),
            "days": MetadataValue.md(markdown_table(per_day, limit=len(batches))),
            "seconds": float(round(sum(o.seconds for o in outcomes), 3)),
        },
        check_results=check_results("training_examples", {_span(p): o.example_checks for p, o in zip(passes, outcomes)}),
    )


def _span(batches: list[int]) -> str:
    first, last = partition_of(batches[0]), partition_of(batches[-1])
    return first if first == last else f"{first}..{last}"
