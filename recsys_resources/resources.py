"""Dagster resources. Thin on purpose: configuration plus a way to open the real thing."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from dagster import ConfigurableResource
from pydantic import Field

from recsys_resources.stores import Store, open_store


class StoreResource(ConfigurableResource):
    """One of the platform's databases (raw, lake or features), addressed by URL."""

    url: str = Field(description="A DuckDB file path, or postgresql://user:password@host:port/database.")
    schema_name: str = Field(description="The file in sql/ that creates this store's tables.")

    @contextmanager
    def open(self) -> Iterator[Store]:
        """Open the store with its schema applied; closed again on exit."""
        store = open_store(self.url)
        try:
            store.apply_schema(self.schema_name)
            yield store
        finally:
            store.close()


class ArchiveResource(ConfigurableResource):
    """The ratings archive being replayed and how it is cut into batches."""

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

    The model's own hyper-parameters are recsys_assets.model.ModelConfig, recorded with every version.
    """

    artifact_dir: str = Field(description="Directory of the .keras model artifacts.")
    seed: int = Field(default=0, description="Seed of weight initialization and shuffling.")
    promotion_margin: float = Field(
        default=0.0,
        description="A candidate is promoted only if its MSE on the latest unseen day is below the "
        "champion's by at least this fraction of the champion's MSE.",
    )
    degradation_tolerance: float = Field(
        default=0.25,
        description="The monitoring check warns when the champion's MSE on a day exceeds the trailing "
        "median by more than this fraction.",
    )
    trailing_days: int = Field(default=7, description="Days in the trailing median of the degradation check.")

    @property
    def directory(self) -> Path:
        path = Path(self.artifact_dir).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path


class ServingResource(ConfigurableResource):
    """How recommendations are precomputed and what the cold-start fallback ranks."""

    recommendations_per_user: int = Field(default=20, description="Movies precomputed per user (the API's largest n).")
    popularity_days: int = Field(
        default=14, description="Daily batches of ratings (the bootstrap counts as one) behind the popularity ranking."
    )
    popularity_min_ratings: int = Field(
        default=20, description="Ratings a movie needs in that window to be ranked by its mean rating."
    )
    embedding_backend: str = Field(
        default="auto",
        description="auto: pgvector on a PostgreSQL server that offers it, otherwise float arrays; array: always arrays.",
    )
