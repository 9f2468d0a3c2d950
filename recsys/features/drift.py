"""A day's data-drift statistics from the feature store, recorded beside the day.

The day's training examples (its clean ratings joined to their point-in-time features: rating,
genres, whether the user and the movie had rated before) are compared with the examples just before
the day: the trailing `reference_days` days, or while there are not that many, the bootstrap's
most recent examples making up the same number of rows. Results go to `drift_metrics`, one row per
statistic, which the Dagster checks report and the retrain trigger reads.
"""

from __future__ import annotations

import json

import polars as pl

from recsys.calendar import Calendar
from recsys.features.point_in_time import GENRE_FLAGS
from recsys.quality.drift import DriftStatistic, DriftThresholds, arrival_drift, genre_drift, rating_drift
from recsys.stores import Store

COLUMNS = ", ".join(["batch", "user_id", "movie_id", "rating", "u_count", "m_count", *GENRE_FLAGS])


def data_drift(features: Store, batch: int, calendar: Calendar, thresholds: DriftThresholds) -> list[DriftStatistic]:
    """The day's rating, genre and arrival drift against its trailing reference window."""
    day = features.query(f"SELECT {COLUMNS} FROM training_examples WHERE batch = $batch", {"batch": batch})
    reference = features.query(
        f"SELECT {COLUMNS} FROM training_examples WHERE batch < $batch AND batch >= $first "
        "ORDER BY batch DESC, seq DESC LIMIT $rows",
        {"batch": batch, "first": batch - thresholds.reference_days, "rows": thresholds.reference_days * max(day.height, 1)},
    )
    if day.height == 0 or reference.height == 0:
        return []
    window = calendar.span(sorted(set(reference["batch"].to_list())))
    return [
        *rating_drift(day, reference, thresholds, window),
        *genre_drift(day, reference, GENRE_FLAGS, thresholds, window),
        *arrival_drift(day, reference, thresholds, window),
    ]


def record_drift(features: Store, partition_key: str, batch: int, statistics: list[DriftStatistic]) -> None:
    """Replace the day's rows of the checks in `statistics` (a day run again is measured again)."""
    checks = sorted({s.check for s in statistics})
    if not checks:
        return
    rows = pl.DataFrame(
        [
            {"partition_key": partition_key, "batch": batch, "check_name": s.check, "statistic": s.statistic,
             "value": s.value, "threshold": s.threshold, "alarm": s.alarm, "reference": s.reference,
             "contributors": json.dumps(s.contributors)}
            for s in statistics
        ],  # fmt: skip
        schema_overrides={"batch": pl.Int32},
    )
    features.replace("drift_metrics", "batch = $batch AND check_name = ANY($checks)", {"batch": batch, "checks": checks}, rows)


def alarms_by_day(features: Store, through_batch: int, days: int) -> dict[int, list[str]]:
    """For each of the `days` days up to `through_batch`: the statistics that raised an alarm, as
    "check.statistic" (an empty list for a day measured without alarm; days never measured are absent)."""
    rows = features.query(
        "SELECT batch, check_name, statistic, alarm FROM drift_metrics WHERE batch <= $last AND batch > $first ORDER BY batch, check_name, statistic",
        {"last": through_batch, "first": through_batch - days},
    )
    found: dict[int, list[str]] = {}
    for row in rows.iter_rows(named=True):
        found.setdefault(row["batch"], [])
        if row["alarm"]:
            found[row["batch"]].append(f"{row['check_name']}.{row['statistic']}")
    return found
