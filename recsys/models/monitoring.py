"""Monitoring of the champion after each day: is it better than the bias baseline, and has it degraded?

The results are plain values; the Dagster layer reports them as WARN-severity asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Any

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


