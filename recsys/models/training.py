"""Training the two-tower model, predicting with it, and the error metrics.

Why a hand-written training loop instead of `model.fit`: on a 2-core CPU it was about 1.5-2x as
fast (0.6-1.1M examples/s against ~0.5M for fit on numpy arrays and ~0.25M for fit on a tf.data
pipeline), its shuffle is a seeded numpy permutation, and it measures the loss on the first batch
before any update, which proves that a warm start begins from its parent's weights.

Determinism: weights are initialized from seeded initializers and batches follow a permutation
drawn from `config.seed`, so the same seed gives bit-identical weights on the same machine
(measured, without `tf.config.experimental.enable_op_determinism`, which changed nothing here but
is process-wide and cost a few percent; CPU results may differ across thread counts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from recsys.errors import RecsysError
from recsys.lake.cleaning import (  # predictions stay on the rating scale
    MAX_RATING,
    MIN_RATING,
)
from recsys.models.config import ModelConfig
from recsys.models.inputs import model_inputs, rating_targets
from recsys.models.network import PREDICT_BATCH, built_for, tensorflow

if TYPE_CHECKING:
    import keras


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


# One traced training step per model object, reused across `train` calls. Each new model object
# costs one trace (~0.3 s); after 5 of them in one process TensorFlow logs "... triggered
# tf.function retracing" (at most twice per process), which is expected here, not a leak.
def _train_step(model: keras.Model) -> Callable[..., Any]:
    built = built_for(model)
    if "step" not in built:
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

        built["step"] = step
    return built["step"]


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
    targets = tf.constant(rating_targets(examples))
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
        np.asarray(model(model_inputs(examples.slice(start, PREDICT_BATCH), config), training=False))[:, 0]
        for start in range(0, examples.height, PREDICT_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def batch_loss(model: keras.Model, examples: pl.DataFrame, config: ModelConfig) -> float:
    """The training loss (MSE of the unclipped prediction) of `model` on `examples`."""
    predictions = _raw_predictions(model, examples, config).astype(np.float64)
    return float(np.mean((rating_targets(examples) - predictions) ** 2))


def predict(model: keras.Model, examples: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """Predicted ratings (float32), clipped to the rating scale 0.5..5.0."""
    return np.clip(_raw_predictions(model, examples, config), MIN_RATING, MAX_RATING)


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """mse, rmse and mae of predictions against true ratings, and the mean error (prediction minus
    rating: a model that overrates has a positive one; with the MSE it gives the residuals' spread)."""
    error = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    mse = float(np.mean(error**2))
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(error))), "mean_error": float(-np.mean(error))}


