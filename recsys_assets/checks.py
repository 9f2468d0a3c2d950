"""Great Expectations results and monitoring results as Dagster asset checks.

One Dagster check per GX suite: an error-severity suite is a blocking check (a failure stops the
assets downstream in the run), a warn-severity suite is a soft one. The checks of a daily asset are
partitioned like it, so every result names the day it validated: Dagster records a one-day run's
results under its partition. A range run (a single-run backfill of several days) also logs each
day's result as that day's evaluation, and reports each check once for the run, passing only if it
passed on every day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableRecord,
    TableSchema,
)

from recsys.models.monitoring import MonitoringResult
from recsys.quality.results import SuiteResult, SuiteSpec


def check_specs(
    asset_name: str, suites: Sequence[SuiteSpec], partitions_def: PartitionsDefinition | None = None
) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            suite.name,
            asset=asset_name,
            blocking=suite.severity == "error",
            description=f"Great Expectations suite ({suite.severity}): {suite.description}",
            partitions_def=partitions_def,
        )
        for suite in suites
    ]


EXPECTATION_COLUMNS = TableSchema(
    columns=[
        TableColumn("expectation", "string"),
        TableColumn("column", "string"),
        TableColumn("success", "string"),
        TableColumn("unexpected", "string", description="rows that failed the expectation"),
        TableColumn("sample", "string", description="up to three unexpected values, or why GX could not evaluate it"),
    ]
)


def suite_metadata(validated: str, result: SuiteResult) -> dict:
    """What a person reads on one check result: which day, the counts, then one row per expectation
    (the library's `to_metadata()` keeps each expectation's full JSON for the replay report)."""
    failed = len(result.failed())
    rows = [TableRecord({k: str(v) for k, v in row.items()}) for row in result.outcome_table()]
    return {
        "partition": validated,
        "evaluated": len(result.outcomes),
        "passed": len(result.outcomes) - failed,
        "failed": failed,
        "expectations": MetadataValue.table(rows, schema=EXPECTATION_COLUMNS),
    }


@dataclass(frozen=True)
class Outcome:
    """One check's result on one partition (or on a named slice such as "bootstrap")."""

    validated: str
    passed: bool
    severity: AssetCheckSeverity
    metadata: dict
    description: str


def _fold(asset_name: str, outcomes_by_check: dict[str, list[Outcome]], context) -> list[AssetCheckResult]:
    """One result per check. With several partitions (a range run) each partition's outcome is
    first logged as that partition's evaluation, and the run's result says how many passed."""
    checks = []
    for check, outcomes in outcomes_by_check.items():
        failed = [o.validated for o in outcomes if not o.passed]
        if len(outcomes) == 1:
            metadata, description = outcomes[0].metadata, outcomes[0].description
        else:
            if context is None:
                raise ValueError("A range run's check results need the run's context to log each partition's.")
            for outcome in outcomes:
                context.log_event(
                    AssetCheckEvaluation(
                        asset_key=AssetKey(asset_name), check_name=check, passed=outcome.passed, metadata=outcome.metadata,
                        severity=outcome.severity, description=outcome.description,
                        blocking=outcome.severity == AssetCheckSeverity.ERROR, partition=outcome.validated,
                    )
                )  # fmt: skip
            span = f"{outcomes[0].validated}..{outcomes[-1].validated}"
            metadata = {"partitions": span, "passed_partitions": len(outcomes) - len(failed), "failed_partitions": ", ".join(failed)}
            description = f"{span}: {len(outcomes) - len(failed)}/{len(outcomes)} partitions passed" + (
                "; failed: " + ", ".join(failed) if failed else ""
            )
        checks.append(
            AssetCheckResult(
                asset_key=asset_name, check_name=check, passed=not failed, severity=outcomes[0].severity,
                metadata=metadata, description=description,
            )
        )  # fmt: skip
    return checks


def check_results(
    asset_name: str, results: Mapping[str, list[SuiteResult]], context: AssetExecutionContext | None = None
) -> list[AssetCheckResult]:
    """One check result per GX suite. `results` maps what was validated (a partition key, or a name
    such as "bootstrap") to its suite results; a range run needs `context` (see `_fold`)."""
    by_check: dict[str, list[Outcome]] = {}
    for validated, suite_results in results.items():
        for r in suite_results:
            severity = AssetCheckSeverity.ERROR if r.severity == "error" else AssetCheckSeverity.WARN
            outcome = Outcome(validated, r.success, severity, suite_metadata(validated, r), f"{validated}: {r.summary()}")
            by_check.setdefault(r.suite, []).append(outcome)
    return _fold(asset_name, by_check, context)


def monitoring_specs(
    asset_name: str, descriptions: Mapping[str, str], partitions_def: PartitionsDefinition | None = None
) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(name, asset=asset_name, description=text, partitions_def=partitions_def)
        for name, text in descriptions.items()
    ]


def monitoring_results(
    asset_name: str, results: Mapping[str, list[MonitoringResult]], context: AssetExecutionContext | None = None
) -> list[AssetCheckResult]:
    """Monitoring and drift only warn: a champion worse than a baseline, or a day unlike the ones
    before it, is news, not a reason to stop. `results` maps each partition to its results."""
    by_check: dict[str, list[Outcome]] = {}
    for partition, found in results.items():
        for r in found:
            outcome = Outcome(partition, r.passed, AssetCheckSeverity.WARN, {"partition": partition, **r.metadata}, f"{partition}: {r.description}")
            by_check.setdefault(r.name, []).append(outcome)
    return _fold(asset_name, by_check, context)
