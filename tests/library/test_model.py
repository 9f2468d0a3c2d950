"""The two-tower model: it learns genre preference, warm starts continue, artifacts are verified.

The data is synthetic with a known noise floor, replayed in blocks of 20k ratings ("days") with
point-in-time features: the model trains on the first 14 blocks and is scored on block 14, which
it never saw. The default model reads movie factors fitted on those 14 blocks and each rating's
user folded in at its time; tests of the towers' own inputs use the towers alone (factors=0).
The figures are printed (run with -s to see them).
"""

from __future__ import annotations

import gc
import json
import math
import weakref
from pathlib import Path
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from recsys.errors import RecsysError
from recsys.features.point_in_time import (
    EXAMPLE_COLUMNS,
    YearScaler,
    build_examples,
    empty_movie_state,
    empty_user_state,
    movie_features,
)
from recsys.genres import GENRE_SLUGS
from recsys.models.artifacts import file_sha256, load_factors, load_model, save_model, warm_start
from recsys.models.baselines import BiasBaseline
from recsys.models.config import (
    GLOBAL_MEAN_INPUT,
    LOG_COUNT_SCALE,
    MOVIE_INPUT,
    MOVIE_INPUT_COLUMNS,
    USER_INPUT,
    USER_INPUT_COLUMNS,
    ModelConfig,
)
from recsys.models.factors import MovieFactors, fit_movie_factors
from recsys.models.inputs import model_inputs
from recsys.models.network import embed_movies, embed_users, fresh_model, towers
from recsys.models.training import batch_loss, metrics, predict, train
from recsys.models.versions import with_factor_slots
from recsys.sources.blocks import read_blocks

N_RATINGS = 300_000
BLOCK = 20_000
TEST_BLOCK = 14  # blocks 0..13 train, block 14 is the next, unseen day
CONFIG = ModelConfig()
TOWERS_ALONE = ModelConfig(factors=0)

# Keras 3.15 converts variables with np.array(x) under numpy 2 (in save and get_weights), which
# numpy flags as deprecated; it is Keras' to fix and harmless here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.fixture(scope="module")
def data(make_archive):
    path = make_archive(N_RATINGS, 5)
    truth = json.loads((path / "truth.json").read_text())
    ratings, movies = read_blocks(path, BLOCK)
    features = movie_features(movies, YearScaler.fit(ratings.filter(pl.col("block") == 0), movies))
    examples = build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0).examples
    # The factors learn from the training blocks only; every rating's user is folded in at its time.
    movie_factors = fit_movie_factors(examples.filter(pl.col("batch") < TEST_BLOCK), CONFIG.factor_settings())
    return truth, with_factor_slots(examples, CONFIG, movie_factors, examples)


@pytest.fixture(scope="module")
def parent(data):
    """A model trained from scratch on the past blocks, with its training report."""
    _, examples = data
    fitted = fresh_model(CONFIG)
    past = examples.filter(pl.col("batch") < TEST_BLOCK)
    report = train(fitted, past, CONFIG, learning_rate=CONFIG.learning_rate, epochs=CONFIG.epochs)
    return fitted, report


def day(examples: pl.DataFrame, batch: int) -> pl.DataFrame:
    return examples.filter(pl.col("batch") == batch)


def example_row(**values) -> dict:
    """One example with every feature at its no-history value, overridden by `values`."""
    row = {c: 0 for c in EXAMPLE_COLUMNS} | {"global_mean": 3.5, "m_mean": 3.5, "m_no_genre": 1, "rating": 3.0}
    return row | values


