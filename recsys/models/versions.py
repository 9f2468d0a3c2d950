"""Model versions: training one, saving its artifact, registering it, and loading it back.

A version is named by its kind and the last partition it learned from (full-bootstrap,
warm-2025-01-03, full-2025-01-07), so rebuilding a partition replaces its version instead of
piling up near-copies, and a replay under the same seed names its models the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsys.calendar import BOOTSTRAP_BATCH, Calendar
from recsys.errors import RecsysError
from recsys.models import artifacts, network, registry, training
from recsys.models.config import ModelConfig
from recsys.stores import Store


@dataclass(frozen=True)
class ModelingSettings:
    """Where artifacts go, the seed, and the knobs of promotion and monitoring."""

    artifact_dir: str
    seed: int = 0
    # A candidate is promoted only if its MSE on the latest unseen day is below the champion's by
    # at least this fraction of the champion's MSE.
    promotion_margin: float = 0.0
    # The monitoring check warns when the champion's MSE on a day exceeds the trailing median by
    # more than this fraction.
    degradation_tolerance: float = 0.25
    trailing_days: int = 7

    @property
    def directory(self) -> Path:
        # Absolute, so the paths the registry records stay true wherever the next process starts.
        path = Path(self.artifact_dir).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def model_config(self) -> ModelConfig:
        return ModelConfig(seed=self.seed)

def examples_where(features: Store, where: str, params: dict) -> pl.DataFrame:
    """Training examples selected by a SQL condition, in replay order."""
    return features.query(f"SELECT * FROM training_examples WHERE {where} ORDER BY seq", params)


def save_version(
    features: Store,
    modeling: ModelingSettings,
    calendar: Calendar,
    trained,
    report: training.TrainReport,
    *,
    kind: str,
    parent: str | None,
    first_batch: int,
    last_batch: int,
    learning_rate: float,
    status: str,
) -> registry.ModelVersion:
    """Write the artifact and register the version."""
    version = f"{kind}-{calendar.label(last_batch)}"
    artifact = modeling.directory / f"{version}.keras"
    checksum = artifacts.save_model(trained, artifact)
    entry = registry.ModelVersion(
        version=version,
        kind=kind,
        parent=parent,
        trained_on=calendar.span([first_batch, last_batch]),
        first_batch=first_batch,
        last_batch=last_batch,
        rows=report.examples,
        hyperparameters={**modeling.model_config().to_dict(), "learning_rate_used": learning_rate},
        metrics=report.to_dict(),
        artifact=str(artifact),
        checksum=checksum,
        created_at=registry.now(),
        status=status,
    )
    registry.register(features, entry)
    return entry


def train_full(
    features: Store, modeling: ModelingSettings, calendar: Calendar, last_batch: int, status: str
) -> registry.ModelVersion:
    """A model trained from scratch on every example up to `last_batch` (bootstrap included)."""
    examples = examples_where(features, "batch <= $last", {"last": last_batch})
    if examples.height == 0:
        raise RecsysError("The feature store holds no training examples yet: materialize bootstrap_features first.")
    config = modeling.model_config()
    fresh = network.fresh_model(config)
    report = training.train(fresh, examples, config, learning_rate=config.learning_rate, epochs=config.epochs)
    return save_version(
        features, modeling, calendar, fresh, report, kind="full", parent=None, first_batch=BOOTSTRAP_BATCH,
        last_batch=last_batch, learning_rate=config.learning_rate, status=status,
    )  # fmt: skip


def load_version(version: registry.ModelVersion):
    """The version's Keras model, once its artifact matches the recorded checksum."""
    return artifacts.load_model(version.artifact, version.checksum)


def config_of(version: registry.ModelVersion) -> ModelConfig:
    """The settings a version was trained with: its inputs must be prepared the same way."""
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in version.hyperparameters.items() if k in known}
    )
