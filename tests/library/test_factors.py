"""Movie factors and users folded in at event time: the fold-in is the ridge regression of the
user's strictly earlier ratings (same-second ties excluded, checked against a brute force), the
alternating fit learns a low-rank truth, and a warm start begins at its parent's factors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.errors import RecsysError
from recsys.models import factors
from recsys.models.config import ModelConfig
from recsys.models.factors import (
    FactorSettings,
    MovieFactors,
    fit_movie_factors,
    fold_in,
    fold_in_latest,
    update_movie_factors,
)
from recsys.models.ids import positions_in
from recsys.models.versions import with_factor_slots

SETTINGS = FactorSettings(factors=3, iterations=10)


def history_frame(seed: int, rows: int = 3_000, users: int = 40, movies: int = 60, seconds: int = 400) -> pl.DataFrame:
    """Ratings in time order with many same-second ties (few distinct seconds per user)."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "seq": np.arange(rows),
            "user_id": rng.integers(1, users + 1, rows),
            "movie_id": rng.integers(1, movies + 1, rows),
            "rating": rng.integers(1, 11, rows) / 2.0,
            "global_mean": np.round(3.3 + 0.2 * rng.random(rows), 3),
            "timestamp": np.sort(rng.integers(0, seconds, rows)),
        }
    )


def movie_factors_for(history: pl.DataFrame, seed: int = 0) -> MovieFactors:
    """Factors for all but a few movies (a movie without factors must add nothing)."""
    rng = np.random.default_rng(seed)
    ids = np.sort(history["movie_id"].unique().to_numpy())[3:]
    rows = np.column_stack([rng.normal(0, 0.5, (len(ids), SETTINGS.factors)), np.ones(len(ids)), rng.normal(0, 0.3, len(ids))])
    return MovieFactors(movie_ids=ids.astype(np.int64), rows=rows.astype(np.float32))


def brute_force(movie_factors: MovieFactors, history: pl.DataFrame, user_id: int, before: float) -> np.ndarray:
    """[x, 1] from the user's ratings with timestamp < `before`, one solve."""
    rated = history.filter((pl.col("user_id") == user_id) & (pl.col("timestamp") < before))
    rows = movie_factors.lookup(rated["movie_id"].to_numpy()).astype(np.float64)
    z = rows[:, : SETTINGS.factors + 1]
    y = rated["rating"].to_numpy() - rated["global_mean"].to_numpy() - rows[:, -1]
    ridge = np.diag([SETTINGS.fold_in_reg] * SETTINGS.factors + [SETTINGS.fold_in_bias_reg])
    return np.r_[np.linalg.solve(z.T @ z + ridge, z.T @ y), 1.0]


@pytest.mark.parametrize("chunk_rows", [10**9, 500])
def test_fold_in_is_the_ridge_of_the_users_strictly_earlier_ratings(monkeypatch, chunk_rows):
    monkeypatch.setattr(factors, "FOLD_IN_CHUNK_ROWS", chunk_rows)  # slices cut between users
    history = history_frame(1)
    movie_factors = movie_factors_for(history)
    folded = fold_in(movie_factors, SETTINGS, history)
    assert folded.shape == (history.height, SETTINGS.width) and folded.dtype == np.float32
    sample = np.random.default_rng(2).choice(history.height, 300, replace=False)
    for row in sample:
        user, second = history["user_id"][int(row)], history["timestamp"][int(row)]
        np.testing.assert_allclose(folded[row], brute_force(movie_factors, history, user, second), atol=1e-5)
    # A user's first second sees nothing: x = 0.
    first = history.with_row_index("row").filter(pl.col("timestamp") == pl.col("timestamp").min().over("user_id"))["row"]
    np.testing.assert_array_equal(folded[first.to_numpy()], np.tile(np.r_[np.zeros(SETTINGS.factors + 1), 1.0], (first.len(), 1)))


