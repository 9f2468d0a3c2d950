"""When drift or degradation calls for a full retrain before the weekly one.

One function decides, `retrain_decision`: the Dagster sensor calls it after each day, and so does
`recsys replay`. A retrain is triggered when each of the last `persist_days` days raised at least
one alarm (a data-drift statistic, the champion's residual drift, or its MSE over the degradation
tolerance: the rows of `drift_metrics`), unless a full model has already been trained on the first
day of that run of alarms (a weekly or an earlier triggered retrain saw the change), or a retrain
was triggered less than `cooldown_days` ago. The retrain is an ordinary full version that goes
through the promotion gate; `retrain_triggers` records why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from recsys.features.drift import alarms_by_day
from recsys.models import registry
from recsys.stores import Store


@dataclass(frozen=True)
class RetrainPolicy:
    persist_days: int = 2  # consecutive days with an alarm before a retrain is requested
    cooldown_days: int = 3  # days from one triggered retrain to the next at the earliest
    # How far back a run of alarm days is followed to find where it started.
    lookback_days: int = 30


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str
    alarms: dict[int, list[str]] = field(default_factory=dict)  # the days considered: their alarms

    @property
    def checks(self) -> list[str]:
        return sorted({alarm for day in self.alarms.values() for alarm in day})


def decide(
    alarms: dict[int, list[str]], batch: int, last_full_batch: int | None, last_trigger_batch: int | None, policy: RetrainPolicy
) -> RetrainDecision:
    """The rule itself, on plain values: `alarms` maps each measured day to its alarms."""
    days = range(batch - policy.persist_days + 1, batch + 1)
    considered = {day: alarms[day] for day in days if day in alarms}
    if len(considered) < policy.persist_days or not all(considered.values()):
        quiet = [day for day in days if not alarms.get(day)]
        return RetrainDecision(False, f"no alarm on {len(quiet)} of the last {policy.persist_days} days", considered)
    start = batch
    while alarms.get(start - 1):
        start -= 1
    if last_full_batch is not None and last_full_batch >= start:
        return RetrainDecision(False, f"alarms persist since batch {start}, but a full model trained through batch {last_full_batch} has seen them", considered)
    if last_trigger_batch is not None and batch - last_trigger_batch < policy.cooldown_days:
        return RetrainDecision(False, f"alarms persist, but a retrain was triggered on batch {last_trigger_batch} ({policy.cooldown_days}-day cooldown)", considered)
    checks = sorted({a for day in considered.values() for a in day})
    return RetrainDecision(True, f"alarms on each of the last {policy.persist_days} days: {', '.join(checks)}", considered)


def retrain_decision(features: Store, batch: int, policy: RetrainPolicy) -> RetrainDecision:
    """Whether the alarms through day `batch` call for a full retrain now (see the module doc)."""
    last_full = features.scalar(
        "SELECT max(last_batch) FROM model_versions WHERE kind = 'full' AND stage = $stage AND last_batch < $batch",
        {"stage": registry.RATING, "batch": batch + 1},
    )
    last_trigger = features.scalar("SELECT max(batch) FROM retrain_triggers WHERE batch < $batch", {"batch": batch})
    return decide(alarms_by_day(features, batch, policy.lookback_days), batch, last_full, last_trigger, policy)


def record_trigger(features: Store, partition_key: str, batch: int, version: str, decision: RetrainDecision) -> None:
    """The registry's record of why a version was trained outside the calendar."""
    row = pl.DataFrame(
        [{"partition_key": partition_key, "batch": batch, "version": version, "reason": decision.reason,
          "alarms": json.dumps({str(day): found for day, found in decision.alarms.items()}), "decided_at": registry.now()}],
        schema_overrides={"batch": pl.Int32},
    )  # fmt: skip
    features.replace("retrain_triggers", "version = $version", {"version": version}, row)


def trigger_table(features: Store) -> pl.DataFrame:
    return features.query("SELECT partition_key AS day, version, reason FROM retrain_triggers ORDER BY batch, decided_at")
