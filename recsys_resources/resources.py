"""Dagster resources. Thin on purpose: configuration plus a way to build the library's objects."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Iterator, Optional

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from recsys.models.ranking import PopularityWindow
from recsys.models.triggers import RetrainPolicy
from recsys.models.versions import ModelingSettings
from recsys.quality.drift import DriftThresholds
from recsys.serving.build import ServingSettings
from recsys.settings import Settings, store_urls
from recsys.stores import Store, open_store


class StoreResource(ConfigurableResource):
    """One of the platform's databases (raw, lake or features), addressed by URL."""

    url: str = Field(
        description="A DuckDB file path or postgresql://user:password@host:port/database; with `store` set, "
        "the directory or server URL all three stores live under (RECSYS_STORE)."
    )
    store: Optional[str] = Field(default=None, description="raw, lake or features: this store's URL is derived from `url`.")
    schema_name: str = Field(description="The file in sql/ that creates this store's tables.")

    @property
    def store_url(self) -> str:
        """This store's own URL: `url` itself, or derived from it when `store` names one of three."""
        return store_urls(self.url)[self.store] if self.store else self.url

    @contextmanager
    def read(self) -> Iterator[Store]:
        """Open the store to read only (a sensor between runs): nothing is created, writers wait least."""
        store = open_store(self.store_url, read_only=True)
        try:
            yield store
        finally:
            store.close()

    @contextmanager
    def open(self) -> Iterator[Store]:
        """Open the store with its schema applied; closed again on exit."""
        store = open_store(self.store_url)
        try:
            store.apply_schema(self.schema_name)
            yield store
        finally:
            store.close()


class ArchiveResource(ConfigurableResource):
    """The ratings archive being replayed and how the raw load cuts it into batches.

    The raw store records the batch size and bootstrap it was loaded with; every layer after the
    raw load reads them from there, so these values matter only when the archive is loaded.
    """

    data_dir: str = Field(description="Directory of a MovieLens or Netflix Prize dataset.")
    batch_size: int = Field(default=50_000, description="Rows per daily partition.")
    bootstrap_rows: Optional[int] = Field(
        default=None,
        description="Rows of initial history before the first daily batch; "
        "default 5,000,000, or a fifth of a smaller archive.",
    )

    @property
    def path(self) -> Path:
        return Path(self.data_dir).expanduser()


class ModelingResource(ConfigurableResource):
    """Where model artifacts go, the seed, and the knobs of promotion and monitoring.

    The model's own hyper-parameters are recsys.models.config.ModelConfig, recorded with every version.
    """

    artifact_dir: str = Field(description="Directory of the .keras model artifacts.")
    seed: int = Field(default=0, description="Seed of weight initialization and shuffling.")
    rating_id_dim: int = Field(
        default=0, description="Size of the rating model's hashed user and movie ID embeddings (0: genre features only)."
    )
    rating_factors: int = Field(
        default=5,
        description="Latent movie factors of the rating model, each user's folded in at event time from "
        "their earlier ratings (0: the genre towers alone).",
    )
    promotion_margin: float = Field(
        default=0.0025,
        description="A candidate is promoted only if its figure on the latest unseen day beats the champion's "
        "by at least this fraction of it (rating: MSE lower; retrieval: NDCG@10 of returning users higher).",
    )
    degradation_tolerance: float = Field(
        default=0.25,
        description="The monitoring check warns when the champion's MSE on a day exceeds the trailing "
        "median by more than this fraction.",
    )
    trailing_days: int = Field(default=7, description="Days in the trailing median of the degradation check.")
    artifact_retention_days: int = Field(
        default=7,
        description="Model artifacts of versions trained before the latest this many days are deleted, "
        "except each stage's champion and latest full model; the registry keeps every version's row.",
    )

    def settings(self) -> ModelingSettings:
        return ModelingSettings(
            artifact_dir=self.artifact_dir,
            seed=self.seed,
            rating_id_dim=self.rating_id_dim,
            rating_factors=self.rating_factors,
            promotion_margin=self.promotion_margin,
            degradation_tolerance=self.degradation_tolerance,
            trailing_days=self.trailing_days,
            artifact_retention_days=self.artifact_retention_days,
        )


