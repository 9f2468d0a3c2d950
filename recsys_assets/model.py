"""The genre-preference two-tower model (Keras 3 on TensorFlow), as pure functions.

Why two towers: a user is described by what they rated so far (per-genre means and counts), a
movie by what it is (genres, year) and how it was rated so far; each tower maps its side to a
vector, and the predicted rating is the global mean plus the two vectors' dot product. The towers
thus learn deviations from the mean, and each tower alone gives embeddings (`towers`).

Why shrinkage in the inputs: in a replay many ratings of a new day come from users with little or
no history, and a genre mean over two ratings is mostly noise. Every mean is shrunk toward a
prior, (count * mean + k * prior) / (count + k): a genre mean toward the user's own mean, the
user's mean toward the global mean, a movie's mean toward the global mean. A user without history
thus gets the global mean everywhere (all relative inputs 0), which is well defined, and log1p
counts tell the tower how much evidence stands behind each mean.

Why a hand-written training loop instead of `model.fit`: on a 2-core CPU it was about 1.5-2x as
fast (0.6-1.1M examples/s against ~0.5M for fit on numpy arrays and ~0.25M for fit on a tf.data
pipeline), its shuffle is a seeded numpy permutation, and it measures the loss on the first batch
before any update, which proves that a warm start begins from its parent's weights.

Determinism: weights are initialized from seeded initializers and batches follow a permutation
drawn from `config.seed`, so the same seed gives bit-identical weights on the same machine
(measured, without `tf.config.experimental.enable_op_determinism`, which changed nothing here but
is process-wide and cost a few percent; CPU results may differ across thread counts).

TensorFlow and Keras are imported lazily, on the first call that needs them (5-7 s and ~500 MB
here), so importing this module, e.g. while Dagster loads definitions, costs only numpy and
Polars. Before that import, TF_CPP_MIN_LOG_LEVEL=1 (unless set) hides TensorFlow's INFO lines and
keeps its warnings and errors; KERAS_BACKEND defaults to tensorflow. TF 2.21 still prints absl's
"All log messages before absl::InitializeLog()" notice and a oneDNN INFO line (twice each): they
come before the level applies. TF_ENABLE_ONEDNN_OPTS=0 removes them (same speed measured, slightly
different float rounding); this module leaves that choice to the environment.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import weakref
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from recsys_assets.genres import GENRE_SLUGS
from recsys_assets.transforms.cleaning import MAX_RATING, MIN_RATING  # predictions stay on the rating scale
from recsys_assets.transforms.features import EXAMPLE_FEATURES
from recsys_resources.errors import RecsysError

if TYPE_CHECKING:
    import keras

# Names of the model's inputs and of the layers later code looks up.
USER_INPUT = "user_features"
MOVIE_INPUT = "movie_features"
GLOBAL_MEAN_INPUT = "global_mean"
USER_TOWER = "user_tower"
MOVIE_TOWER = "movie_tower"
OUTPUT = "rating"

GENRE_FLAGS = [f"mg_{s}" for s in GENRE_SLUGS]
# Column order of the tower inputs, for anyone who needs to explain or rebuild them.
USER_INPUT_COLUMNS = [
    "user_mean_rel",
    "user_log_count",
    *[f"user_genre_mean_rel_{s}" for s in GENRE_SLUGS],
    *[f"user_genre_log_count_{s}" for s in GENRE_SLUGS],
]
MOVIE_INPUT_COLUMNS = [*GENRE_FLAGS, "m_no_genre", "m_year_z", "m_year_known", "movie_mean_rel", "movie_log_count"]

# log1p counts reach ~9 at 10k ratings; scaled to about 0..2, the range of the relative means.
LOG_COUNT_SCALE = 0.2
# The towers' output layers start 10x smaller than Glorot: a fresh model then predicts about the
# global mean (first-batch MSE ~0.9 instead of ~15), and training converges in a few epochs.
OUTPUT_INIT_SCALE = 0.1
_PREDICT_BATCH = 65_536


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and training settings; `to_dict()` is what a run records with its model.

    Defaults were tuned on synthetic data (300k-400k ratings): batch 4096 and 8 epochs at 3e-3
    close ~60% of the gap between the bias baseline and the noise floor; bigger towers or more
    epochs gained under 0.005 MSE.
    """

    user_hidden: tuple[int, ...] = (64,)
    movie_hidden: tuple[int, ...] = (64,)
    embedding_dim: int = 32
    learning_rate: float = 3e-3  # full training from fresh weights
    warm_learning_rate: float = 3e-4  # daily warm starts: small steps keep what the parent learned
    batch_size: int = 4096
    epochs: int = 8  # full training
    warm_epochs: int = 2  # a warm start's passes over one day's examples
    shrinkage: float = 2.0  # k: how many ratings' worth of weight the prior of a mean gets
    seed: int = 0

    def __post_init__(self) -> None:
        # k = 0 would divide 0 by 0 for users without history, the most common case on a new day.
        if self.shrinkage <= 0:
            raise RecsysError(f"The model's shrinkage must be positive, got {self.shrinkage}.")
        for name in ("embedding_dim", "batch_size", "epochs", "warm_epochs"):
            if getattr(self, name) < 1:
                raise RecsysError(f"The model's {name} must be at least 1, got {getattr(self, name)}.")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class TrainReport:
    """What one call of `train` did and how fast."""

    examples: int
    epochs: int
    learning_rate: float
    seconds: float
    examples_per_second: float
    epoch_losses: list[float]
    first_batch_loss: float  # MSE on the first training batch, before any update
    first_batch_rows: np.ndarray = field(repr=False)  # that batch's row positions in `examples`

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        del values["first_batch_rows"]
        return values


