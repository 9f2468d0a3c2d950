"""Model training and serving speed, and the champion's quality against baselines and the floor.

On a synthetic archive whose noise floor is known: point-in-time examples for a 5M-rating history
(blocks of 50k, each seeing only earlier blocks) and the next 50k-rating day. Measured: a full
training from scratch on the 5M examples (examples/s), a warm start on the next day's 50k batch,
prediction throughput, and the next-day MSE of the model against the global-mean and
user+item-bias baselines fitted on the same past, with the share of the bias-to-floor gap closed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks.common import dataset, peak_rss_mib, timed, write_result
from recsys_assets import synthetic
from recsys_assets import model as keras_model
from recsys_assets.baselines import BiasBaseline
from recsys_assets.transforms.features import YearScaler, build_examples, empty_movie_state, empty_user_state, movie_features

BLOCK = 50_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=int, default=5_000_000)
    args = parser.parse_args()
    path = dataset(args.history + 2 * BLOCK)
    truth = json.loads((path / "truth.json").read_text())
    ratings, movies = synthetic.read_blocks(path, BLOCK)
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

    config = keras_model.ModelConfig()
    model = keras_model.fresh_model(config)
    full = keras_model.train(model, history, config, learning_rate=config.learning_rate, epochs=config.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "full.keras"
        checksum = keras_model.save_model(model, artifact)
        with timed() as predicting:
            predicted = keras_model.predict(model, next_day, config)
        truth_next = next_day["rating"].to_numpy()
        past = history.select("user_id", "movie_id", "rating")
        bias = BiasBaseline().fit(past).predict(next_day)
        scores = {
            "global_mean": keras_model.metrics(truth_next, next_day["global_mean"].to_numpy())["mse"],
            "bias": keras_model.metrics(truth_next, bias)["mse"],
            "model": keras_model.metrics(truth_next, predicted)["mse"],
        }
        no_history = (next_day["u_count"] == 0).to_numpy()
        with timed() as warm_total:
            warm = keras_model.warm_start(artifact, checksum, config)
            warm_report = keras_model.train(warm, next_day, config, learning_rate=config.warm_learning_rate, epochs=1)
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
            "warm_start_50k": {
                "train_s": round(warm_report.seconds, 3), "with_load_s": warm_total["wall_s"],
                "examples_per_s": round(warm_report.examples_per_second),
            },
            "prediction": {"examples": next_day.height, **predicting, "examples_per_s": round(next_day.height / predicting["wall_s"])},
            "next_day_mse": {
                **{k: round(v, 4) for k, v in scores.items()},
                "noise_floor": round(floor, 4),
                "oracle_bias": round(truth["oracle_bias_mse"], 4),
                "model_no_history": round(keras_model.metrics(truth_next[no_history], predicted[no_history])["mse"], 4),
                "bias_no_history": round(keras_model.metrics(truth_next[no_history], bias[no_history])["mse"], 4),
                "model_with_history": round(keras_model.metrics(truth_next[~no_history], predicted[~no_history])["mse"], 4),
                "bias_with_history": round(keras_model.metrics(truth_next[~no_history], bias[~no_history])["mse"], 4),
                "no_history_share": round(float(no_history.mean()), 3),
                "gap_closed": round((scores["bias"] - scores["model"]) / (scores["bias"] - floor), 3),
            },
            "peak_rss_mib": round(peak_rss_mib()),
            "method": "benchmarks/model_training.py: examples from recsys_assets.transforms.features.build_examples; "
            "training and prediction with recsys_assets.model at its default ModelConfig; baselines fitted on the "
            "history only; MSE on the first day after the history, which nothing trained on.",
        },
    )


if __name__ == "__main__":
    main()
