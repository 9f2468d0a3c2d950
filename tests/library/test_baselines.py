"""Baselines: biases beat the global mean on unseen data, unknown ids fall back to mu, fits are fast."""

from __future__ import annotations


import numpy as np
import polars as pl
import pytest

from recsys.errors import RecsysError
from recsys.models.baselines import BiasBaseline, GlobalMeanBaseline


def mse(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean((y - predicted) ** 2))


@pytest.fixture(scope="module")
def ratings(make_archive) -> pl.DataFrame:
    path = make_archive(100_000, 3)
    return pl.read_csv(path / "ratings.csv").rename({"userId": "user_id", "movieId": "movie_id"})


def test_biases_beat_the_global_mean_on_later_ratings(ratings):
    past, future = ratings.head(80_000), ratings.tail(20_000)
    y = future["rating"].to_numpy()
    global_mse = mse(y, GlobalMeanBaseline().fit(past).predict(future))
    bias_mse = mse(y, BiasBaseline().fit(past).predict(future))
    print(f"\n[baselines] later 20k ratings: global mean MSE {global_mse:.4f}, bias MSE {bias_mse:.4f}")
    assert bias_mse < global_mse - 0.1


def test_unknown_users_and_movies_get_the_global_mean(ratings):
    fitted = BiasBaseline().fit(ratings)
    known_movie = int(ratings["movie_id"][0])
    movie_bias = fitted.movie_bias.filter(pl.col("movie_id") == known_movie)["bias"][0]
    frame = pl.DataFrame({"user_id": [10**9, 10**9], "movie_id": [10**9, known_movie]})
    np.testing.assert_allclose(fitted.predict(frame), [fitted.mu, fitted.mu + movie_bias])
    assert fitted.mu == pytest.approx(ratings["rating"].mean())


def test_biases_are_the_alternating_ridge_solution():
    ratings = pl.DataFrame({"user_id": [1, 1, 2], "movie_id": [10, 20, 10], "rating": [5.0, 3.0, 1.0]})
    fitted = BiasBaseline().fit(ratings, reg_user=1.0, reg_item=2.0, iterations=1)
    mu = 3.0
    b_10, b_20 = (5 - mu + 1 - mu) / (2 + 2), (3 - mu) / (1 + 2)
    b_1, b_2 = ((5 - mu - b_10) + (3 - mu - b_20)) / (2 + 1), (1 - mu - b_10) / (1 + 1)
    assert dict(fitted.movie_bias.iter_rows()) == pytest.approx({10: b_10, 20: b_20})
    assert dict(fitted.user_bias.iter_rows()) == pytest.approx({1: b_1, 2: b_2})
    np.testing.assert_allclose(fitted.predict(ratings), [mu + b_1 + b_10, mu + b_1 + b_20, mu + b_2 + b_10])


def test_the_event_time_user_term_counts_every_strictly_earlier_rating():
    history = pl.DataFrame({"user_id": [1, 1, 2], "movie_id": [10, 20, 10], "rating": [5.0, 3.0, 1.0], "timestamp": [1, 2, 3]})
    fitted = BiasBaseline().fit(history, reg_user=1.0, reg_item=2.0, iterations=1)
    mu, b_10, b_20 = 3.0, 0.0, 0.0  # (5 - 3 + 1 - 3) / 4 and (3 - 3) / 3
    # The day: user 1 rates twice at second 10 and once at 20; a new user 3 rates at 10 and 30.
    day = pl.DataFrame({
        "user_id": [1, 1, 3, 1, 3], "movie_id": [10, 30, 20, 20, 10],
        "rating": [4.0, 2.0, 5.0, 1.0, 3.0], "timestamp": [10, 10, 10, 20, 30],
    })  # fmt: skip
    residual = {(1, 1): 5 - mu - b_10, (1, 2): 3 - mu - b_20, (1, 10): [4 - mu - b_10, 2 - mu], (3, 10): 5 - mu - b_20}
    before_10 = (residual[1, 1] + residual[1, 2]) / (2 + 1)  # history only: not the same second
    before_20 = (residual[1, 1] + residual[1, 2] + sum(residual[1, 10])) / (4 + 1)
    user_3_at_30 = residual[3, 10] / (1 + 1)
    expected = [mu + before_10 + b_10, mu + before_10, mu + 0.0 + b_20, mu + before_20 + b_20, mu + user_3_at_30 + b_10]
    np.testing.assert_allclose(fitted.predict_at_event_time(history, day), expected)
    # Unlike the frozen user term, which gives user 1 the same bias all day and user 3 none.
    assert fitted.predict(day)[0] == fitted.predict(day)[3] - b_20 + b_10


def test_large_ids_give_the_same_fit_as_small_ones(ratings):
    small = BiasBaseline().fit(ratings)
    shifted = ratings.with_columns(pl.col("user_id") * 10**9, pl.col("movie_id") + 10**12)
    large = BiasBaseline().fit(shifted)
    np.testing.assert_allclose(large.predict(shifted), small.predict(ratings))


def test_predictions_stay_on_the_rating_scale():
    ratings = pl.DataFrame({"user_id": [1] * 50, "movie_id": list(range(50)), "rating": [5.0] * 50})
    extreme = BiasBaseline().fit(pl.concat([ratings, ratings.with_columns(pl.col("user_id") + 1, rating=pl.lit(0.5))]))
    predicted = extreme.predict(pl.DataFrame({"user_id": [1, 2], "movie_id": [0, 0]}))
    assert predicted.min() >= 0.5 and predicted.max() <= 5.0


def test_misuse_is_explained():
    with pytest.raises(RecsysError, match="lacks the column"):
        BiasBaseline().fit(pl.DataFrame({"user_id": [1], "rating": [4.0]}))
    with pytest.raises(RecsysError, match="empty"):
        GlobalMeanBaseline().fit(pl.DataFrame({"rating": []}, schema={"rating": pl.Float64}))
    with pytest.raises(RecsysError, match="fitted"):
        BiasBaseline().predict(pl.DataFrame({"user_id": [1], "movie_id": [1]}))