class ServingResource(ConfigurableResource):
    """How recommendations are precomputed and what the cold-start fallback ranks."""

    recommendations_per_user: int = Field(default=20, description="Movies precomputed per user (the API's largest n).")
    popularity_days: int = Field(
        default=14, description="Daily batches of ratings (the bootstrap counts as one) behind the popularity ranking."
    )
    popularity_min_ratings: int = Field(default=20, description="Ratings a movie needs in that window to be ranked.")
    embedding_backend: str = Field(
        default="auto",
        description="auto: pgvector on a PostgreSQL server that offers it, otherwise float arrays; array: always arrays.",
    )
    carry_mean_shift: float = Field(
        default=ServingSettings.carry_mean_shift,
        description="While the champion stays, users who did not rate keep their vector from the previous set "
        "unless the global mean (a user tower input) moved by more than this many stars since.",
    )

    def settings(self) -> ServingSettings:
        return ServingSettings(
            recommendations_per_user=self.recommendations_per_user,
            popularity=PopularityWindow(days=self.popularity_days, min_ratings=self.popularity_min_ratings),
            embedding_backend=self.embedding_backend,
            carry_mean_shift=self.carry_mean_shift,
        )


class MonitoringResource(ConfigurableResource):
    """When the drift checks warn (defaults calibrated in benchmarks/drift.py) and when persisting
    alarms trigger a full retrain outside the weekly calendar."""

    reference_days: int = Field(default=DriftThresholds.reference_days, description="Trailing days a day is compared with.")
    rating_psi: float = Field(default=DriftThresholds.rating_psi, description="PSI of the rating distribution (half stars).")
    rating_wasserstein: float = Field(default=DriftThresholds.rating_wasserstein, description="Wasserstein distance of the ratings, in stars.")
    genre_mix_psi: float = Field(default=DriftThresholds.genre_mix_psi, description="PSI of the rated movies' genre mix.")
    genre_mean_shift: float = Field(default=DriftThresholds.genre_mean_shift, description="Largest shift of a genre's mean rating, in stars.")
    new_user_share: float = Field(default=DriftThresholds.new_user_share, description="Change of the share of the day's users who are new.")
    new_movie_share: float = Field(default=DriftThresholds.new_movie_share, description="Change of the share of the day's movies that are new.")
    residual_mean: float = Field(default=DriftThresholds.residual_mean, description="Change of the champion's mean error, in stars.")
    residual_spread: float = Field(default=DriftThresholds.residual_spread, description="Relative change of the champion's residual spread.")
    min_genre_ratings: int = Field(default=DriftThresholds.min_genre_ratings, description="Ratings a genre needs on each side to compare its mean.")
    persist_days: int = Field(default=RetrainPolicy.persist_days, description="Consecutive days with an alarm before a full retrain is triggered.")
    cooldown_days: int = Field(default=RetrainPolicy.cooldown_days, description="Days from one triggered retrain to the next at the earliest.")

    def thresholds(self) -> DriftThresholds:
        return DriftThresholds(**{f.name: getattr(self, f.name) for f in fields(DriftThresholds)})

    def policy(self) -> RetrainPolicy:
        return RetrainPolicy(persist_days=self.persist_days, cooldown_days=self.cooldown_days)


def build_resources(settings: Settings) -> dict:
    """The resources of the code location, from one settings value."""

    def store(name: str) -> StoreResource:
        # A URL that came from the environment goes to Dagster as its variable's name, so a
        # password in it never shows in the UI's config or the event log.
        if name in settings.url_variables:
            return StoreResource(url=EnvVar(settings.url_variables[name]), schema_name=name)
        if settings.base_variable:
            return StoreResource(url=EnvVar(settings.base_variable), store=name, schema_name=name)
        return StoreResource(url=settings.urls[name], schema_name=name)

    return {
        "archive": ArchiveResource(
            data_dir=settings.data_dir, batch_size=settings.batch_size, bootstrap_rows=settings.bootstrap_rows
        ),
        "raw_store": store("raw"),
        "lake_store": store("lake"),
        "features_store": store("features"),
        "modeling": ModelingResource(
            artifact_dir=settings.model_dir, seed=settings.seed, rating_id_dim=settings.rating_id_dim,
            rating_factors=settings.rating_factors,
        ),
        "serving": ServingResource(embedding_backend=settings.embedding_backend),
        "monitoring": MonitoringResource(),
    }
