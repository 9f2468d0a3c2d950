"""The one Dagster `Definitions` of the platform.

Resources come from the environment (see recsys_resources.settings): the embedded default and a
PostgreSQL deployment differ only there. Steps run in one process because DuckDB allows one
writing process per file; PostgreSQL deployments gain nothing from step processes here since
every layer's work is a vectorized pass over one batch.
"""

from __future__ import annotations

import os
import warnings

from dagster import (
    BetaWarning,
    AssetSelection,
    Definitions,
    EnvVar,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)

# Backfill policies are beta in dagster 1.13; we rely on them knowingly, so say it once here
# instead of on every import.
warnings.filterwarnings("ignore", category=BetaWarning)

from recsys_assets import features, lake, raw  # noqa: E402
from recsys_resources import ArchiveResource, Settings, StoreResource  # noqa: E402


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
]

load_archive_job = define_asset_job(
    "load_archive",
    selection=AssetSelection.assets(
        raw.raw_movies,
        raw.raw_ratings,
        lake.lake_movies,
        lake.lake_bootstrap,
        features.movie_features,
        features.bootstrap_features,
    ),
    description="Load the archive into the raw store, clean the movies and the bootstrap slice into the "
    "lake, and start the feature store from the bootstrap slice.",
)

daily_pipeline_job = define_asset_job(
    "daily_pipeline",
    selection=AssetSelection.assets(lake.lake_ratings, features.daily_features),
    description="Everything one day's batch feeds: clean and validate it into the lake, then build its "
    "point-in-time training examples and fold it into the feature state.",
)

daily_schedule = build_schedule_from_partitioned_job(daily_pipeline_job, hour_of_day=2)

defs = Definitions(
    assets=ASSETS,
    jobs=[load_archive_job, daily_pipeline_job],
    schedules=[daily_schedule],
    resources=build_resources(),
    executor=in_process_executor,
)