def test_model_beats_the_bias_baseline_on_the_next_day(data, parent):
    truth, examples = data
    fitted, report = parent
    past, test = examples.filter(pl.col("batch") < TEST_BLOCK), day(examples, TEST_BLOCK)
    y = test["rating"].to_numpy()
    no_history = (test["u_count"] == 0).to_numpy()
    bias = BiasBaseline().fit(past.select("user_id", "movie_id", "rating")).predict(test)
    predicted = predict(fitted, test, CONFIG)

    floor = truth["noise_floor_mse"]
    bias_mse, model_mse = metrics(y, bias)["mse"], metrics(y, predicted)["mse"]
    closed = (bias_mse - model_mse) / (bias_mse - floor)
    # Paired squared-error differences on the same no-history ratings, and their standard error.
    difference = (y - predicted) ** 2 - (y - bias) ** 2
    new_users = difference[no_history]
    print(
        f"\n[model] trained {report.examples} examples x {report.epochs} epochs in {report.seconds:.2f}s "
        f"= {report.examples_per_second:,.0f} examples/s; epoch losses {np.round(report.epoch_losses, 4).tolist()}"
        f"\n[model] day {TEST_BLOCK} MSE: noise floor {floor:.4f}, oracle bias {truth['oracle_bias_mse']:.4f}, "
        f"bias baseline {bias_mse:.4f}, model {model_mse:.4f} (better by {bias_mse - model_mse:.4f}, "
        f"{closed:.0%} of the bias-to-floor gap closed)"
        f"\n[model] with history ({(~no_history).sum()}): bias {((y - bias) ** 2)[~no_history].mean():.4f}, "
        f"model {((y - predicted) ** 2)[~no_history].mean():.4f}; "
        f"no history ({no_history.sum()}): bias {((y - bias) ** 2)[no_history].mean():.4f}, "
        f"model {((y - predicted) ** 2)[no_history].mean():.4f} "
        f"(difference {new_users.mean():+.4f} +- {new_users.std() / math.sqrt(new_users.size):.4f})"
    )
    assert truth["oracle_bias_mse"] > floor + 0.2  # the data makes genre preference matter
    assert model_mse < bias_mse
    assert closed >= 0.5
    # Without history both predict from the movie alone and sit at the same limit (mu + b_i);
    # the model must not be worse beyond sampling noise (2 standard errors of the difference).
    assert new_users.mean() <= 2 * new_users.std() / math.sqrt(new_users.size)


def test_training_lowers_the_loss_epoch_by_epoch(parent):
    # (Its speed, examples per second, is measured in benchmarks/model_training.py, not here.)
    _, report = parent
    assert report.epoch_losses[-1] < report.epoch_losses[0] < report.first_batch_loss


def test_users_without_history_get_the_global_mean_everywhere(data):
    _, examples = data
    inputs = model_inputs(examples, CONFIG)
    assert inputs["user_factors"].shape == inputs["movie_factors"].shape == (examples.height, CONFIG.factor_settings().width)
    assert all(np.isfinite(values).all() and values.dtype == np.float32 for values in inputs.values())
    assert inputs[USER_INPUT].shape == (examples.height, len(USER_INPUT_COLUMNS))
    assert inputs[MOVIE_INPUT].shape == (examples.height, len(MOVIE_INPUT_COLUMNS))
    new_users = (examples["u_count"] == 0).to_numpy()
    assert new_users.any()
    assert np.abs(inputs[USER_INPUT][new_users]).max() < 1e-6
    # Nothing folded in: x = 0 and the constant 1.
    np.testing.assert_array_equal(inputs["user_factors"][new_users][:, :-1], 0.0)
    np.testing.assert_array_equal(inputs["user_factors"][:, -1], 1.0)


