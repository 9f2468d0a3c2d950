"""Monitoring of the champion after each day: is it better than the bias baseline, and has it degraded?

The results are plain values; the Dagster layer reports them as WARN-severity asset checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import polars as pl

from recsys.models import registry
from recsys.quality.drift import DriftStatistic, DriftThresholds, residual_drift
from recsys.models.daily import DayReport
from recsys.models.versions import ModelingSettings
from recsys.stores import Store


@dataclass(frozen=True)
class MonitoringResult:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

# The checks' names, as the Dagster layer declares them.
BEATS_BIAS = "champion_beats_bias_baseline"
NOT_DEGRADED = "champion_mse_not_degraded"
RESIDUAL_DRIFT = "residual_drift"
DESCRIPTIONS = {
    BEATS_BIAS: "Warns when the champion does no better than the user+item-bias baseline on the day.",
    NOT_DEGRADED: "Warns when the champion's MSE exceeds the trailing median by more than the tolerance.",
    RESIDUAL_DRIFT: "Warns when the champion's mean error or residual spread on the day moved away from the "
    "trailing days' (drift thresholds residual_mean, residual_spread).",
}
# The data-drift checks of the day's examples (recsys.features.drift), as the Dagster layer declares them.
DATA_DRIFT_DESCRIPTIONS = {
    "rating_distribution_drift": "Warns when the day's ratings are distributed unlike the trailing days' (PSI over "
    "half stars, Wasserstein distance in stars).",
    "genre_drift": "Warns when the genre mix of the rated movies (PSI) or one genre's mean rating moved away from the trailing days'.",
    "new_arrivals_drift": "Warns when the share of the day's ratings by new users, or of new movies, moved away from the trailing days' mean.",
}


def drift_results(statistics: list[DriftStatistic]) -> list[MonitoringResult]:
    """One warning-level result per drift check: passed unless one of its statistics is over its
    threshold; each statistic's value, threshold, window and top contributors in the metadata."""
    by_check: dict[str, list[DriftStatistic]] = {}
    for statistic in statistics:
        by_check.setdefault(statistic.check, []).append(statistic)
    results = []
    for check, found in by_check.items():
        metadata: dict[str, Any] = {"reference_window": found[0].reference}
        for statistic in found:
            metadata[statistic.statistic] = round(statistic.value, 4)
            metadata[f"{statistic.statistic}_threshold"] = statistic.threshold
            if statistic.contributors:
                metadata[f"{statistic.statistic}_most_changed"] = ", ".join(f"{n} {v:+.3f}" for n, v in statistic.contributors[:3])
        alarms = [st for st in found if st.alarm]
        shown = alarms or found
        description = ("DRIFT " if alarms else "") + "; ".join(st.describe() for st in shown) + f" (against {found[0].reference})"
        results.append(MonitoringResult(name=check, passed=not alarms, description=description, metadata=metadata))
    return results


def residual_statistics(report: DayReport, features: Store, thresholds: DriftThresholds, calendar) -> list[DriftStatistic]:
    """The champion's residual drift on the day: its mean error and spread against the trailing days'."""
    (row,) = report.segments.filter((pl.col("model") == "champion") & (pl.col("segment") == "all")).iter_rows(named=True)
    spread = math.sqrt(max(row["mse"] - row["mean_error"] ** 2, 0.0))
    reference = features.query(
        "SELECT batch, rows, mean_error, sqrt(greatest(mse - mean_error * mean_error, 0)) AS spread FROM model_metrics "
        "WHERE model = 'champion' AND segment = 'all' AND batch < $batch AND batch >= $first ORDER BY batch",
        {"batch": report.batch, "first": report.batch - thresholds.reference_days},
    )
    window = calendar.span(reference["batch"].to_list()) if reference.height else "no earlier day"
    return residual_drift(row["mean_error"], spread, reference, thresholds, window)


def degradation_statistic(not_degraded: MonitoringResult) -> DriftStatistic:
    """The degradation check's own figures as a statistic the retrain trigger reads: the champion's
    MSE over its trailing median, minus one, against the tolerance (0 without earlier days)."""
    figures = not_degraded.metadata
    days = figures["trailing_days"]
    excess = figures["champion_mse"] / figures["trailing_median"] - 1 if days else 0.0
    return DriftStatistic(NOT_DEGRADED, "mse_over_trailing_median", excess, figures["tolerance"], f"{days} earlier days")


def monitoring_checks(report: DayReport, features: Store, modeling: ModelingSettings) -> list[MonitoringResult]:
    """Whether the champion beat the bias baseline on the day, and stayed near its trailing median."""
    champion, bias = report.mse["champion"], report.mse["bias"]
    trailing = registry.trailing_mse(features, "champion", report.batch, modeling.trailing_days)
    baseline = median(trailing) if trailing else None
    limit = baseline * (1 + modeling.degradation_tolerance) if baseline is not None else None
    return [
        MonitoringResult(
            name=BEATS_BIAS,
            passed=bool(champion < bias),
            metadata={"champion_mse": champion, "bias_mse": bias, "partition": report.partition_key},
            description=f"champion MSE {champion:.4f} vs user+item bias {bias:.4f} on {report.partition_key}",
        ),
        MonitoringResult(
            name=NOT_DEGRADED,
            passed=limit is None or champion <= limit,
            metadata={
                "champion_mse": champion,
                "trailing_median": baseline if baseline is not None else float("nan"),
                "tolerance": modeling.degradation_tolerance,
                "trailing_days": len(trailing),
            },
            description=(
                "no earlier days to compare with"
                if limit is None
                else f"champion MSE {champion:.4f} against limit {limit:.4f} (trailing median {baseline:.4f})"
            ),
        ),
    ]




# The models a person compares the champion with, in the order a chart draws them.
CHART_MODELS = ("champion", "bias", "bias_event_time", "global_mean")


def mse_history(features: Store) -> pl.DataFrame:
    """Each scored day's MSE per model (one column per model of CHART_MODELS), and whether the
    rating champion changed that day: what the MSE chart draws."""
    scored = features.query(
        "SELECT partition_key, batch, model, mse FROM model_metrics WHERE segment = 'all' AND batch >= 0 "
        "AND model IN ('champion', 'bias', 'bias_event_time', 'global_mean')"
    )
    if scored.height == 0:
        return pl.DataFrame(schema={"partition_key": pl.String, "batch": pl.Int64, "promoted": pl.Boolean})
    wide = scored.pivot(on="model", index=["partition_key", "batch"], values="mse").sort("batch")
    return wide.with_columns(pl.col("batch").is_in(sorted(promoted_batches(features))).alias("promoted"))


def promoted_batches(features: Store, metric: str = "mse") -> set[int]:
    """The days whose gate put a new champion in service (from the next day on): the rating
    stage's (metric "mse") or the retrieval stage's ("ndcg_at_10")."""
    rows = features.query("SELECT DISTINCT batch FROM promotions WHERE promoted AND metric = $metric AND batch >= 0", {"metric": metric})
    return set(rows["batch"].to_list())
