"""Drift statistics and the retrain rule, on frames whose answer is known."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys.models.triggers import RetrainPolicy, decide
from recsys.quality.drift import (
    DriftThresholds,
    arrival_drift,
    genre_drift,
    psi,
    rating_drift,
    residual_drift,
    wasserstein,
)

THRESHOLDS = DriftThresholds()


def frame(ratings, genres=None, batch=0, users=None, u_count=None, m_count=None) -> pl.DataFrame:
    n = len(ratings)
    columns = {
        "batch": [batch] * n, "user_id": users or list(range(n)), "movie_id": list(range(n)), "rating": ratings,
        "u_count": u_count or [1] * n, "m_count": m_count or [1] * n,
    }  # fmt: skip
    for name, flags in (genres or {}).items():
        columns[name] = flags
    return pl.DataFrame(columns)


def test_psi_and_wasserstein_are_zero_for_the_same_distribution_and_grow_with_a_shift():
    counts = np.array([1, 2, 3, 4, 5, 6, 5, 4, 3, 2], dtype=float)
    assert psi(counts * 3, counts)[0] == pytest.approx(0.0) and wasserstein(counts * 3, counts) == pytest.approx(0.0)
    shifted = np.roll(counts, 2)  # every rating one star higher (but the wrapped tail)
    assert psi(shifted, counts)[0] > 0.1
    # All mass moved from 1 star to 4 stars: the earth mover carries it three stars.
    one, four = np.zeros(10), np.zeros(10)
    one[1], four[7] = 10, 10
    assert wasserstein(four, one) == pytest.approx(3.0)


def test_rating_drift_raises_an_alarm_for_a_shifted_day_and_not_for_a_resample():
    rng = np.random.default_rng(0)
    reference = frame(list(np.clip(np.round(rng.normal(3.5, 1, 20_000) * 2) / 2, 0.5, 5)))
    same = frame(list(np.clip(np.round(rng.normal(3.5, 1, 5_000) * 2) / 2, 0.5, 5)))
    lower = frame(list(np.clip(np.round(rng.normal(2.8, 1, 5_000) * 2) / 2, 0.5, 5)))
    assert not any(s.alarm for s in rating_drift(same, reference, THRESHOLDS, "w"))
    psi_stat, distance = rating_drift(lower, reference, THRESHOLDS, "w")
    assert psi_stat.alarm and distance.alarm and distance.value == pytest.approx(0.7, abs=0.08)
    assert psi_stat.contributors and psi_stat.reference == "w"


def test_genre_drift_names_the_genre_whose_ratings_moved():
    n = 2_000
    comedy = [1, 0] * (n // 2)
    drama = [0, 1] * (n // 2)
    reference = frame([4.0, 3.0] * (n // 2), {"mg_comedy": comedy, "mg_drama": drama})
    day = frame([2.5, 3.0] * (n // 2), {"mg_comedy": comedy, "mg_drama": drama})
    mix, mean_shift = genre_drift(day, reference, ["mg_comedy", "mg_drama"], THRESHOLDS, "w")
    assert not mix.alarm  # the same genres were rated, only the ratings moved
    assert mean_shift.alarm and mean_shift.value == pytest.approx(1.5)
    assert mean_shift.contributors[0] == ("comedy", pytest.approx(-1.5))


def test_arrival_drift_compares_the_share_of_ratings_by_new_users_with_earlier_days():
    # Earlier days: one new user rating once among nine regulars (10% of the ratings).
    earlier = pl.concat([frame([4.0] * 10, batch=b, users=list(range(10)), u_count=[0] + [3] * 9) for b in (1, 2)])
    # Then two newcomers make 8 of the 10 ratings (each first rating has no earlier one).
    crowd = frame([4.0] * 10, batch=3, users=[0, 0, 0, 0, 1, 1, 1, 1, 2, 3], u_count=[0, 1, 2, 3, 0, 1, 2, 3, 5, 5])
    users, movies = arrival_drift(crowd, earlier, THRESHOLDS, "w")
    assert users.alarm and users.value == pytest.approx(0.8 - 0.1)
    assert not movies.alarm
    # The first day has no earlier day to compare with (the bootstrap is not a day).
    (first_users, _) = arrival_drift(crowd, frame([4.0], batch=-1), THRESHOLDS, "w")
    assert not first_users.alarm and first_users.reference == "no earlier day"


def test_residual_drift_sees_a_bias_the_mse_would_hide_behind():
    reference = pl.DataFrame({"rows": [1000, 1000], "mean_error": [0.01, -0.01], "spread": [0.6, 0.6]})
    bias, spread = residual_drift(0.4, 0.62, reference, THRESHOLDS, "w")
    assert bias.alarm and bias.value == pytest.approx(0.4) and not spread.alarm


def test_a_retrain_is_triggered_when_alarms_persist_and_no_full_model_has_seen_them():
    policy = RetrainPolicy(persist_days=2, cooldown_days=3)
    drift = "genre_drift.genre_mean_shift"
    alarms = {3: [], 4: [drift], 5: [drift, "residual_drift.mean_error_change"], 6: [drift], 9: [drift], 10: [drift]}
    assert not decide(alarms, 4, last_full_batch=-1, last_trigger_batch=None, policy=policy).retrain  # one day is not a trend
    decision = decide(alarms, 5, last_full_batch=-1, last_trigger_batch=None, policy=policy)
    assert decision.retrain and drift in decision.reason and decision.checks == [drift, "residual_drift.mean_error_change"]
    # A weekly retrain through day 4 already learned from the first day of alarms: no need.
    assert not decide(alarms, 5, last_full_batch=4, last_trigger_batch=None, policy=policy).retrain
    # A full model from before the alarms began does not count; a recent trigger does (cooldown).
    assert decide(alarms, 6, last_full_batch=3, last_trigger_batch=None, policy=policy).retrain
    assert not decide(alarms, 10, last_full_batch=3, last_trigger_batch=8, policy=policy).retrain
    assert decide(alarms, 10, last_full_batch=3, last_trigger_batch=5, policy=policy).retrain  # a new run of alarms
    assert not decide({5: ["x"]}, 5, last_full_batch=None, last_trigger_batch=None, policy=policy).retrain  # day 4 never measured
