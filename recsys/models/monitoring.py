"""Monitoring of the champion after each day: is it better than the bias baseline, and has it degraded?

The results are plain values; the Dagster layer reports them as WARN-severity asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Any

import polars as pl

from recsys.models import registry
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
DESCRIPTIONS = {
    BEATS_BIAS: "Warns when the champion does no better than the user+item-bias baseline on the day.",
    NOT_DEGRADED: "Warns when the champion's MSE exceeds the trailing median by more than the tolerance.",
}


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
    promoted = features.query(
        "SELECT DISTINCT batch, true AS promoted FROM promotions WHERE promoted AND metric = 'mse' AND batch >= 0"
    )
    if scored.height == 0:
        return pl.DataFrame(schema={"partition_key": pl.String, "batch": pl.Int64, "promoted": pl.Boolean})
    wide = scored.pivot(on="model", index=["partition_key", "batch"], values="mse").sort("batch")
    return wide.join(promoted.cast({"batch": wide.schema["batch"]}), on="batch", how="left").with_columns(
        pl.col("promoted").fill_null(False)
    )
