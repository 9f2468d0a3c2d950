"""The one Dagster `Definitions` of the platform.

Resources come from the environment (see recsys_resources.settings): the embedded default and a
PostgreSQL deployment differ only there. Steps run in one process because DuckDB allows one
writing process per file; PostgreSQL deployments gain nothing from step processes here since
every layer's work is a vectorized pass over one batch.
"""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    Definitions,
    EnvVar,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)

from recsys_assets import features, lake, models, raw, serving
from recsys_resources import ArchiveResource, ModelingResource, ServingResource, Settings, StoreResource


def _url(env_name: str, derived: str) -> str | EnvVar:
    # An explicit URL is passed as an EnvVar so its password never shows in the UI's config.
    return EnvVar(env_name) if os.environ.get(env_name) else derived


def build_resources(settings: Settings | None = None) -> dict:
    settings = settings or Settings.from_env()
    return {
        "archive": ArchiveResource(
            data_dir=settings.data_dir,
            batch_size=settings.batch_size,
            bootstrap_rows=settings.bootstrap_rows,
        ),
        "raw_store": StoreResource(url=_url("RECSYS_RAW_URL", settings.raw_url), schema_name="raw"),
        "lake_store": StoreResource(url=_url("RECSYS_LAKE_URL", settings.lake_url), schema_name="lake"),
        "features_store": StoreResource(
            url=_url("RECSYS_FEATURES_URL", settings.features_url), schema_name="features"
        ),
        "modeling": ModelingResource(artifact_dir=settings.model_dir, seed=settings.seed),
        "serving": ServingResource(embedding_backend=settings.embedding_backend),
    }


ASSETS = [
    raw.archive_ratings_file,
    raw.archive_movies_file,
    raw.raw_movies,
    raw.raw_ratings,
    lake.lake_movies,
    lake.lake_bootstrap,
    lake.lake_ratings,
    features.movie_features,
    features.bootstrap_features,
    features.daily_features,
    models.initial_model,
    models.daily_models,
    models.full_model,
    serving.champion_embeddings,
    serving.popular_movies,
    serving.batch_recommendations,
]

bootstrap_job = define_asset_job(
    "bootstrap",
    selection=AssetSelection.assets(
        raw.raw_movies,
        raw.raw_ratings,
        lake.lake_movies,
        lake.lake_bootstrap,
        features.movie_features,
        features.bootstrap_features,
        models.initial_model,
    ),
    description="Everything the first day stands on: the archive in the raw store, movies and the bootstrap "
    "slice cleaned into the lake, the feature store started from the bootstrap, the first champion.",
)

daily_pipeline_job = define_asset_job(
    "daily_pipeline",
    selection=AssetSelection.assets(
        lake.lake_ratings,
        features.daily_features,
        models.daily_models,
        serving.champion_embeddings,
        serving.popular_movies,
        serving.batch_recommendations,
    ),
    description="Everything one day's batch feeds: clean and validate it into the lake, build its "
    "point-in-time examples, score every model on it before training (test-then-train: MSE and "
    "ranking), decide promotions, warm-start on it, then embed users and movies with the champion "
    "and precompute recommendations for serving.",
)

weekly_retrain_job = define_asset_job(
    "weekly_retrain",
    selection=AssetSelection.assets(models.full_model),
    description="Train a model from scratch on every example up to the end of the week.",
)

daily_schedule = build_schedule_from_partitioned_job(daily_pipeline_job, hour_of_day=2)
# A week's partition is complete once its last day's daily run (02:00) is done.
weekly_schedule = build_schedule_from_partitioned_job(weekly_retrain_job, hour_of_day=4)

defs = Definitions(
    assets=ASSETS,
    jobs=[bootstrap_job, daily_pipeline_job, weekly_retrain_job],
    schedules=[daily_schedule, weekly_schedule],
    resources=build_resources(),
    executor=in_process_executor,
)