# ---------------------------------------------------------------------------------------------
# TensorFlow / Keras, imported on first use


def _keras() -> Any:
    """The keras module; the environment is set before TensorFlow's first import reads it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def tensorflow() -> Any:
    _keras()
    import tensorflow as tf

    return tf


# ---------------------------------------------------------------------------------------------
# Inputs


def _shrunk(count: np.ndarray, mean: np.ndarray, prior: np.ndarray, k: np.float32) -> np.ndarray:
    """(count * mean + k * prior) / (count + k): the mean, pulled toward its prior when count is small."""
    return (count * mean + k * prior) / (count + k)


def _columns(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns as one float32 (n, len(columns)) array (column-major, as Polars gives it)."""
    return frame.select(pl.col(columns).cast(pl.Float32)).to_numpy().reshape(frame.height, len(columns))


def user_inputs(frame: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """The user tower's float32 input matrix from global_mean, u_count, u_mean, ug_count_*, ug_mean_*.

    numpy writes straight into a preallocated matrix: Polars' log1p over 19 integer columns was
    ~10x slower, and the temporaries of a naive version doubled the time at 5M rows.
    """
    n, genres = frame.height, len(GENRE_SLUGS)
    k, scale = np.float32(config.shrinkage), np.float32(LOG_COUNT_SCALE)
    global_mean = _columns(frame, ["global_mean"])  # (n, 1): broadcasts against (n, 19)
    user_count = _columns(frame, ["u_count"])
    user_mean = _shrunk(user_count, _columns(frame, ["u_mean"]), global_mean, k)
    user = np.empty((n, len(USER_INPUT_COLUMNS)), dtype=np.float32)
    np.subtract(user_mean, global_mean, out=user[:, 0:1])
    np.multiply(np.log1p(user_count), scale, out=user[:, 1:2])
    genre_count = _columns(frame, [f"ug_count_{s}" for s in GENRE_SLUGS])
    genre_mean = user[:, 2 : 2 + genres]  # the shrunk genre means, computed in place
    np.multiply(genre_count, _columns(frame, [f"ug_mean_{s}" for s in GENRE_SLUGS]), out=genre_mean)
    genre_mean += k * user_mean
    genre_mean /= genre_count + k
    genre_mean -= global_mean
    genre_log_count = user[:, 2 + genres :]
    np.log1p(genre_count, out=genre_log_count)
    genre_log_count *= scale
    return user


def movie_inputs(frame: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """The movie tower's float32 input matrix from global_mean, m_count, m_mean and the static
    movie features (genre flags, m_no_genre, m_year_z, m_year_known)."""
    k, scale = np.float32(config.shrinkage), np.float32(LOG_COUNT_SCALE)
    static = [*GENRE_FLAGS, "m_no_genre", "m_year_z", "m_year_known"]
    global_mean = _columns(frame, ["global_mean"])
    movie_count = _columns(frame, ["m_count"])
    movie_mean = _shrunk(movie_count, _columns(frame, ["m_mean"]), global_mean, k)
    movie = np.empty((frame.height, len(MOVIE_INPUT_COLUMNS)), dtype=np.float32)
    movie[:, : len(static)] = _columns(frame, static)
    np.subtract(movie_mean, global_mean, out=movie[:, len(static) : len(static) + 1])
    np.multiply(np.log1p(movie_count), scale, out=movie[:, len(static) + 1 :])
    return movie


def model_inputs(examples: pl.DataFrame, config: ModelConfig) -> dict[str, np.ndarray]:
    """The model's three float32 inputs for examples with the `EXAMPLE_FEATURES` columns (~2 s per 5M)."""
    missing = [c for c in EXAMPLE_FEATURES if c not in examples.columns]
    if missing:
        raise RecsysError(f"The examples lack the feature column(s) {', '.join(missing)} the model reads.")
    return {
        USER_INPUT: user_inputs(examples, config),
        MOVIE_INPUT: movie_inputs(examples, config),
        GLOBAL_MEAN_INPUT: np.ascontiguousarray(_columns(examples, ["global_mean"])),
    }


def _targets(examples: pl.DataFrame) -> np.ndarray:
    return examples["rating"].cast(pl.Float32).to_numpy().astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# Model


def build_model(config: ModelConfig) -> keras.Model:
    """The uncompiled two-tower model, its weights initialized from `config.seed`.

    Every initializer gets its own seed, derived from `config.seed`, rather than relying on
    keras.utils.set_random_seed: the weights then do not depend on what else used the global
    random state before, and building a model changes no global state.
    """
    keras = _keras()
    seeds = iter(range(config.seed * 1000, config.seed * 1000 + 1000))
    user_in = keras.Input((len(USER_INPUT_COLUMNS),), name=USER_INPUT)
    movie_in = keras.Input((len(MOVIE_INPUT_COLUMNS),), name=MOVIE_INPUT)
    global_mean = keras.Input((1,), name=GLOBAL_MEAN_INPUT)

    def tower(inputs: Any, hidden: tuple[int, ...], name: str) -> Any:
        x = inputs
        for index, units in enumerate(hidden):
            init = keras.initializers.GlorotUniform(seed=next(seeds))
            x = keras.layers.Dense(units, activation="relu", kernel_initializer=init, name=f"{name}_hidden_{index}")(x)
        # A linear output: the vector can hold constants, which is how user and movie biases
        # enter the dot product.
        init = keras.initializers.VarianceScaling(
            scale=OUTPUT_INIT_SCALE, mode="fan_avg", distribution="uniform", seed=next(seeds)
        )
        return keras.layers.Dense(config.embedding_dim, kernel_initializer=init, name=name)(x)

    user_vector = tower(user_in, config.user_hidden, USER_TOWER)
    movie_vector = tower(movie_in, config.movie_hidden, MOVIE_TOWER)
    affinity = keras.layers.Dot(axes=1, name="affinity")([user_vector, movie_vector])
    rating = keras.layers.Add(name=OUTPUT)([global_mean, affinity])
    return keras.Model(
        inputs={USER_INPUT: user_in, MOVIE_INPUT: movie_in, GLOBAL_MEAN_INPUT: global_mean},
        outputs=rating,
        name="genre_two_tower",
    )


def fresh_model(config: ModelConfig) -> keras.Model:
    """A new model with fresh weights, compiled with Adam at `config.learning_rate` and MSE."""
    keras = _keras()
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate), loss="mse")
    # Create the optimizer's slots now: the traced training step must not create variables.
    model.optimizer.build(model.trainable_variables)
    return model


