"""The code location: each layer's `Definitions` merged with the jobs, schedules and resources.

`build_definitions(settings)` is the whole platform for one settings value (the CLI's replay and
the tests call it with theirs); `defs` is what `dagster dev` and the code server load, with the
settings read from the environment when Dagster asks for them, not when the module is imported.
Steps run in one process because DuckDB allows one writing process per file; PostgreSQL
deployments gain nothing from step processes here since every layer's work is a vectorized pass
over one batch.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
    definitions,
    in_process_executor,
)

from recsys.settings import Settings
from recsys_assets import features, lake, models, raw, serving
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
        selection=AssetSelection.assets(*DAILY_ASSETS),
        description="Everything one day's batch feeds: clean and validate it into the lake, build its "
        "point-in-time examples, score every model on it before training (test-then-train: MSE and "
        "ranking), decide promotions, warm-start on it, then embed users and movies with the champion "
        "and precompute recommendations for serving.",
    )
    weekly_retrain_job = define_asset_job(
        "weekly_retrain",
        selection=AssetSelection.assets("full_model"),
        description="Train a model from scratch on every example up to the end of the week.",
    )
    orchestration = Definitions(
        jobs=[bootstrap_job, daily_pipeline_job, weekly_retrain_job],
        schedules=[
            build_schedule_from_partitioned_job(daily_pipeline_job, hour_of_day=2),
            # A week's partition is complete once its last day's daily run (02:00) is done.
            build_schedule_from_partitioned_job(weekly_retrain_job, hour_of_day=4),
        ],
        resources=build_resources(settings),
        executor=in_process_executor,
    )
    return Definitions.merge(*(layer.definitions(calendar) for layer in LAYERS), orchestration)


@definitions
def defs() -> Definitions:
    return build_definitions(Settings.from_env())