def test_inputs_shrink_genre_means_toward_the_users_mean_and_that_toward_the_global_mean():
    k = 2.0
    config = ModelConfig(shrinkage=k, factors=0)
    row = example_row(
        global_mean=3.5, u_count=6, u_mean=4.5, ug_count_comedy=2, ug_mean_comedy=2.0, ug_count_drama=4,
        ug_mean_drama=5.0, m_count=3, m_mean=2.5, mg_drama=1, m_no_genre=0, m_year_z=0.7, m_year_known=1,
    )  # fmt: skip
    inputs = model_inputs(pl.DataFrame([row]), config)
    user = dict(zip(USER_INPUT_COLUMNS, inputs[USER_INPUT][0]))
    movie = dict(zip(MOVIE_INPUT_COLUMNS, inputs[MOVIE_INPUT][0]))
    user_mean = (6 * 4.5 + k * 3.5) / (6 + k)
    assert user["user_mean_rel"] == pytest.approx(user_mean - 3.5)
    assert user["user_genre_mean_rel_comedy"] == pytest.approx((2 * 2.0 + k * user_mean) / (2 + k) - 3.5)
    assert user["user_genre_mean_rel_drama"] == pytest.approx((4 * 5.0 + k * user_mean) / (4 + k) - 3.5)
    assert user["user_genre_mean_rel_war"] == pytest.approx(user_mean - 3.5)  # no war ratings: the user's mean
    assert user["user_log_count"] == pytest.approx(math.log1p(6) * LOG_COUNT_SCALE)
    assert user["user_genre_log_count_comedy"] == pytest.approx(math.log1p(2) * LOG_COUNT_SCALE)
    assert movie["movie_mean_rel"] == pytest.approx((3 * 2.5 + k * 3.5) / (3 + k) - 3.5)
    assert movie["mg_drama"] == 1 and movie["m_no_genre"] == 0 and movie["m_year_z"] == pytest.approx(0.7)
    assert sum(movie[f"mg_{s}"] for s in GENRE_SLUGS) == 1
    assert inputs[GLOBAL_MEAN_INPUT][0, 0] == pytest.approx(3.5)


def test_towers_are_the_models_halves(data, parent):
    _, examples = data
    fitted, _ = parent
    sample = day(examples, TEST_BLOCK).head(500)
    inputs = model_inputs(sample, CONFIG)
    user_model, movie_model = towers(fitted)
    users = np.asarray(user_model({k: inputs[k] for k in (USER_INPUT, "user_factors")}))
    movies = np.asarray(movie_model({k: inputs[k] for k in (MOVIE_INPUT, "movie_factors")}))
    assert users.shape == movies.shape == (500, CONFIG.embedding_dim)
    rebuilt = np.clip(inputs[GLOBAL_MEAN_INPUT][:, 0] + (users * movies).sum(axis=1), 0.5, 5.0)
    np.testing.assert_allclose(rebuilt, predict(fitted, sample, CONFIG), atol=1e-4)
    # The vectors end with the factor model's slots, passed through: their dot product is its prediction.
    width = CONFIG.factor_settings().width
    np.testing.assert_array_equal(users[:, -width:], inputs["user_factors"])
    np.testing.assert_array_equal(movies[:, -width:], inputs["movie_factors"])


def test_a_model_no_longer_used_is_freed_with_what_was_built_for_it(data):
    """Its towers and traced training step are kept on it, not in a cache that would keep every
    model a long replay loads alive."""
    _, examples = data
    model = fresh_model(CONFIG)
    train(model, day(examples, TEST_BLOCK).head(300), CONFIG, learning_rate=CONFIG.learning_rate, epochs=1)
    towers(model)
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None


def test_warm_start_continues_from_the_parent(data, parent, tmp_path):
    _, examples = data
    fitted, _ = parent
    checksum = save_model(fitted, tmp_path / "parent.keras")
    warm = warm_start(tmp_path / "parent.keras", checksum, CONFIG)
    assert float(warm.optimizer.learning_rate) == pytest.approx(CONFIG.warm_learning_rate)
    # Keras restored the optimizer's step count and every moment estimate.
    restored = {v.path: v.numpy() for v in warm.optimizer.variables}
    for variable in fitted.optimizer.variables:
        if "learning_rate" not in variable.path:
            np.testing.assert_array_equal(restored[variable.path], variable.numpy())
    parent_steps = int(fitted.optimizer.iterations)

    today = day(examples, TEST_BLOCK)
    report = train(warm, today, CONFIG, learning_rate=CONFIG.warm_learning_rate, epochs=CONFIG.warm_epochs)
    parent_loss = batch_loss(fitted, today[report.first_batch_rows], CONFIG)
    print(f"\n[warm start] first batch loss {report.first_batch_loss:.6f}, parent's on that batch {parent_loss:.6f}")
    assert report.first_batch_loss == pytest.approx(parent_loss, abs=1e-5)
    # The step count went on from the parent's: the optimizer state was continued, not rebuilt.
    steps = CONFIG.warm_epochs * math.ceil(today.height / CONFIG.batch_size)
    assert int(warm.optimizer.iterations) == parent_steps + steps
    changed = [not np.array_equal(a, b) for a, b in zip(warm.get_weights(), fitted.get_weights())]
    assert all(changed)