_TOWERS: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def towers(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(user_model, movie_model): each tower alone, from its input matrix to its embedding.

    They share the model's layers (and so its weights); built once per model object.
    """
    if model not in _TOWERS:
        keras = _keras()
        user = keras.Model(model.get_layer(USER_INPUT).output, model.get_layer(USER_TOWER).output, name=USER_TOWER)
        movie = keras.Model(model.get_layer(MOVIE_INPUT).output, model.get_layer(MOVIE_TOWER).output, name=MOVIE_TOWER)
        _TOWERS[model] = (user, movie)
    return _TOWERS[model]


def _embed(tower: keras.Model, inputs: np.ndarray) -> np.ndarray:
    parts = [np.asarray(tower(inputs[s : s + _PREDICT_BATCH], training=False)) for s in range(0, len(inputs), _PREDICT_BATCH)]
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros((0, tower.output.shape[-1]), np.float32)


def embed_users(model: keras.Model, users: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """The user tower's vectors (n, embedding_dim) for rows with the user features (see `user_inputs`)."""
    return _embed(towers(model)[0], user_inputs(users, config))


def embed_movies(model: keras.Model, movies: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """The movie tower's vectors (n, embedding_dim) for rows with the movie features (see `movie_inputs`).

    A predicted rating is global_mean + the dot product of a user's and a movie's vectors.
    """
    return _embed(towers(model)[1], movie_inputs(movies, config))


# ---------------------------------------------------------------------------------------------
# Training and prediction

# One traced training step per model object, reused across `train` calls. Each new model object
# costs one trace (~0.3 s); after 5 of them in one process TensorFlow logs "... triggered
# tf.function retracing" (at most twice per process), which is expected here, not a leak.
_STEPS: weakref.WeakKeyDictionary[Any, Callable[..., Any]] = weakref.WeakKeyDictionary()


def _train_step(model: keras.Model) -> Callable[..., Any]:
    if model not in _STEPS:
        tf = tensorflow()
        optimizer = model.optimizer
        variables = model.trainable_variables

        @tf.function(reduce_retracing=True)
        def step(inputs: dict[str, Any], targets: Any, rows: Any) -> Any:
            # Gathering the batch inside the graph beat slicing numpy arrays per step.
            batch = {name: tf.gather(values, rows) for name, values in inputs.items()}
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(tf.gather(targets, rows) - model(batch, training=True)[:, 0]))
            optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        _STEPS[model] = step
    return _STEPS[model]


def train(
    model: keras.Model,
    examples: pl.DataFrame,
    config: ModelConfig,
    *,
    learning_rate: float,
    epochs: int,
) -> TrainReport:
    """Train `model` in place on `examples` with its Adam optimizer at `learning_rate`.

    Each epoch visits the examples in batches of `config.batch_size` along a permutation drawn
    from `config.seed`, so the same model, examples and config give the same weights. The
    optimizer keeps its state (step count, moment estimates): a warm-started model continues
    where its parent stopped.
    """
    if examples.height == 0:
        raise RecsysError("The training examples are empty, so there is nothing to train on.")
    if epochs < 1:
        raise RecsysError(f"Training needs at least 1 epoch, got {epochs}.")
    tf = tensorflow()
    started = time.perf_counter()  # the figures include preparing the inputs
    n, batch = examples.height, config.batch_size
    arrays = model_inputs(examples, config)
    # Tensors built once (TF copies the arrays); each array is dropped as soon as it is copied.
    inputs = {name: tf.constant(arrays.pop(name)) for name in list(arrays)}
    targets = tf.constant(_targets(examples))
    model.optimizer.learning_rate = learning_rate  # assigns the optimizer's variable in place
    step = _train_step(model)
    rng = np.random.default_rng(config.seed)
    first_rows, first_loss = np.zeros(0, dtype=np.int64), math.nan
    epoch_losses: list[float] = []
    for epoch in range(epochs):
        order = rng.permutation(n)
        if epoch == 0:
            first_rows = np.sort(order[:batch])
            first_loss = batch_loss(model, examples[first_rows], config)
        # Batch losses stay tensors until the epoch ends: reading each one would wait for it.
        losses = [(step(inputs, targets, order[s : s + batch]), min(batch, n - s)) for s in range(0, n, batch)]
        epoch_losses.append(sum(float(loss) * size for loss, size in losses) / n)
    seconds = time.perf_counter() - started
    return TrainReport(
        examples=n,
        epochs=epochs,
        learning_rate=learning_rate,
        seconds=seconds,
        examples_per_second=n * epochs / seconds,
        epoch_losses=epoch_losses,
        first_batch_loss=first_loss,
        first_batch_rows=first_rows,
    )


def _raw_predictions(model: keras.Model, examples: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """Unclipped predictions, computed slice by slice: inputs of one slice stay in cache and
    memory stays flat. Eager calls on large slices ran near a traced function's speed, with no
    trace per model and without model.predict's per-call overhead (3x slower here)."""
    parts = [
        np.asarray(model(model_inputs(examples.slice(start, _PREDICT_BATCH), config), training=False))[:, 0]
        for start in range(0, examples.height, _PREDICT_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def batch_loss(model: keras.Model, examples: pl.DataFrame, config: ModelConfig) -> float:
    """The training loss (MSE of the unclipped prediction) of `model` on `examples`."""
    predictions = _raw_predictions(model, examples, config).astype(np.float64)
    return float(np.mean((_targets(examples) - predictions) ** 2))


def predict(model: keras.Model, examples: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """Predicted ratings (float32), clipped to the rating scale 0.5..5.0."""
    return np.clip(_raw_predictions(model, examples, config), MIN_RATING, MAX_RATING)


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """mse, rmse and mae of predictions against true ratings."""
    error = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    mse = float(np.mean(error**2))
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(error)))}


# ---------------------------------------------------------------------------------------------
# Artifacts


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: keras.Model, path: Path | str) -> str:
    """Write `model` with its optimizer state to a .keras file and return the file's sha256.

    The .keras file records when it was saved (to the second), so saving the same model twice
    gives two checksums: the checksum identifies the file, not the weights. Keras restores an optimizer's
    state only if the saved optimizer was built (it otherwise warns "Skipping variable loading
    for optimizer" and starts from zero moments); `fresh_model` builds it, so every model made
    here saves its full state even before training.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise RecsysError(f"Model artifact {path} must have the .keras suffix.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    except OSError as error:
        raise RecsysError(f"Model artifact {path} cannot be written: {error.strerror or error}.") from error
    return file_sha256(path)


def load_model(path: Path | str, expected_sha256: str) -> keras.Model:
    """The model saved at `path`, with its optimizer state, once the file's sha256 matches."""
    path = Path(path)
    if not path.is_file():
        raise RecsysError(f"Model artifact {path} does not exist.")
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise RecsysError(
            f"Model artifact {path} does not match its recorded checksum "
            f"(expected sha256 {expected_sha256[:12]}..., found {actual[:12]}...)."
        )
    if not zipfile.is_zipfile(path):
        # Checked here because Keras reports a file that is not a zip archive as "File not found".
        raise RecsysError(f"Model artifact {path} is not a valid .keras model file (it is not a zip archive).")
    keras = _keras()
    try:
        model = keras.models.load_model(path, compile=True)
    except Exception as error:  # Keras raises ValueError, OSError, KeyError, BadZipFile, ... here
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RecsysError(f"Model artifact {path} is not a valid .keras model file ({first_line}).") from error
    names = {layer.name for layer in model.layers}
    if not {USER_INPUT, MOVIE_INPUT, GLOBAL_MEAN_INPUT, USER_TOWER, MOVIE_TOWER} <= names or model.optimizer is None:
        raise RecsysError(f"Model artifact {path} holds no compiled two-tower model with its optimizer.")
    return model


def warm_start(parent_path: Path | str, checksum: str, config: ModelConfig) -> keras.Model:
    """The parent model, verified by `checksum`, with its optimizer state, at the warm learning rate."""
    model = load_model(parent_path, checksum)
    model.optimizer.learning_rate = config.warm_learning_rate
    return model
