"""FEATURE layer in Dagster: movie features, the bootstrap state, and each day's user profiles and
point-in-time training examples (`recsys.features.build`), with their GX suites as checks."""

# No `from __future__ import annotations`: Dagster reads the asset functions' type hints.
import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    Config,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from recsys.calendar import Calendar
from recsys.features import suites
from recsys.features.build import (
    RangeOutcome,
    build_bootstrap,
    build_days,
    build_movie_features,
)
from recsys.features.drift import data_drift, record_drift
from recsys.features.point_in_time import MOVIE_FEATURE_COLUMNS, FeatureTime
from recsys.lake.tables import archive_info
from recsys.models.monitoring import DATA_DRIFT_DESCRIPTIONS, drift_results
from recsys.quality.gx import validate_all
from recsys.reporting import markdown_table
from recsys_assets.checks import check_results, check_specs, monitoring_results, monitoring_specs
from recsys_assets.failures import user_errors
from recsys_assets.partitions import daily_partitions
from recsys_resources import MonitoringResource, StoreResource

GROUP = "features"
OWNERS = ["team:ml-platform"]
# A long backfill goes in passes of at most this many days, each its own transaction, so memory
# is bounded by a pass (~1.7 GB of examples at 20 days of 50k), not by the range.
MAX_DAYS_PER_PASS = 20


@asset(
    group_name=GROUP,
    deps=["lake_movies", "lake_bootstrap"],
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="Static movie features: one-hot genres, a no-genre flag, release year standardized "
    "with mean and deviation fitted on the movies rated in the bootstrap slice (in feature_params).",
    check_specs=check_specs("movie_features", suites.MOVIE_SUITES),
)
def movie_features(lake_store: StoreResource, features_store: StoreResource):
    with user_errors(), lake_store.open() as lake, features_store.open() as features:
        table = build_movie_features(lake, features)
    checks = validate_all(suites.movie_features_view(table), suites.MOVIE_SUITES)
    return MaterializeResult(
        metadata={"dagster/row_count": table.height, "preview": MetadataValue.md(markdown_table(table.select(MOVIE_FEATURE_COLUMNS[:6])))},
        check_results=check_results("movie_features", {"all": checks}),
    )


class BootstrapConfig(Config):
    """How the feature store is started; recorded in feature_params, so every day follows it."""

    feature_time: FeatureTime = "event"


@asset(
    group_name=GROUP,
    deps=["lake_bootstrap", movie_features],
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="The feature store started over from the bootstrap slice: user and movie state as of "
    "the end of the slice, and point-in-time training examples for the slice (cut into blocks of "
    "the daily batch size, replayed as days). feature_time `event` (default): a rating's features use "
    "every earlier rating of its user and movie, strictly before its second, the same day included; "
    "`batch`: only earlier days. Clears every later day.",
    check_specs=check_specs("bootstrap_features", suites.EXAMPLES_SUITES),
)
def bootstrap_features(
    config: BootstrapConfig, raw_store: StoreResource, lake_store: StoreResource, features_store: StoreResource
):
    with user_errors(), raw_store.open() as raw, lake_store.open() as lake, features_store.open() as features:
        # The block size is the batch size the raw store was loaded with: the archive's one source.
        examples = build_bootstrap(lake, features, archive_info(raw).batch_size, config.feature_time)
    checks = validate_all(suites.examples_view(examples), suites.EXAMPLES_SUITES)
    return MaterializeResult(
        metadata={
            "dagster/row_count": examples.height,
            "users": examples["user_id"].n_unique(),
            "feature_time": config.feature_time,
        },
        check_results=check_results("bootstrap_features", {"bootstrap": checks}),
    )


def definitions(calendar: Calendar) -> Definitions:
    daily = daily_partitions(calendar)

    @multi_asset(
        specs=[
            AssetSpec(
                "user_genre_profiles",
                group_name=GROUP,
                deps=["lake_ratings", bootstrap_features],
                partitions_def=daily,
                kinds={"polars", "sql"},
                owners=OWNERS,
                description="Each user's cumulative ratings per genre (sum and count; the mean is their ratio, "
                "0 where none) as of the end of the day, updated from the previous day's state plus the "
                "day's clean batch. Table user_state; each day's delta in user_deltas.",
            ),
            AssetSpec(
                "training_examples",
                group_name=GROUP,
                deps=["lake_ratings", movie_features, bootstrap_features],
                partitions_def=daily,
                kinds={"polars", "sql"},
                owners=OWNERS,
                description="The day's clean ratings joined to the user and movie features as they stood "
                "just before each rating's second (or, with the bootstrap's feature_time `batch`, before the "
                "day): point in time, no feature includes the rating it predicts or another of its second.",
            ),
        ],
        check_specs=[
            *check_specs("user_genre_profiles", suites.PROFILES_SUITES, daily),
            *check_specs("training_examples", suites.EXAMPLES_SUITES, daily),
            *monitoring_specs("training_examples", DATA_DRIFT_DESCRIPTIONS, daily),
        ],
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def daily_features(
        context: AssetExecutionContext, lake_store: StoreResource, features_store: StoreResource, monitoring: MonitoringResource
    ):
        batches = [calendar.batch_of(key) for key in context.partition_keys]
        passes = [batches[i : i + MAX_DAYS_PER_PASS] for i in range(0, len(batches), MAX_DAYS_PER_PASS)]
        outcomes: list[RangeOutcome] = []
        with user_errors(), lake_store.open() as lake, features_store.open() as features:
            for days in passes:
                outcome = build_days(days, lake, features, calendar)
                note = f" after rewinding from batch {outcome.rewound_from}" if outcome.rewound_from is not None else ""
                context.log.info(
                    f"Built {outcome.examples:,} examples for {calendar.span(days)}{note} in {outcome.seconds:.2f} s; "
                    f"{outcome.users_updated:,} user profiles updated."
                )
                outcomes.append(outcome)
            # Each day against the days before it: data drift, recorded for the retrain trigger.
            drift = {}
            for batch in batches:
                statistics = data_drift(features, batch, calendar, monitoring.thresholds())
                record_drift(features, calendar.partition_of(batch), batch, statistics)
                drift[calendar.partition_of(batch)] = drift_results(statistics)
        per_day = pl.DataFrame(
            [item for o in outcomes for item in o.examples_per_day.items()], schema=["partition", "examples"], orient="row"
        )
        # A pass validates its days in one frame: each of its days gets the pass's results.
        def by_day(results_of) -> dict:
            return {calendar.partition_of(d): results_of(o) for o, days in zip(outcomes, passes) for d in days}

        yield MaterializeResult(
            asset_key="user_genre_profiles",
            metadata={
                "users_updated": sum(o.users_updated for o in outcomes),
                "movies_updated": sum(o.movies_updated for o in outcomes),
            },
            check_results=check_results("user_genre_profiles", by_day(lambda o: o.profile_checks), context),
        )
        yield MaterializeResult(
            asset_key="training_examples",
            metadata={
                "dagster/row_count": int(per_day["examples"].sum()),
                "days": MetadataValue.md(markdown_table(per_day, limit=len(batches))),
                "seconds": float(round(sum(o.seconds for o in outcomes), 3)),
            },
            check_results=[
                *check_results("training_examples", by_day(lambda o: o.example_checks), context),
                *monitoring_results("training_examples", drift, context),
            ],
        )

    return Definitions(assets=[movie_features, bootstrap_features, daily_features])
