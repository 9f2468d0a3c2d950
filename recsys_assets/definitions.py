"""The code location: each layer's `Definitions` merged with the jobs, schedules and resources.

`build_definitions(settings)` is the whole platform for one settings value (the CLI's replay and
the tests call it with theirs); `defs` is what `dagster dev` and the code server load, with the
settings read from the environment when Dagster asks for them, not when the module is imported.
Steps run in one process because DuckDB allows one writing process per file; PostgreSQL
deployments gain nothing from step processes here since every layer's work is a vectorized pass
over one batch.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    Definitions,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
    define_asset_job,
    definitions,
    SupersessionWarning,
    in_process_executor,
)

from recsys.raw.load import archive_days
from recsys.settings import Settings
from recsys_assets import features, lake, models, raw, serving
from recsys_assets.schedules import completed_week_sensor, drift_retrain_sensor, next_day_schedule
from recsys_resources import build_resources

LAYERS = (raw, lake, features, models, serving)

BOOTSTRAP_ASSETS = [
    "raw_movies", "raw_ratings", "lake_movies", "lake_bootstrap", "movie_features", "bootstrap_features", "initial_model",
]  # fmt: skip
# The daily pipeline is every daily-partitioned asset, in lineage order.
DAILY_ASSETS = [
    "lake_ratings", "user_genre_profiles", "training_examples", "model_metrics", "warm_model",
    "user_embeddings", "movie_embeddings", "popular_movies", "batch_recommendations",
]  # fmt: skip

# The daily pipeline's first and last asset: a day is fresh once its recommendations are served.
FRESH_ASSETS = ["lake_ratings", "batch_recommendations"]


def build_definitions(settings: Settings) -> Definitions:
    calendar = settings.calendar
    bootstrap_job = define_asset_job(
        "bootstrap",
        selection=AssetSelection.assets(*BOOTSTRAP_ASSETS),
        description="Everything the first day stands on: the archive in the raw store, movies and the bootstrap "
        "slice cleaned into the lake, the feature store started from the bootstrap, the first champion.",
    )
    daily_pipeline_job = define_asset_job(
        "daily_pipeline",
        # The freshness checks judge the calendar as a whole: their sensor runs them, not each day's run.
        selection=AssetSelection.assets(*DAILY_ASSETS)
        - AssetSelection.checks(*(AssetCheckKey(AssetKey(asset), "freshness_check") for asset in FRESH_ASSETS)),
        description="Everything one day's batch feeds: clean and validate it into the lake, build its "
        "point-in-time examples, score every model on it before training (test-then-train: MSE and "
        "ranking), decide promotions, warm-start on it, then embed users and movies with the champion "
        "and precompute recommendations for serving.",
    )
    weekly_retrain_job = define_asset_job(
        "weekly_retrain",
        selection=AssetSelection.assets("full_model"),
        description="Retrain both stages on the history up to the end of the week (full_model).",
    )
    # Freshness: the calendar's latest day must be materialized by the time the schedule would run
    # the day after it; a day that did not run shows as a failed (WARN) check. Dagster 1.13 prefers
    # FreshnessPolicy, but a policy judges the wall-clock time of the last materialization, so a
    # finished archive would read as stale a day later; these checks judge the partitions.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        freshness = build_time_partition_freshness_checks(assets=FRESH_ASSETS, deadline_cron=settings.schedule_cron)
        # On by default, so a day that did not run shows as stale without anyone turning it on.
        freshness_sensor = build_sensor_for_freshness_checks(
            freshness_checks=freshness, name="freshness_checks_sensor", default_status=DefaultSensorStatus.RUNNING
        )
    drift_retrain_job = define_asset_job(
        "drift_retrain",
        selection=AssetSelection.assets("triggered_model"),
        description="A full retrain of both stages through a day, outside the weekly calendar, when drift or "
        "degradation alarms persist (requested by the retrain_on_drift sensor).",
    )
    orchestration = Definitions(
        jobs=[bootstrap_job, daily_pipeline_job, weekly_retrain_job, drift_retrain_job],
        asset_checks=freshness,
        schedules=[next_day_schedule(daily_pipeline_job, calendar, settings.schedule_cron)],
        sensors=[
            completed_week_sensor(weekly_retrain_job, calendar),
            drift_retrain_sensor(drift_retrain_job, calendar),
            freshness_sensor,
        ],
        resources=build_resources(settings),
        executor=in_process_executor,
    )
    return Definitions.merge(*(layer.definitions(calendar) for layer in LAYERS), orchestration)


def settings_with_archive_calendar(settings: Settings) -> Settings:
    """The settings with the calendar of the archive they name, so the UI lists its days only."""
    days = archive_days(settings.raw_url, Path(settings.data_dir), settings.batch_size, settings.bootstrap_rows)
    return replace(settings, archive_days=days)


@definitions
def defs() -> Definitions:
    return build_definitions(settings_with_archive_calendar(Settings.from_env()))