def test_ids_of_any_size_find_their_positions_alike():
    """Small non-negative ids go through a table, others through a search: the same answer, an
    unknown id -1; so a fold-in of ids far from 0 gives the vectors of the same ids near it."""
    known = np.array([2, 5, 9, 40])
    asked = np.array([9, 3, 2, 40, 41, 5, 0])
    expected = [2, -1, 0, 3, -1, 1, -1]
    assert positions_in(known, asked).tolist() == expected
    for shift in (10**12, -(10**6)):  # searched: beyond the table, and negative
        assert positions_in(known + shift, asked + shift).tolist() == expected
    history = history_frame(4, rows=800)
    movie_factors = movie_factors_for(history)
    rows = np.arange(700, 800)
    shifted = history.with_columns(pl.col("user_id") - 10**6, pl.col("movie_id") + 10**12)
    factors_shifted = MovieFactors(movie_ids=movie_factors.movie_ids + 10**12, rows=movie_factors.rows)
    np.testing.assert_array_equal(
        fold_in(factors_shifted, SETTINGS, shifted, rows), fold_in(movie_factors, SETTINGS, history, rows)
    )


@pytest.mark.parametrize("chunk_rows", [10**9, 500])
@pytest.mark.parametrize("chosen", ["latest", "random"])
def test_folding_in_some_rows_gives_those_rows_of_the_whole_fold_in(monkeypatch, chunk_rows, chosen):
    """Only the rows asked for are solved for, in their order: the latest seventh of the history
    (a day, or a retrain's window, whose users' earlier ratings are summed per user) or any."""
    monkeypatch.setattr(factors, "FOLD_IN_CHUNK_ROWS", chunk_rows)
    history = history_frame(2)
    movie_factors = movie_factors_for(history)
    n, rng = history.height // 7, np.random.default_rng(3)
    latest = np.argsort(history["timestamp"].to_numpy(), kind="stable")[-n:]
    rows = rng.permutation(latest) if chosen == "latest" else rng.choice(history.height, n, replace=False)
    whole = fold_in(movie_factors, SETTINGS, history)
    np.testing.assert_allclose(fold_in(movie_factors, SETTINGS, history, rows), whole[rows], rtol=0, atol=1e-6)
    assert fold_in(movie_factors, SETTINGS, history, rows[:0]).shape == (0, SETTINGS.width)


def test_a_rating_never_sees_itself_nor_its_second_nor_later_ones():
    history = history_frame(3)
    movie_factors = movie_factors_for(history)
    cut = int(history["timestamp"].median())
    # Every rating from second `cut` on is changed: what any rating up to that second is folded
    # in from must not change (same-second ratings included), while later ones do.
    scrambled = history.with_columns(
        pl.when(pl.col("timestamp") >= cut).then(5.5 - pl.col("rating")).otherwise(pl.col("rating")).alias("rating")
    )
    before, after = fold_in(movie_factors, SETTINGS, history), fold_in(movie_factors, SETTINGS, scrambled)
    up_to_cut = (history["timestamp"] <= cut).to_numpy()
    # Equal up to float rounding (the running sums pass through other users' ratings, so their
    # last bits may differ); a rating that leaked would move a vector by orders more.
    np.testing.assert_allclose(before[up_to_cut], after[up_to_cut], rtol=0, atol=1e-9)
    changed = np.abs(before[~up_to_cut] - after[~up_to_cut]).max(axis=1)
    assert (changed > 1e-3).mean() > 0.9


def test_the_latest_fold_in_uses_every_rating_and_nothing_for_unknown_users():
    history = history_frame(4)
    movie_factors = movie_factors_for(history)
    users = np.array([5, 999, 1, 17])  # 999 never rated
    latest = fold_in_latest(movie_factors, SETTINGS, history.drop("timestamp"), users)
    end = int(history["timestamp"].max()) + 1
    for row, user in enumerate(users):
        np.testing.assert_allclose(latest[row], brute_force(movie_factors, history, int(user), end), atol=1e-5)
    np.testing.assert_array_equal(latest[1], np.r_[np.zeros(SETTINGS.factors + 1), 1.0])


