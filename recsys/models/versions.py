"""Model versions of both stages: training one, saving its artifact, registering it, loading it back.

A version is named by its stage, kind and the last partition it learned from (full-bootstrap,
warm-2025-01-03, retrieval-full-2025-01-07), so rebuilding a partition replaces its version
instead of piling up near-copies, and a replay under the same seed names its models the same way.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from recsys.calendar import BOOTSTRAP_BATCH, Calendar
from recsys.errors import RecsysError
from recsys.features.point_in_time import cold_user
from recsys.models import artifacts, factors, network, registry, retrieval, training
from recsys.models.config import ModelConfig
from recsys.stores import Store


@dataclass(frozen=True)
class ModelingSettings:
    """Where artifacts go, the seed, and the knobs of promotion and monitoring."""

    artifact_dir: str
    seed: int = 0
    # A candidate is promoted only if its figure on the latest unseen day beats the champion's by
    # at least this fraction of it (MSE lower, NDCG@10 higher). Not 0: yesterday's warm start
    # almost always beats its parent by a hair (at MovieLens-32M's shape by a median 0.10% of MSE,
    # promoting on 77% of days), and each promotion ranks every user again; on MovieLens 100K the
    # daily gain is larger (median 0.5%) and still clears it.
    promotion_margin: float = 0.0025
    # The monitoring check warns when the champion's MSE on a day exceeds the trailing median by
    # more than this fraction.
    degradation_tolerance: float = 0.25
    trailing_days: int = 7
    rating_id_dim: int = 0  # the rating model's hashed ID embedding size (0: genre features only)
    rating_factors: int = 5  # the rating model's latent movie factors (0: none, the towers alone)
    # Artifacts of versions trained on earlier days than the latest this many are deleted, save
    # each stage's champion and latest full model (`prune_artifacts`).
    artifact_retention_days: int = 7

    def __post_init__(self) -> None:
        if self.artifact_retention_days < 1:
            raise RecsysError(f"artifact_retention_days must be at least 1, got {self.artifact_retention_days}.")

    @property
    def directory(self) -> Path:
        # Absolute, so the paths the registry records stay true wherever the next process starts.
        path = Path(self.artifact_dir).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def model_config(self) -> ModelConfig:
        return ModelConfig(seed=self.seed, id_dim=self.rating_id_dim, factors=self.rating_factors)

    def retrieval_config(self) -> retrieval.RetrievalConfig:
        return retrieval.RetrievalConfig(seed=self.seed)


def examples_where(features: Store, where: str, params: dict) -> pl.DataFrame:
    """Training examples selected by a SQL condition, in replay order."""
    return features.query(f"SELECT * FROM training_examples WHERE {where} ORDER BY seq", params)


RATING_COLUMNS = "seq, batch, user_id, movie_id, rating, global_mean, timestamp"


def rating_history(features: Store, through_batch: int, rated_after: int | None = None) -> pl.DataFrame:
    """Every rating up to `through_batch` as the feature store's examples hold them (the lake's
    clean ratings, each with the global mean it was made under), in replay order: what users are
    folded in from and movie factors are fitted on (`recsys.models.factors`). With `rated_after`,
    only the ratings of users who rated in a batch after it (all of theirs)."""
    columns = f"SELECT {RATING_COLUMNS} FROM training_examples WHERE batch <= $through"
    if rated_after is None:
        return features.query(f"{columns} ORDER BY seq", {"through": through_batch})
    # The users first, then theirs: handed a list, PostgreSQL looks each user up in the
    # training_examples_user index; a subquery it took for six times as many users as the day
    # holds, and it scanned the whole index. A full-shape day's 300k rows at 5.5M ratings: 0.7 to
    # 1.2 s against 1.9 to 2.1 s.
    users = users_rated_between(features, rated_after, through_batch)
    if not users:
        return features.query(f"{columns} AND false", {"through": through_batch})
    return features.query(f"{columns} AND user_id IN (SELECT unnest($users)) ORDER BY seq", {"through": through_batch, "users": users})


def users_rated_between(features: Store, after_batch: int, through_batch: int) -> list[int]:
    """The users who rated in a batch after `after_batch`, up to `through_batch`."""
    return features.query(
        "SELECT DISTINCT user_id FROM training_examples WHERE batch > $after AND batch <= $through",
        {"after": after_batch, "through": through_batch},
    )["user_id"].to_list()


def latest_ratings(features: Store, before_batch: int, limit: int) -> pl.DataFrame:
    """The latest `limit` ratings of the batches before `before_batch` (newest first)."""
    return features.query(
        f"SELECT {RATING_COLUMNS} FROM training_examples WHERE batch < $before ORDER BY seq DESC LIMIT $limit",
        {"before": before_batch, "limit": limit},
    )


def with_factor_slots(
    examples: pl.DataFrame, config: ModelConfig, movie_factors: factors.MovieFactors | None, history: pl.DataFrame
) -> pl.DataFrame:
    """`examples` with what a rating model with factors reads besides the features: each movie's
    factor row and each rating's user folded in at its time from `history` (which holds the
    examples' rows, by `seq`, and their users' earlier ratings). Unchanged for a model without."""
    if not config.factors:
        return examples
    if movie_factors is None:
        raise RecsysError("A rating model with factors was given none: its artifact holds no movie factors.")
    settings = config.factor_settings()
    positions = (
        examples.select("seq")
        .join(history.select("seq").with_row_index("position"), on="seq", how="left", maintain_order="left")["position"]
    )
    if positions.null_count():
        raise RecsysError("The history to fold users in from lacks some of the examples it should hold.")
    vectors = factors.fold_in(movie_factors, settings, history, positions.to_numpy())
    slotted = factors.with_user_factors(examples, vectors, settings)
    return factors.with_movie_factors(slotted, movie_factors, settings)


def cold_rating_user(global_mean: float, config: ModelConfig) -> pl.DataFrame:
    """What the rating model reads of a user with no ratings (with factors: nothing folded in)."""
    cold = cold_user(global_mean)
    return factors.with_no_history(cold, config.factor_settings()) if config.factors else cold


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
    config: ModelConfig | None = None,
    movie_factors: factors.MovieFactors | None = None,
) -> registry.ModelVersion:
    """Write the artifact (with the rating model's movie factors) and register the version with
    its settings (`config`, by default the modeling settings')."""
    prefix = "" if stage == registry.RATING else f"{stage}-"
    version = f"{prefix}{kind}-{calendar.label(last_batch)}"
    if config is None:
        config = modeling.model_config() if stage == registry.RATING else modeling.retrieval_config()
    artifact = modeling.directory / f"{version}.keras"
    checksum = artifacts.save_model(trained, artifact, movie_factors)
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


def latest_examples(features: Store, last_batch: int, limit: int, columns: str = "*") -> pl.DataFrame:
    """The latest `limit` training examples up to `last_batch` (their `columns`), in replay order:
    what a full training that keeps to a window of the history learns from."""
    # The window's first seq found apart, then one ordered scan: a top-N of whole example rows
    # sorted them all (2.5 s against 1.0 s for 2M rows on DuckDB).
    return features.query(
        f"SELECT {columns} FROM training_examples WHERE batch <= $last AND seq >= (SELECT min(seq) FROM"
        " (SELECT seq FROM training_examples WHERE batch <= $last ORDER BY seq DESC LIMIT $limit) AS recent) ORDER BY seq",
        {"last": last_batch, "limit": limit},
    )


def latest_pairs(features: Store, last_batch: int, limit: int) -> pl.DataFrame:
    """The latest `limit` (user, movie) pairs of the examples up to `last_batch`, with their batch,
    in replay order: what a full retrieval training learns from."""
    return latest_examples(features, last_batch, limit, "batch, user_id, movie_id")


def train_full(
    features: Store,
    modeling: ModelingSettings,
    calendar: Calendar,
    last_batch: int,
    status: str,
    stage: str = registry.RATING,
) -> registry.ModelVersion:
    """A model of `stage` trained on the history up to `last_batch`: the rating model's movie
    factors on every rating (bootstrap included), its towers on every example or, continuing the
    previous full rating model when there is one (`previous_full`, its parent), on the latest
    `max_examples_continued`; the retrieval model from scratch on the latest `max_pairs_seen`
    (user, movie) pairs, which are all of them until the history outgrows that."""
    no_examples = "The feature store holds no training examples yet: materialize bootstrap_features first."
    if stage == registry.RETRIEVAL:
        config = modeling.retrieval_config()
        # Why a window and not every pair: which movies people choose drifts, so the latest pairs
        # teach the retrieval stage more per step than old ones, and the cost of a weekly retrain
        # stops growing with the archive (at MovieLens-32M's shape one pass over all 5M pairs
        # ranked worse than one over the latest 2M; see RetrievalConfig).
        pairs = latest_pairs(features, last_batch, config.max_pairs_seen)
        if pairs.height == 0:
            raise RecsysError(no_examples)
        trained, learning_rate, previous = retrieval.fresh_retrieval_model(config, pairs), config.learning_rate, None
        report = retrieval.train_retrieval(
            trained, pairs.select("user_id", "movie_id"), config, learning_rate=learning_rate,
            epochs=config.full_epochs(pairs.height),
        )  # fmt: skip
        first_batch, movie_factors = int(pairs["batch"].min()), None
    else:
        ratings = rating_history(features, last_batch)
        if ratings.height == 0:
            raise RecsysError(no_examples)
        config = modeling.model_config()
        # A full training after an earlier one with the same settings continues it: the movie
        # factors' fit for a few passes, the towers for `retrain_epochs` over the latest examples at
        # the warm learning rate. At MovieLens-32M's shape (5.7M examples, judged on the next 7 days'
        # 350k) that reached a holdout MSE of 0.4170 in 33 s where fresh towers took 104 s to
        # 0.4211, and the factors 0.5219 in 4.6 s against 0.5221 in 30.1 s (by hand; issue 14's note).
        previous = previous_full(features, config, last_batch)
        movie_factors = None
        if config.factors:
            movie_factors = factors.fit_movie_factors(
                ratings, config.factor_settings(), start=load_factors(previous) if previous else None,
                iterations=config.factor_retrain_iterations if previous else None,
            )  # fmt: skip
        if previous is None:
            examples = examples_where(features, "batch <= $last", {"last": last_batch})
            trained, learning_rate, epochs = network.fresh_model(config), config.learning_rate, config.full_epochs(examples.height)
        else:
            examples = latest_examples(features, last_batch, config.max_examples_continued)
            trained = artifacts.warm_start(previous.artifact, previous.checksum, config)
            learning_rate, epochs = config.warm_learning_rate, config.retrain_epochs
        # Each example's user folded in at its time from every earlier rating, the window's too.
        examples = with_factor_slots(examples, config, movie_factors, ratings)
        report = training.train(trained, examples, config, learning_rate=learning_rate, epochs=epochs)
        first_batch = BOOTSTRAP_BATCH
    return save_version(
        features, modeling, calendar, trained, report, kind="full", parent=previous.version if previous else None,
        first_batch=first_batch, last_batch=last_batch, learning_rate=learning_rate, status=status, stage=stage,
        movie_factors=movie_factors,
    )  # fmt: skip


def previous_full(features: Store, config: ModelConfig, last_batch: int) -> registry.ModelVersion | None:
    """The latest full rating version before `last_batch` trained with `config`'s settings whose
    artifact is still there (`prune_artifacts`), which a full training continues; None when there
    is none (the bootstrap's, or settings changed)."""
    earlier = [
        v for v in registry.of_kind(features, "full")
        if v.last_batch < last_batch and config_of(v) == config and Path(v.artifact).is_file()
    ]  # fmt: skip
    return max(earlier, key=lambda v: v.last_batch, default=None)


RETRIEVAL_LAYERS = retrieval.LAYERS


def prune_artifacts(features: Store, modeling: ModelingSettings, batch: int) -> tuple[int, int]:
    """Delete the artifacts no day from `batch` on needs; returns (files, bytes) deleted.

    Kept: the versions trained through the last `artifact_retention_days` days (what a day scores
    and warm-starts from, and what running one of those days again needs), each stage's champion
    (in service) and its latest full model (scored as a candidate, and what the next full rating
    training continues). Why: a version's artifact holds its whole state, 64 to 110 MB for the
    retrieval model at MovieLens-32M's users and movies, and a version a day per stage would fill
    a disk over the archive's 540 days. The registry keeps every version's row, so lineage and
    metrics stay whole; loading a pruned one says its artifact does not exist.
    """
    kept = {
        version.version
        for stage in (registry.RATING, registry.RETRIEVAL)
        for version in (registry.champion(features, stage), (registry.of_kind(features, "full", stage) or [None])[-1])
        if version is not None
    }
    files = size = 0
    for version in registry.every_version(features):
        path = Path(version.artifact)
        if version.version in kept or version.last_batch > batch - modeling.artifact_retention_days or not path.is_file():
            continue
        size += path.stat().st_size
        path.unlink()
        files += 1
    return files, size


# The models and factors this process loaded last, by artifact checksum. Under the in-process
# executor a daily run's serving steps embed and rank with the champions its models step has just
# loaded: three loads a day, 0.4 s at MovieLens-32M's shape (by hand). A hit still checks the file
# against its checksum (0.02 to 0.04 s), so a damaged or deleted artifact is refused as before; a
# model handed out for training leaves first (`LoadedVersions.for_training`), so what is kept is
# always the file's state.
_RECENT: OrderedDict[tuple[str, str], object] = OrderedDict()
_RECENT_KEPT = 8


def _recently_loaded(kind: str, version: registry.ModelVersion, load: Callable[[], object]):
    key = (kind, version.checksum)
    if key in _RECENT:
        artifacts.verified(version.artifact, version.checksum)
        _RECENT.move_to_end(key)
        return _RECENT[key]
    _RECENT[key] = loaded = load()
    while len(_RECENT) > _RECENT_KEPT:
        _RECENT.popitem(last=False)
    return loaded


def load_version(version: registry.ModelVersion):
    """The version's Keras model, once its artifact matches the recorded checksum. Share it, do not
    train it: `LoadedVersions.for_training` gives a model to train."""
    layers = RETRIEVAL_LAYERS if version.stage == registry.RETRIEVAL else None
    return _recently_loaded("model", version, lambda: artifacts.load_model(version.artifact, version.checksum, layers))


def load_factors(version: registry.ModelVersion) -> factors.MovieFactors | None:
    """The movie factors a rating version's inputs are made with (None for a model without)."""
    return _recently_loaded("factors", version, lambda: artifacts.load_factors(version.artifact, version.checksum))


class LoadedVersions:
    """The versions a day reads, each artifact loaded and checked once.

    A day scores up to three versions of each stage and then warm-starts one of them, and the
    three are often fewer (the latest full model is the champion for days after its promotion):
    at MovieLens-32M's shape a retrieval artifact takes about 0.3 s to load. A model handed out
    for training (`for_training`) leaves the cache, since once trained it is no longer its version.
    """

    def __init__(self) -> None:
        self._models: dict[str, object] = {}
        self._factors: dict[str, factors.MovieFactors | None] = {}

    def model(self, version: registry.ModelVersion):
        if version.version not in self._models:
            self._models[version.version] = load_version(version)
        return self._models[version.version]

    def factors(self, version: registry.ModelVersion) -> factors.MovieFactors | None:
        if version.version not in self._factors:
            self._factors[version.version] = load_factors(version)
        return self._factors[version.version]

    def for_training(self, version: registry.ModelVersion, learning_rate: float):
        """The version's model with its optimizer state, at `learning_rate`, to train further."""
        model = self.model(version)
        del self._models[version.version]
        _RECENT.pop(("model", version.checksum), None)
        model.optimizer.learning_rate = learning_rate
        return model


def _settings_of(version: registry.ModelVersion, cls, recorded_before: dict | None = None):
    """The `cls` settings recorded in a version's hyper-parameters (JSON lists back to tuples);
    `recorded_before` gives the values of settings a version from before them did not record."""
    known = {f.name for f in dataclasses.fields(cls)}
    recorded = {**(recorded_before or {}), **version.hyperparameters}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items() if k in known})


def config_of(version: registry.ModelVersion) -> ModelConfig:
    """The settings a rating version was trained with: its inputs must be prepared the same way.
    (A version from before factors has none.)"""
    return _settings_of(version, ModelConfig, recorded_before={"factors": 0})


def retrieval_config_of(version: registry.ModelVersion) -> retrieval.RetrievalConfig:
    """The settings a retrieval version was trained with (its candidates and rating weight included)."""
    return _settings_of(version, retrieval.RetrievalConfig)