def test_full_retrain_starts_from_fresh_weights(data, parent):
    _, examples = data
    fitted, _ = parent
    upto_today = examples.filter(pl.col("batch") <= TEST_BLOCK)
    report = train(fresh_model(CONFIG), upto_today, CONFIG, learning_rate=CONFIG.learning_rate, epochs=1)
    parent_loss = batch_loss(fitted, upto_today[report.first_batch_rows], CONFIG)
    print(f"\n[retrain] first batch loss {report.first_batch_loss:.4f}, parent's on that batch {parent_loss:.4f}")
    assert report.first_batch_loss > parent_loss + 0.1


def test_save_and_load_give_identical_predictions(data, parent, tmp_path):
    _, examples = data
    fitted, _ = parent
    path = tmp_path / "model.keras"
    movie_factors = fit_movie_factors(examples.filter(pl.col("batch") < 2), CONFIG.factor_settings())
    checksum = save_model(fitted, path, movie_factors)
    loaded = load_model(path, checksum)
    test = day(examples, TEST_BLOCK)
    np.testing.assert_array_equal(predict(loaded, test, CONFIG), predict(fitted, test, CONFIG))
    # The movie factors travel in the artifact, under its checksum.
    saved = load_factors(path, checksum)
    np.testing.assert_array_equal(saved.movie_ids, movie_factors.movie_ids)
    np.testing.assert_array_equal(saved.rows, movie_factors.rows)
    # with the fit's state a warm start carries forward (in float32)
    np.testing.assert_array_equal(saved.user_ids, movie_factors.user_ids)
    np.testing.assert_allclose(saved.user_side, movie_factors.user_side, rtol=1e-6)
    np.testing.assert_allclose(saved.movie_sums, movie_factors.movie_sums, rtol=1e-6)
    assert load_factors(tmp_path / "other.keras", save_model(fitted, tmp_path / "other.keras")) is None
    # Factors saved without the state load without it.
    old = MovieFactors(movie_factors.movie_ids, movie_factors.rows)
    assert not load_factors(tmp_path / "old.keras", save_model(fitted, tmp_path / "old.keras", old)).has_fit_state


def test_a_save_that_dies_midway_leaves_the_previous_artifact_whole(parent, tmp_path, monkeypatch):
    fitted, _ = parent
    path = tmp_path / "model.keras"
    checksum = save_model(fitted, path)

    def torn_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")  # what a kill during the write leaves
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(fitted), "save", torn_save)
    with pytest.raises(RecsysError, match="cannot be written: No space left on device"):
        save_model(fitted, path)
    monkeypatch.undo()
    assert load_model(path, checksum) is not None  # the earlier file, whole and still matching
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no partial file left behind


