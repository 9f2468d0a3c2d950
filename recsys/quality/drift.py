"""Data drift: does a day look like the days before it? Pure statistics on frames, no store.

A day is compared with a trailing reference window on what the model consumes:
- the rating distribution: PSI over the ten half-star values, and the Wasserstein (earth mover's)
  distance in stars, which PSI cannot tell from a reshuffle of the same mass;
- the genre mix of the rated movies (PSI over genres) and each genre's mean rating (the largest
  shift among genres with enough ratings on both sides);
- the share of the day's ratings by users, and for movies, that had no rating before (arrivals);
- the champion's residuals (prediction minus rating): their mean and spread.

Each statistic comes back with its threshold, the window it was compared with and what contributed
most (genres, rating values), so a person reading the alarm knows where to look.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

# The rating scale's half stars: the bins of the rating distribution.
RATING_VALUES = np.arange(0.5, 5.01, 0.5)
# Probabilities are floored at this before logs, so an empty bin on one side stays finite.
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class DriftThresholds:
    """When a statistic raises an alarm. The defaults were calibrated on a stable synthetic replay
    (20 days) and the MovieLens 100K one (10 days) in benchmarks/drift.py: round values just above
    what those days reach, so a check raises about one alarm in twenty days on them. MovieLens days
    are lumpier than synthetic ones (a few users' sessions make a day): at 0.35 stars one genre's
    mean shifted past the threshold on 2 of its 10 days, at 0.5 on none; the Wasserstein distance
    reached 0.38 on one day (a real outlier, flagged with PSI 0.14) and 0.17 on another."""

    rating_psi: float = 0.1
    rating_wasserstein: float = 0.2  # stars
    genre_mix_psi: float = 0.1
    genre_mean_shift: float = 0.5  # stars, the largest shift of one genre's mean rating
    new_user_share: float = 0.3  # absolute change of the share of the day's ratings by new users
    new_movie_share: float = 0.1  # the same for ratings of new movies
    residual_mean: float = 0.25  # stars: the champion's mean error against the reference's
    residual_spread: float = 0.3  # relative change of the residuals' standard deviation
    reference_days: int = 7  # the trailing window a day is compared with
    min_genre_ratings: int = 100  # a genre's mean is compared only with this many ratings on each side


@dataclass(frozen=True)
class DriftStatistic:
    check: str  # the check it belongs to, e.g. "rating_distribution_drift"
    statistic: str  # e.g. "psi"
    value: float
    threshold: float
    reference: str  # the window compared with, e.g. "2025-01-01..2025-01-07"
    contributors: list[tuple[str, float]] = field(default_factory=list)  # what moved most, largest first

    def __post_init__(self) -> None:
        # Plain floats (not numpy's), so results serialize to JSON and Dagster metadata as they are.
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "contributors", [(str(name), float(change)) for name, change in self.contributors])

    @property
    def alarm(self) -> bool:
        return bool(self.value > self.threshold)

    def describe(self) -> str:
        top = ", ".join(f"{name} {value:+.3f}" for name, value in self.contributors[:3])
        return f"{self.statistic} {self.value:.3f} (threshold {self.threshold:g})" + (f"; most: {top}" if top else "")


def psi(day: np.ndarray, reference: np.ndarray) -> tuple[float, np.ndarray]:
    """Population stability index of two count vectors over the same bins, and each bin's term."""
    p = np.maximum(day / max(day.sum(), 1), PSI_FLOOR)
    q = np.maximum(reference / max(reference.sum(), 1), PSI_FLOOR)
    terms = (p - q) * np.log(p / q)
    return float(terms.sum()), terms


def wasserstein(day: np.ndarray, reference: np.ndarray, step: float = 0.5) -> float:
    """Earth mover's distance between two distributions over equally spaced values, in their unit."""
    p, q = day / max(day.sum(), 1), reference / max(reference.sum(), 1)
    return float(np.abs(np.cumsum(p - q)).sum() * step)


def rating_counts(ratings: pl.Series) -> np.ndarray:
    index = np.clip(np.rint(ratings.to_numpy() * 2).astype(int) - 1, 0, len(RATING_VALUES) - 1)
    return np.bincount(index, minlength=len(RATING_VALUES)).astype(float)


def rating_drift(day: pl.DataFrame, reference: pl.DataFrame, thresholds: DriftThresholds, window: str) -> list[DriftStatistic]:
    """PSI and Wasserstein distance of the day's ratings against the reference's."""
    counts_day, counts_reference = rating_counts(day["rating"]), rating_counts(reference["rating"])
    value, terms = psi(counts_day, counts_reference)
    share_change = counts_day / max(counts_day.sum(), 1) - counts_reference / max(counts_reference.sum(), 1)
    order = np.argsort(-terms)
    contributors = [(f"{RATING_VALUES[i]:g} stars", float(share_change[i])) for i in order[:3]]
    check = "rating_distribution_drift"
    return [
        DriftStatistic(check, "psi", value, thresholds.rating_psi, window, contributors),
        DriftStatistic(check, "wasserstein", wasserstein(counts_day, counts_reference), thresholds.rating_wasserstein, window),
    ]


def genre_drift(
    day: pl.DataFrame, reference: pl.DataFrame, genres: list[str], thresholds: DriftThresholds, window: str
) -> list[DriftStatistic]:
    """Genre mix (PSI over each genre's share of rated-movie memberships) and the largest shift of
    a genre's mean rating. `genres` are the frames' 0/1 genre columns."""

    def per_genre(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            *(pl.col(g).sum().alias(f"{g}__n") for g in genres),
            *((pl.col(g) * pl.col("rating")).sum().alias(f"{g}__sum") for g in genres),
        )

    d, r = per_genre(day).row(0, named=True), per_genre(reference).row(0, named=True)
    n_day = np.array([d[f"{g}__n"] for g in genres], dtype=float)
    n_reference = np.array([r[f"{g}__n"] for g in genres], dtype=float)
    mix, terms = psi(n_day, n_reference)
    share_change = n_day / max(n_day.sum(), 1) - n_reference / max(n_reference.sum(), 1)
    names = [g.removeprefix("mg_") for g in genres]
    mix_top = [(names[i], float(share_change[i])) for i in np.argsort(-terms)[:3]]
    shifts = []
    for i, g in enumerate(genres):
        if min(n_day[i], n_reference[i]) >= thresholds.min_genre_ratings:
            shifts.append((names[i], d[f"{g}__sum"] / n_day[i] - r[f"{g}__sum"] / n_reference[i]))
    shifts.sort(key=lambda item: -abs(item[1]))
    largest = abs(shifts[0][1]) if shifts else 0.0
    check = "genre_drift"
    return [
        DriftStatistic(check, "genre_mix_psi", mix, thresholds.genre_mix_psi, window, mix_top),
        DriftStatistic(check, "genre_mean_shift", largest, thresholds.genre_mean_shift, window, [(n, float(s)) for n, s in shifts[:3]]),
    ]


def new_shares(frame: pl.DataFrame) -> pl.DataFrame:
    """Per batch: the share of its ratings made by users, and given to movies, that had no rating
    before that batch: what the model meets without history. (A row with no earlier rating of its
    user, or movie, marks them new that day: true under event-time and batch-time features alike.)"""
    new_users = frame.filter(pl.col("u_count") == 0).select("batch", "user_id").unique().with_columns(new_user=pl.lit(1.0))
    new_movies = frame.filter(pl.col("m_count") == 0).select("batch", "movie_id").unique().with_columns(new_movie=pl.lit(1.0))
    return (
        frame.select("batch", "user_id", "movie_id")
        .join(new_users, on=["batch", "user_id"], how="left")
        .join(new_movies, on=["batch", "movie_id"], how="left")
        .group_by("batch")
        .agg(pl.col("new_user").fill_null(0.0).mean().alias("new_users"), pl.col("new_movie").fill_null(0.0).mean().alias("new_movies"))
        .sort("batch")
    )


def arrival_drift(day: pl.DataFrame, reference: pl.DataFrame, thresholds: DriftThresholds, window: str) -> list[DriftStatistic]:
    """How far the day's shares of ratings by new users and of new movies are from the reference days' mean.
    Only daily batches count as reference days (the bootstrap is years of history at once)."""
    today = new_shares(day).row(0, named=True)
    past = new_shares(reference.filter(pl.col("batch") >= 0))
    check = "new_arrivals_drift"
    out = []
    for column, threshold in (("new_users", thresholds.new_user_share), ("new_movies", thresholds.new_movie_share)):
        if past.height == 0:  # the first day: nothing to compare with yet
            out.append(DriftStatistic(check, f"{column}_share_change", 0.0, threshold, "no earlier day"))
            continue
        mean = float(past[column].mean())
        change = today[column] - mean
        out.append(DriftStatistic(check, f"{column}_share_change", abs(change), threshold, window, [(f"{column} share {today[column]:.3f} vs {mean:.3f}", change)]))
    return out


def residual_drift(
    mean_error: float, spread: float, reference: pl.DataFrame, thresholds: DriftThresholds, window: str
) -> list[DriftStatistic]:
    """The champion's mean error and residual spread on the day against the reference days' (columns
    `mean_error`, `spread`, `rows`): a model gone stale shows a bias before its MSE says why."""
    check = "residual_drift"
    if reference.height == 0:
        return [
            DriftStatistic(check, "mean_error_change", 0.0, thresholds.residual_mean, "no earlier day"),
            DriftStatistic(check, "spread_change", 0.0, thresholds.residual_spread, "no earlier day"),
        ]
    weights = reference["rows"].to_numpy().astype(float)
    reference_mean = float(np.average(reference["mean_error"].to_numpy(), weights=weights))
    reference_spread = float(np.average(reference["spread"].to_numpy(), weights=weights))
    relative = spread / reference_spread - 1 if reference_spread > 0 else 0.0
    return [
        DriftStatistic(check, "mean_error_change", abs(mean_error - reference_mean), thresholds.residual_mean, window,
                       [(f"mean error {mean_error:+.3f} vs {reference_mean:+.3f}", mean_error - reference_mean)]),
        DriftStatistic(check, "spread_change", abs(relative), thresholds.residual_spread, window,
                       [(f"residual sd {spread:.3f} vs {reference_spread:.3f}", relative)]),
    ]  # fmt: skip
