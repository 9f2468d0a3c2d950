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
