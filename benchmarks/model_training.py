"""Model training and serving speed, and the champion's quality against baselines and the floor.

On a synthetic archive whose noise floor is known: point-in-time examples for a 5M-rating history
(blocks of 50k, each seeing only earlier blocks) and the next 50k-rating day. Measured: a full
training from scratch on the 5M examples (examples/s), a warm start on the next day's 50k batch,
prediction throughput, and the next-day MSE of the model against the global-mean and
user+item-bias baselines fitted on the same past, with the share of the bias-to-floor gap closed.
The retrieval model on the same pairs: its full training and warm start, and, side by side on the
first REFERENCE_PAIRS pairs, the same training with Keras' own Adam (every id-table row moved at
every step) and one traced call per batch, as it was before lazy Adam and STEPS_PER_CALL.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import dataset, peak_rss_mib, timed, write_result
from recsys.features.point_in_time import (
    YearScaler,
    build_examples,
    empty_movie_state,
    empty_user_state,
    movie_features,
)
from recsys.models import artifacts, factors, network, retrieval, training
from recsys.models.baselines import BiasBaseline
from recsys.models.config import ModelConfig
from recsys.models.versions import with_factor_slots
from recsys.sources.blocks import read_blocks

BLOCK = 50_000
REFERENCE_PAIRS = 500_000


def one_call_per_batch(pairs: pl.DataFrame, config: retrieval.RetrievalConfig) -> float:
    """Seconds of one epoch of the retrieval model's training over `pairs` with Keras' Adam on every
    variable and one traced call per batch, as `recsys.models.retrieval` trained before."""
    tf = network.tensorflow()
    model = retrieval.fresh_retrieval_model(config, pairs)
    optimizer, variables = model.optimizer, model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(users, movies, log_q):
        with tf.GradientTape() as tape:
            loss = retrieval.in_batch_loss(model, users, movies, log_q)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    users, movies = pairs["user_id"].cast(pl.Int64).to_numpy(), pairs["movie_id"].cast(pl.Int64).to_numpy()
    log_q = np.full(len(users), -10.0, dtype=np.float32)  # the correction's values do not change the cost
    order = np.random.default_rng(config.seed).permutation(len(users))
    batches = [order[s : s + config.batch_size] for s in range(0, len(users) - 1, config.batch_size)]
    step(tf.constant(users[batches[0]]), tf.constant(movies[batches[0]]), tf.constant(log_q[batches[0]]))  # traced
    started = time.perf_counter()
    losses = [step(tf.constant(users[b]), tf.constant(movies[b]), tf.constant(log_q[b])) for b in batches]
    float(losses[-1])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=int, default=5_000_000)
    args = parser.parse_args()
    path = dataset(args.history + 2 * BLOCK)
    truth = json.loads((path / "truth.json").read_text())
    ratings, movies = read_blocks(path, BLOCK)
    history_blocks = args.history // BLOCK
    scaler = YearScaler.fit(ratings.filter(pl.col("block") < history_blocks), movies)
    started = time.perf_counter()
    examples = build_examples(
        ratings.filter(pl.col("block") <= history_blocks), movie_features(movies, scaler),
        empty_user_state(), empty_movie_state(), 0.0, 0,
    ).examples  # fmt: skip
    features_s = time.perf_counter() - started
    history = examples.filter(pl.col("batch") < history_blocks)
    next_day = examples.filter(pl.col("batch") == history_blocks)

    config = ModelConfig()
    # As the pipeline's full training does (recsys.models.versions.train_full): movie factors
    # fitted on the history, each example with its user folded in at its time.
    with timed() as factor_fit:
        movie_factors = factors.fit_movie_factors(history, config.factor_settings())
    with timed() as factor_slots:
        history = with_factor_slots(history, config, movie_factors, history)
    next_day = with_factor_slots(next_day, config, movie_factors, examples.filter(pl.col("batch") <= history_blocks))
    model = network.fresh_model(config)
    full = training.train(model, history, config, learning_rate=config.learning_rate, epochs=config.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "full.keras"
        checksum = artifacts.save_model(model, artifact)
        with timed() as predicting:
            predicted = training.predict(model, next_day, config)
        truth_next = next_day["rating"].to_numpy()
        past = history.select("user_id", "movie_id", "rating")
        with timed() as bias_fit:
            fitted_bias = BiasBaseline().fit(past)
        bias = fitted_bias.predict(next_day)
        scores = {
            "global_mean": training.metrics(truth_next, next_day["global_mean"].to_numpy())["mse"],
            "bias": training.metrics(truth_next, bias)["mse"],
            "model": training.metrics(truth_next, predicted)["mse"],
        }
        no_history = (next_day["u_count"] == 0).to_numpy()
        with timed() as warm_total:
            warm = artifacts.warm_start(artifact, checksum, config)
            # The pipeline's warm start: config.warm_epochs passes over the day.
            warm_report = training.train(warm, next_day, config, learning_rate=config.warm_learning_rate, epochs=config.warm_epochs)
    retrieval_config = retrieval.RetrievalConfig()
    pairs = history.select("user_id", "movie_id")
    retriever = retrieval.fresh_retrieval_model(retrieval_config, pairs)
    retrieval_full = retrieval.train_retrieval(
        retriever, pairs, retrieval_config, learning_rate=retrieval_config.learning_rate,
        epochs=retrieval_config.full_epochs(pairs.height),
    )  # fmt: skip
    day_pairs = next_day.select("user_id", "movie_id")
    retriever = retrieval.with_rows_for(retriever, day_pairs, retrieval_config)
    retrieval_warm = retrieval.train_retrieval(
        retriever, day_pairs, retrieval_config,
        learning_rate=retrieval_config.warm_learning_rate, epochs=retrieval_config.warm_epochs,
    )  # fmt: skip
    reference = pairs.head(REFERENCE_PAIRS)
    per_batch_s = one_call_per_batch(reference, retrieval_config)
    lazy = retrieval.train_retrieval(
        retrieval.fresh_retrieval_model(retrieval_config, reference), reference, retrieval_config,
        learning_rate=retrieval_config.learning_rate, epochs=1,
    )  # fmt: skip
    floor = truth["noise_floor_mse"]
    write_result(
        "model_training",
        {
            "history_examples": history.height,
            "feature_build_s": round(features_s, 2),
            "full_training": {
                "examples": full.examples, "epochs": full.epochs, "wall_s": round(full.seconds, 2),
                "examples_per_s": round(full.examples_per_second),
            },
            "factor_fit": {"ratings": history.height, "iterations": config.factor_iterations, **factor_fit},
            "factor_slots": {"examples": history.height, **factor_slots},
            "bias_fit": {"ratings": past.height, **bias_fit},
            "warm_start_50k": {
                "epochs": warm_report.epochs, "train_s": round(warm_report.seconds, 3), "with_load_s": warm_total["wall_s"],
                "examples_per_s": round(warm_report.examples_per_second),
            },
            "retrieval": {
                "full_training": {
                    "pairs": retrieval_full.examples, "epochs": retrieval_full.epochs, "wall_s": round(retrieval_full.seconds, 2),
                    "pairs_per_s": round(retrieval_full.examples_per_second),
                },
                "warm_start_50k": {
                    "epochs": retrieval_warm.epochs, "train_s": round(retrieval_warm.seconds, 3),
                    "pairs_per_s": round(retrieval_warm.examples_per_second),
                },
                "side_by_side": {
                    "pairs": reference.height, "epochs": 1, "steps_per_call": retrieval.STEPS_PER_CALL,
                    "lazy_adam_s": round(lazy.seconds, 2), "keras_adam_one_call_per_batch_s": round(per_batch_s, 2),
                    "speed_vs_keras_adam": round(per_batch_s / lazy.seconds, 2),
                },
            },
            "prediction": {"examples": next_day.height, **predicting, "examples_per_s": round(next_day.height / predicting["wall_s"])},
            "next_day_mse": {
                **{k: round(v, 4) for k, v in scores.items()},
                "noise_floor": round(floor, 4),
                "oracle_bias": round(truth["oracle_bias_mse"], 4),
                "model_no_history": round(training.metrics(truth_next[no_history], predicted[no_history])["mse"], 4),
                "bias_no_history": round(training.metrics(truth_next[no_history], bias[no_history])["mse"], 4),
                "model_with_history": round(training.metrics(truth_next[~no_history], predicted[~no_history])["mse"], 4),
                "bias_with_history": round(training.metrics(truth_next[~no_history], bias[~no_history])["mse"], 4),
                "no_history_share": round(float(no_history.mean()), 3),
                "gap_closed": round((scores["bias"] - scores["model"]) / (scores["bias"] - floor), 3),
            },
            "peak_rss_mib": round(peak_rss_mib()),
            "method": "benchmarks/model_training.py: examples from recsys.features.point_in_time.build_examples; "
            "training and prediction with recsys.models (network, training) its default ModelConfig; baselines fitted on the "
            "history only; MSE on the first day after the history, which nothing trained on.",
        },
    )


if __name__ == "__main__":
    main()