def test_the_fit_learns_a_low_rank_truth_better_than_biases():
    """Ratings from a rank-3 model with biases and noise 0.3: the factor model, with each test
    user folded in from their training ratings, comes near the noise; user+movie biases do not."""
    rng = np.random.default_rng(5)
    n_users, n_movies, n = 1_500, 300, 60_000
    p, q = rng.normal(0, 0.7, (n_users, 3)), rng.normal(0, 0.7, (n_movies, 3))
    users, movies = rng.integers(0, n_users, n), rng.integers(0, n_movies, n)
    truth = 0.3 * rng.normal(size=n_users)[users] + 0.3 * rng.normal(size=n_movies)[movies] + (p[users] * q[movies]).sum(1)
    ratings = pl.DataFrame(
        {"seq": np.arange(n), "user_id": users, "movie_id": movies, "rating": 3.5 + truth + rng.normal(0, 0.3, n),
         "global_mean": np.full(n, 3.5), "timestamp": np.arange(n)}
    )  # fmt: skip
    train, test = ratings.head(50_000), ratings.tail(10_000)
    movie_factors = fit_movie_factors(train, SETTINGS)
    rows = movie_factors.lookup(test["movie_id"].to_numpy())
    folded = fold_in(movie_factors, SETTINGS, ratings)[50_000:]
    predicted = 3.5 + rows[:, -1] + (rows[:, :-1] * folded[:, :-1]).sum(1)
    mse = float(((test["rating"].to_numpy() - predicted) ** 2).mean())
    movie_mean = train.group_by("movie_id").agg(pl.col("rating").mean().alias("m"))
    user_offset = train.join(movie_mean, on="movie_id").group_by("user_id").agg((pl.col("rating") - pl.col("m")).mean().alias("u"))
    bias = test.join(movie_mean, on="movie_id", how="left").join(user_offset, on="user_id", how="left").fill_null(0.0)
    bias_mse = float(((bias["rating"] - bias["m"] - bias["u"]) ** 2).mean())
    print(f"\n[factors] test MSE {mse:.3f}, biases {bias_mse:.3f}, noise 0.090")
    assert mse < 0.5 * bias_mse and mse < 0.2


def test_a_warm_start_begins_at_its_parents_factors():
    history = history_frame(6)
    parent = fit_movie_factors(history.head(2_000), SETTINGS)
    unchanged = fit_movie_factors(history, SETTINGS, start=parent, iterations=0)
    known = np.isin(unchanged.movie_ids, parent.movie_ids)
    np.testing.assert_array_equal(unchanged.rows[known], parent.lookup(unchanged.movie_ids[known]))
    moved = fit_movie_factors(history, SETTINGS, start=parent, iterations=2)
    assert not np.array_equal(moved.rows[known], unchanged.rows[known])


def ridge_rows(ratings: pl.DataFrame, state: MovieFactors) -> dict[int, np.ndarray]:
    """Each movie's [q, b] solved on its own from all its ratings, given the users' sides in
    `state` (the movie half-step of the alternating fit, one movie at a time)."""
    k = SETTINGS.factors
    side = dict(zip(state.user_ids.tolist(), state.user_side))
    ridge = np.diag([SETTINGS.factor_reg] * k + [SETTINGS.movie_bias_reg])
    solved = {}
    for (movie,), rated in ratings.group_by(["movie_id"]):
        sides = np.array([side[u] for u in rated["user_id"].to_list()])
        z = np.column_stack([sides[:, :k], np.ones(len(sides))])
        y = rated["rating"].to_numpy() - rated["global_mean"].to_numpy() - sides[:, k]
        solved[movie] = np.linalg.solve(z.T @ z + ridge, z.T @ y)
    return solved


