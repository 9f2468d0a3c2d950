"""The platform's settings: one value, read from the environment in one place, handed down.

Only the entry points (the Dagster definitions, the CLI, the HTTP service) call `from_env`;
everything below them receives a `Settings` (or the part of it it needs) as an argument.

`RECSYS_STORE` is either a directory (the embedded default: one DuckDB file per store in it) or a
PostgreSQL server URL under which the three databases live (`<prefix>_raw`, `<prefix>_lake`,
`<prefix>_features`, the prefix being the URL's database name, `recsys` when it has none).
`RECSYS_RAW_URL`, `RECSYS_LAKE_URL` and `RECSYS_FEATURES_URL` override single stores.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

from recsys.calendar import Calendar, parse_date
from recsys.errors import RecsysError
from recsys.stores import is_postgres_url

STORE_NAMES = ("raw", "lake", "features")
DEFAULT_STORE_DIR = ".recsys/stores"  # and its stores
DEFAULT_DATA_DIR = ".recsys/data"  # where `recsys demo` writes its archive
DEFAULT_START_DATE = "2025-01-01"
DEFAULT_BATCH_SIZE = 50_000
DEFAULT_BOOTSTRAP_ROWS = 5_000_000
DEFAULT_SEED = 0
DEFAULT_SCHEDULE_CRON = "0 2 * * *"
# Environment variables that name one store's URL, by store.
URL_VARIABLES = {"raw": "RECSYS_RAW_URL", "lake": "RECSYS_LAKE_URL", "features": "RECSYS_FEATURES_URL"}


def store_urls(base: str) -> dict[str, str]:
    """The raw, lake and features URLs under one directory or one PostgreSQL server URL."""
    if is_postgres_url(base):
        parts = urlsplit(base)
        prefix = parts.path.strip("/") or "recsys"
        return {name: urlunsplit(parts._replace(path=f"/{prefix}_{name}")) for name in STORE_NAMES}
    if "://" in base:
        raise RecsysError(f"Store {base!r} is neither a directory nor a postgresql:// URL.")
    directory = Path(base).expanduser()
    return {name: str(directory / f"{name}.duckdb") for name in STORE_NAMES}


def default_model_dir(base: str) -> str:
    """Where a store's model artifacts go unless RECSYS_MODEL_DIR says: beside embedded stores,
    and for a PostgreSQL store a folder named after it (server, port, database prefix), so two
    stores never share, overwrite or empty each other's artifacts."""
    if not is_postgres_url(base):
        return str(Path(base) / "models")
    parts = urlsplit(base)
    prefix = parts.path.strip("/") or "recsys"
    return str(Path(".recsys/models") / f"{parts.hostname}-{parts.port or 5432}-{prefix}")


@dataclass(frozen=True)
class Settings:
    """Stores, archive, replay calendar, seed and serving layout: everything configurable."""

    raw_url: str
    lake_url: str
    features_url: str
    data_dir: str = DEFAULT_DATA_DIR
    start_date: dt.date = parse_date(DEFAULT_START_DATE)
    batch_size: int = DEFAULT_BATCH_SIZE
    bootstrap_rows: int | None = None
    model_dir: str = ".recsys/models"
    seed: int = DEFAULT_SEED
    # The rating model's hashed ID embedding size; 0 (genre features only) measured better on
    # MovieLens 100K (benchmarks/results/movielens_100k.json).
    rating_id_dim: int = 0
    # The rating model's latent movie factors (recsys.models.factors); 0: the genre towers alone.
    rating_factors: int = 5
    embedding_backend: str = "auto"
    # When the schedule runs the next archive day: nightly by default; "* * * * *" for a demo.
    schedule_cron: str = DEFAULT_SCHEDULE_CRON
    # Daily batches of the archive being replayed (the calendar's length); None: open-ended.
    # Not read from the environment: `recsys.raw.load.archive_days` finds it in the archive.
    archive_days: int | None = None
    # Stores whose URL came from its own environment variable (store -> variable): Dagster then
    # gets the variable's name rather than the URL, so a password never shows in its UI.
    url_variables: Mapping[str, str] = field(default_factory=dict)
    # Set when the stores' base came from RECSYS_STORE: Dagster then gets that variable's name.
    base_variable: str | None = None

    @property
    def calendar(self) -> Calendar:
        return Calendar(self.start_date, self.archive_days)

    @property
    def urls(self) -> dict[str, str]:
        return {"raw": self.raw_url, "lake": self.lake_url, "features": self.features_url}

    @classmethod
    def for_store(cls, base: str, **values) -> Settings:
        """Settings whose three stores live under one directory or PostgreSQL server URL."""
        urls = store_urls(base)
        values.setdefault("model_dir", default_model_dir(base))
        return cls(raw_url=urls["raw"], lake_url=urls["lake"], features_url=urls["features"], **values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        base = env.get("RECSYS_STORE") or DEFAULT_STORE_DIR
        urls = store_urls(base)
        bootstrap = env.get("RECSYS_BOOTSTRAP_ROWS")
        overridden = {store: name for store, name in URL_VARIABLES.items() if env.get(name)}
        return cls(
            raw_url=env.get("RECSYS_RAW_URL") or urls["raw"],
            lake_url=env.get("RECSYS_LAKE_URL") or urls["lake"],
            features_url=env.get("RECSYS_FEATURES_URL") or urls["features"],
            data_dir=env.get("RECSYS_DATA_DIR") or DEFAULT_DATA_DIR,
            start_date=parse_date(env.get("RECSYS_START_DATE") or DEFAULT_START_DATE),
            batch_size=int(env.get("RECSYS_BATCH_SIZE") or DEFAULT_BATCH_SIZE),
            bootstrap_rows=int(bootstrap) if bootstrap else None,
            model_dir=env.get("RECSYS_MODEL_DIR") or default_model_dir(base),
            seed=int(env.get("RECSYS_SEED") or DEFAULT_SEED),
            rating_id_dim=int(env.get("RECSYS_RATING_ID_DIM") or 0),
            rating_factors=int(env.get("RECSYS_RATING_FACTORS") or 5),
            embedding_backend=env.get("RECSYS_EMBEDDING_BACKEND") or "auto",
            schedule_cron=env.get("RECSYS_SCHEDULE_CRON") or DEFAULT_SCHEDULE_CRON,
            url_variables=overridden,
            base_variable="RECSYS_STORE" if env.get("RECSYS_STORE") else None,
        )
