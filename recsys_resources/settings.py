"""Environment-driven configuration, read in one place.

`RECSYS_STORE` is either a directory (the embedded default: one DuckDB file per store in it) or a
PostgreSQL server URL under which the three databases live (`<prefix>_raw`, `<prefix>_lake`,
`<prefix>_features`, the prefix being the URL's database name, `recsys` when it has none).
`RECSYS_RAW_URL`, `RECSYS_LAKE_URL` and `RECSYS_FEATURES_URL` override single stores.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from recsys_resources.errors import RecsysError
from recsys_resources.stores import is_postgres_url

STORE_NAMES = ("raw", "lake", "features")
DEFAULT_STORE_DIR = ".recsys/stores"
DEFAULT_START_DATE = "2025-01-01"
DEFAULT_BATCH_SIZE = 50_000
DEFAULT_BOOTSTRAP_ROWS = 5_000_000


def store_urls(base: str) -> dict[str, str]:
    """The raw, lake and features URLs under one directory or one PostgreSQL server URL."""
    if is_postgres_url(base):
        parts = urlsplit(base)
        prefix = parts.path.strip("/") or "recsys"
        return {name: urlunsplit(parts._replace(path=f"/{prefix}_{name}")) for name in STORE_NAMES}
    if "://" in base:
        raise RecsysError(
            f"Store {base!r} is neither a directory nor a postgresql:// URL."
        )
    directory = Path(base).expanduser()
    return {name: str(directory / f"{name}.duckdb") for name in STORE_NAMES}


def parse_start_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise RecsysError(f"Start date {text!r} is not a date in YYYY-MM-DD form.") from None


@dataclass(frozen=True)
class Settings:
    """What the environment says about stores, archive and replay calendar."""

    raw_url: str
    lake_url: str
    features_url: str
    data_dir: str
    start_date: dt.date
    batch_size: int
    bootstrap_rows: int | None
    model_dir: str = ".recsys/models"
    seed: int = 0
    embedding_backend: str = "auto"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        base = env.get("RECSYS_STORE") or DEFAULT_STORE_DIR
        urls = store_urls(base)
        # Artifacts sit beside embedded stores; with a PostgreSQL store they need a directory of
        # their own (a volume in docker compose).
        default_models = str(Path(base) / "models") if not is_postgres_url(base) else ".recsys/models"
        bootstrap = env.get("RECSYS_BOOTSTRAP_ROWS")
        return cls(
            raw_url=env.get("RECSYS_RAW_URL") or urls["raw"],
            lake_url=env.get("RECSYS_LAKE_URL") or urls["lake"],
            features_url=env.get("RECSYS_FEATURES_URL") or urls["features"],
            data_dir=env.get("RECSYS_DATA_DIR") or "data/synthetic",
            start_date=parse_start_date(env.get("RECSYS_START_DATE") or DEFAULT_START_DATE),
            batch_size=int(env.get("RECSYS_BATCH_SIZE") or DEFAULT_BATCH_SIZE),
            bootstrap_rows=int(bootstrap) if bootstrap else None,
            model_dir=env.get("RECSYS_MODEL_DIR") or default_models,
            seed=int(env.get("RECSYS_SEED") or 0),
            embedding_backend=env.get("RECSYS_EMBEDDING_BACKEND") or "auto",
        )
