"""A small replay through Dagster's `materialize` on the real definitions, for the Dagster and API tests."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, materialize

from recsys.calendar import Calendar, parse_date
from recsys.settings import DEFAULT_START_DATE, Settings
from recsys.stores import open_store
from recsys_assets.definitions import BOOTSTRAP_ASSETS, build_definitions
from recsys_assets.failures import failure_sentence
from recsys_resources import build_resources

BATCH = 2_000
BOOTSTRAP = 8_000
DAYS = 8
CALENDAR = Calendar(parse_date(DEFAULT_START_DATE))
__all__ = ["BOOTSTRAP_ASSETS", "AssetReplay", "partition_of"]
partition_of = CALENDAR.partition_of

DAILY_ASSETS = ["lake_ratings", "daily_features", "daily_models"]
SERVING_ASSETS = ["champion_embeddings", "popular_movies", "batch_recommendations"]
RANGE = "dagster/asset_partition_range_"


class AssetReplay:
    """The platform's assets on stores under `base`, materialized by name (an asset or multi-asset's
    function name), one partition or a range at a time, in an ephemeral instance."""

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
        self.settings = Settings.for_store(
            str(base), data_dir=str(data), start_date=CALENDAR.start_date, batch_size=batch, bootstrap_rows=bootstrap,
            model_dir=str(model_dir or Path(data) / "models"),
        )  # fmt: skip
        self.urls = self.settings.urls
        self.defs = build_definitions(self.settings)
        self.assets = list(self.defs.assets)
        self.by_name = {a.op.name: a for a in self.assets if hasattr(a, "op")}
        self.resources = build_resources(self.settings)
        self.instance = DagsterInstance.ephemeral()
        self.daily = DAILY_ASSETS + (SERVING_ASSETS if serve else [])

    def run(
        self, selection: list[str], partition: str | None = None, ok: bool = True, *, last: str | None = None, config: dict | None = None
    ):
        """Materialize `selection`: unpartitioned, one partition, or the range partition..last in one
        run; `config` maps an asset to its run config."""
        tags = {f"{RANGE}start": partition, f"{RANGE}end": last} if last is not None else None
        run_config = {"ops": {name: {"config": values} for name, values in config.items()}} if config else None
        result = materialize(
            self.assets, selection=[self.by_name[name] for name in selection],
            partition_key=None if last is not None else partition, tags=tags, run_config=run_config,
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