def test_a_corrupted_or_missing_artifact_is_refused(parent, tmp_path):
    fitted, _ = parent
    path = tmp_path / "model.keras"
    checksum = save_model(fitted, path)
    content = bytearray(path.read_bytes())
    middle = len(content) // 2
    content[middle : middle + 8] = bytes(b ^ 0xFF for b in content[middle : middle + 8])  # flip 8 bytes
    path.write_bytes(bytes(content))
    with pytest.raises(RecsysError, match=f"Model artifact {path} does not match its recorded checksum"):
        load_model(path, checksum)
    with pytest.raises(RecsysError, match="does not exist"):
        load_model(tmp_path / "missing.keras", checksum)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a keras file")
    with pytest.raises(RecsysError, match=f"Model artifact {junk} is not a valid .keras model file"):
        load_model(junk, file_sha256(junk))


def test_the_same_seed_gives_the_same_weights(data):
    _, examples = data
    sample = examples.filter(pl.col("batch").is_between(1, 5))
    config = ModelConfig(epochs=2)

    def trained(seed: int) -> tuple[list[np.ndarray], np.ndarray]:
        seeded = replace(config, seed=seed)
        fitted = fresh_model(seeded)
        train(fitted, sample, seeded, learning_rate=seeded.learning_rate, epochs=seeded.epochs)
        return fitted.get_weights(), predict(fitted, day(examples, 6), seeded)

    (first, first_predictions), (second, second_predictions) = trained(0), trained(0)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    np.testing.assert_array_equal(first_predictions, second_predictions)
    other, _ = trained(1)
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))


def test_config_is_recorded_as_plain_values():
    config = ModelConfig()
    assert json.loads(json.dumps(config.to_dict()))["user_hidden"] == list(config.user_hidden)


def test_training_on_nothing_is_refused(data):
    _, examples = data
    with pytest.raises(RecsysError, match="empty"):
        train(fresh_model(CONFIG), examples.head(0), CONFIG, learning_rate=1e-3, epochs=1)


def test_examples_without_the_features_are_refused():
    with pytest.raises(RecsysError, match="lack the feature column"):
        model_inputs(pl.DataFrame({"global_mean": [3.5]}), CONFIG)
    with pytest.raises(RecsysError, match="shrinkage must be positive"):
        ModelConfig(shrinkage=0.0)


def test_hashed_id_embeddings_start_at_zero_and_learn_per_id(data):
    _, examples = data
    config = replace(TOWERS_ALONE, id_dim=4, epochs=2)
    past = examples.filter(pl.col("batch") < 3)
    fitted = fresh_model(config)
    train(fitted, past, config, learning_rate=config.learning_rate, epochs=config.epochs)
    # Two rows alike in every feature: a user the model never saw gets exactly what the features
    # say (an untrained row is zero), a trained user's own row moves the prediction.
    known = int(past["user_id"].mode()[0])
    # Unseen ids whose hashed rows no trained user shares (ids beyond the buckets may collide).
    hashing = fitted.get_layer("user_id_hash")
    used = set(np.asarray(hashing(past["user_id"].to_numpy())).tolist())
    candidates = np.arange(10**12, 10**12 + 50)
    unseen = [int(i) for i, row in zip(candidates, np.asarray(hashing(candidates)).tolist()) if row not in used][:2]
    twins = pl.DataFrame([example_row(user_id=known), example_row(user_id=unseen[0]), example_row(user_id=unseen[1])])
    predicted = predict(fitted, twins, config)
    assert predicted[1] == predicted[2] and predicted[0] != predicted[1]
    # The towers take the ids too, and are still the model's halves.
    sample = day(examples, 3).head(200)
    users, movies = embed_users(fitted, sample, config), embed_movies(fitted, sample, config)
    rebuilt = np.clip(sample["global_mean"].to_numpy() + (users * movies).sum(axis=1), 0.5, 5.0)
    np.testing.assert_allclose(rebuilt, predict(fitted, sample, config), atol=1e-4)


def test_a_full_training_sees_at_most_its_cap_of_examples_but_always_one_pass():
    config = ModelConfig(epochs=8, max_examples_seen=40_000_000)
    assert config.full_epochs(300_000) == 8 and config.full_epochs(10_000_000) == 4
    assert config.full_epochs(32_000_000) == 1 and config.full_epochs(0) == 8
