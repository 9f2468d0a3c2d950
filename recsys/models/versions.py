"""Model versions of both stages: training one, saving its artifact, registering it, loading it back.

A version is named by its stage, kind and the last partition it learned from (full-bootstrap,
warm-2025-01-03, retrieval-full-2025-01-07), so rebuilding a partition replaces its version
instead of piling up near-copies, and a replay under the same seed names its models the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsys.calendar import BOOTSTRAP_BATCH, Calendar
from recsys.errors import RecsysError
from recsys.models import artifacts, network, registry, retrieval, training
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
    rating_id_dim: int = 0  # the rating model's hashed ID embedding size (0: genre features only)

    @property
    def directory(self) -> Path:
        # Absolute, so the paths the registry records stay true wherever the next process starts.
        path = Path(self.artifact_dir).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def model_config(self) -> ModelConfig:
        return ModelConfig(seed=self.seed, id_dim=self.rating_id_dim)

    def retrieval_config(self) -> retrieval.RetrievalConfig:
        return retrieval.RetrievalConfig(seed=self.seed)


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
    stage: str = registry.RATING,
) -> registry.ModelVersion:
    """Write the artifact and register the version."""
    prefix = "" if stage == registry.RATING else f"{stage}-"
    version = f"{prefix}{kind}-{calendar.label(last_batch)}"
    config = modeling.model_config() if stage == registry.RATING else modeling.retrieval_config()
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
        hyperparameters={**config.to_dict(), "learning_rate_used": learning_rate},
        metrics=report.to_dict(),
        artifact=str(artifact),
        checksum=checksum,
        created_at=registry.now(),
        status=status,
        stage=stage,
    )
    registry.register(features, entry)
    return entry


def train_full(
    features: Store,
    modeling: ModelingSettings,
    calendar: Calendar,
    last_batch: int,
    status: str,
    stage: str = registry.RATING,
) -> registry.ModelVersion:
    """A model of `stage` trained from scratch on every example up to `last_batch` (bootstrap
    included): the rating model on the examples, the retrieval model on their (user, movie) pairs."""
    examples = examples_where(features, "batch <= $last", {"last": last_batch})
    if examples.height == 0:
        raise RecsysError("The feature store holds no training examples yet: materialize bootstrap_features first.")
    if stage == registry.RETRIEVAL:
        config = modeling.retrieval_config()
        fresh = retrieval.fresh_retrieval_model(config)
        report = retrieval.train_retrieval(
            fresh, examples.select("user_id", "movie_id"), config, learning_rate=config.learning_rate,
            epochs=config.full_epochs(examples.height),
        )  # fmt: skip
    else:
        config = modeling.model_config()
        fresh = network.fresh_model(config)
        report = training.train(
            fresh, examples, config, learning_rate=config.learning_rate, epochs=config.full_epochs(examples.height)
        )
    return save_version(
        features, modeling, calendar, fresh, report, kind="full", parent=None, first_batch=BOOTSTRAP_BATCH,
        last_batch=last_batch, learning_rate=config.learning_rate, status=status, stage=stage,
    )  # fmt: skip


RETRIEVAL_LAYERS = frozenset({retrieval.USER_ID, retrieval.MOVIE_ID, retrieval.USER_VECTOR, retrieval.MOVIE_VECTOR})


def load_version(version: registry.ModelVersion):
    """The version's Keras model, once its artifact matches the recorded checksum."""
    layers = RETRIEVAL_LAYERS if version.stage == registry.RETRIEVAL else None
    return artifacts.load_model(version.artifact, version.checksum, layers)


def _settings_of(version: registry.ModelVersion, cls):
    """The `cls` settings recorded in a version's hyper-parameters (JSON lists back to tuples)."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in version.hyperparameters.items() if k in known})


def config_of(version: registry.ModelVersion) -> ModelConfig:
    """The settings a rating version was trained with: its inputs must be prepared the same way."""
    return _settings_of(version, ModelConfig)


def retrieval_config_of(version: registry.ModelVersion) -> retrieval.RetrievalConfig:
    """The settings a retrieval version was trained with (its candidates and rating weight included)."""
    return _settings_of(version, retrieval.RetrievalConfig)
