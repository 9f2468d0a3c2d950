"""A small replay through Dagster's `materialize`, shared by the model and serving tests."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, materialize

from recsys_assets import features, lake, models, raw, serving
from recsys_assets.definitions import ASSETS, build_resources
from recsys_assets.partitions import partition_of
from recsys_assets.runner import failure_sentence
from recsys_resources import Settings, open_store, store_urls

BATCH = 2_000
BOOTSTRAP = 8_000
DAYS = 8
BOOTSTRAP_ASSETS = [
    raw.raw_movies, raw.raw_ratings, lake.lake_movies, lake.lake_bootstrap,
    features.movie_features, features.bootstrap_features, models.initial_model,
]  # fmt: skip
DAILY_ASSETS = [lake.lake_ratings, features.daily_features, models.daily_models]
SERVING_ASSETS = [serving.champion_embeddings, serving.popular_movies, serving.batch_recommendations]


RANGE = "dagster/asset_partition_range_"


class Replay:
    def __init__(
        self,
        base: Path | str,
        data: Path,
        model_dir: Path | None = None,
        *,
        serve: bool = False,
        batch: int = BATCH,
        bootstrap: int = BOOTSTRAP,
    ) -> None:
        urls = store_urls(str(base))
        self.settings = Settings(
            raw_url=urls["raw"], lake_url=urls["lake"], features_url=urls["features"], data_dir=str(data),
            start_date=Settings.from_env().start_date, batch_size=batch, bootstrap_rows=bootstrap,
            model_dir=str(model_dir or Path(data) / "models"),
        )  # fmt: skip
        self.urls = urls
        self.resources = build_resources(self.settings)
        self.instance = DagsterInstance.ephemeral()
        self.daily = DAILY_ASSETS + (SERVING_ASSETS if serve else [])

    def run(self, selection, partition: str | None = None, ok: bool = True, *, last: str | None = None):
        """Materialize `selection`: unpartitioned, one partition, or the range partition..last in one run."""
        tags = {f"{RANGE}start": partition, f"{RANGE}end": last} if last is not None else None
        result = materialize(
            ASSETS, selection=selection, partition_key=None if last is not None else partition, tags=tags,
            resources=self.resources, instance=self.instance, raise_on_error=False,
        )  # fmt: skip
        if ok:
            assert result.success, self.failure(result)
        return result

    @staticmethod
    def failure(result) -> str:
        return failure_sentence(result)

    def day(self, batch: int, ok: bool = True):
        return self.run(self.daily, partition_of(batch), ok=ok)

    def features_db(self):
        return open_store(self.urls["features"])