def test_a_warm_start_carries_the_fit_forward_from_the_users_who_rated_since():
    # Batches 0-1 fitted; batch 2 brings two users' ratings (one user new) and a movie never
    # rated before. The update must leave every movie exactly where the alternating fit's movie
    # half-step would put it given every user's side (its sums hold no stale term), solve the
    # day's users again from all their ratings, and keep every other user's side.
    history = history_frame(8, rows=1_200, users=30, movies=40).with_columns(batch=pl.col("seq") // 500)
    day_users = [3, 99]
    history = history.with_columns(
        user_id=pl.when(pl.col("batch") < 2).then(pl.col("user_id").replace(99, 1)).otherwise(
            pl.when(pl.col("seq") % 2 == 0).then(3).otherwise(99)
        ),
        movie_id=pl.when((pl.col("batch") == 2) & (pl.col("seq") % 7 == 0)).then(500).otherwise(pl.col("movie_id")),
    )
    parent = fit_movie_factors(history.filter(pl.col("batch") < 2), SETTINGS)
    assert parent.has_fit_state and 99 not in parent.user_ids and 500 not in parent.movie_ids
    since = history.filter(pl.col("user_id").is_in(day_users))
    updated = update_movie_factors(parent, SETTINGS, since, after_batch=1)

    solved = ridge_rows(history, updated)
    assert set(solved) == set(updated.movie_ids.tolist()) and 500 in solved
    k = SETTINGS.factors
    for movie, row in zip(updated.movie_ids.tolist(), updated.rows):
        np.testing.assert_allclose(np.r_[row[:k], row[k + 1]], solved[movie], rtol=1e-4, atol=1e-5)
    untouched = np.setdiff1d(parent.user_ids, day_users)
    np.testing.assert_array_equal(
        updated.user_side[np.searchsorted(updated.user_ids, untouched)], parent.user_side[np.searchsorted(parent.user_ids, untouched)]
    )
    # A day user's side: the ridge of all their ratings on the parent's movies (the new movie at
    # q = 0, b = 0, its rating still telling of the user's bias).
    rated = since.filter(pl.col("user_id") == 3)
    rows = parent.lookup(rated["movie_id"].to_numpy()).astype(np.float64)
    z = np.column_stack([rows[:, :k], np.ones(len(rows))])
    y = rated["rating"].to_numpy() - rated["global_mean"].to_numpy() - rows[:, k + 1]
    ridge = np.diag([SETTINGS.factor_reg] * k + [SETTINGS.user_bias_reg])
    np.testing.assert_allclose(updated.user_side[np.searchsorted(updated.user_ids, 3)], np.linalg.solve(z.T @ z + ridge, z.T @ y), rtol=1e-6)
    # Factors saved before the state was kept cannot be carried forward.
    with pytest.raises(RecsysError, match="without their fit's state"):
        update_movie_factors(MovieFactors(parent.movie_ids, parent.rows), SETTINGS, since, after_batch=1)


def test_examples_get_their_slots_only_from_a_history_that_holds_them():
    history = history_frame(7)
    config = ModelConfig(factors=SETTINGS.factors)
    movie_factors = movie_factors_for(history)
    examples = history.tail(100)
    slotted = with_factor_slots(examples, config, movie_factors, history)
    np.testing.assert_array_equal(
        slotted.select(factors.user_factor_columns(config.factor_settings())).to_numpy(),
        fold_in(movie_factors, config.factor_settings(), history)[-100:],
    )
    with pytest.raises(RecsysError, match="lacks some of the examples"):
        with_factor_slots(examples, config, movie_factors, history.head(100))
    with pytest.raises(RecsysError, match="holds no movie factors"):
        with_factor_slots(examples, config, None, history)
    assert with_factor_slots(examples, ModelConfig(factors=0), None, history) is examples
