"""Great Expectations results and monitoring results as Dagster asset checks.

One Dagster check per GX suite: an error-severity suite is a blocking check (a failure stops the
assets downstream in the run), a warn-severity suite is a soft one. The checks of a daily asset are
partitioned like it, so every result names the day it validated: Dagster records a one-day run's
results under its partition. A range run (a single-run backfill of several days) also logs each
day's result as that day's evaluation, and reports each check once for the run, passing only if it
passed on every day.
"""

from __future__ import annotations

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

from recsys.models.monitoring import DESCRIPTIONS, MonitoringResult
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


def _severity(result: SuiteResult) -> AssetCheckSeverity:
    return AssetCheckSeverity.ERROR if result.severity == "error" else AssetCheckSeverity.WARN


def check_results(
    asset_name: str, results: Mapping[str, list[SuiteResult]], context: AssetExecutionContext | None = None
) -> list[AssetCheckResult]:
    """One check result per suite. `results` maps what was validated (a partition key, or a name
    such as "bootstrap") to its suite results; with several partitions (a range run) each one's
    result is first logged as that partition's evaluation through `context`."""
    by_suite: dict[str, list[tuple[str, SuiteResult]]] = {}
    for validated, suite_results in results.items():
        for result in suite_results:
            by_suite.setdefault(result.suite, []).append((validated, result))
    checks = []
    for suite, outcomes in by_suite.items():
        failed = [p for p, r in outcomes if not r.success]
        if len(outcomes) == 1:
            validated, result = outcomes[0]
            metadata, description = suite_metadata(validated, result), f"{validated}: {result.summary()}"
        else:
            if context is None:
                raise ValueError("A range run's check results need the run's context to log each partition's.")
            for partition, result in outcomes:
                context.log_event(
                    AssetCheckEvaluation(
                        asset_key=AssetKey(asset_name),
                        check_name=suite,
                        passed=result.success,
                        metadata=suite_metadata(partition, result),
                        severity=_severity(result),
                        description=f"{partition}: {result.summary()}",
                        blocking=result.severity == "error",
                        partition=partition,
                    )
                )
            span = f"{outcomes[0][0]}..{outcomes[-1][0]}"
            metadata = {"partitions": span, "passed_partitions": len(outcomes) - len(failed), "failed_partitions": ", ".join(failed)}
            description = f"{span}: {len(outcomes) - len(failed)}/{len(outcomes)} partitions passed" + (
                "; failed: " + ", ".join(failed) if failed else ""
            )
        checks.append(
            AssetCheckResult(
                asset_key=asset_name,
                check_name=suite,
                passed=not failed,
                severity=_severity(outcomes[0][1]),
                metadata=metadata,
                description=description,
            )
        )
    return checks


def monitoring_specs(asset_name: str, partitions_def: PartitionsDefinition | None = None) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(name, asset=asset_name, description=text, partitions_def=partitions_def)
        for name, text in DESCRIPTIONS.items()
    ]


def monitoring_results(asset_name: str, partition: str, results: list[MonitoringResult]) -> list[AssetCheckResult]:
    """Monitoring only warns: a champion worse than a baseline is news, not a reason to stop. Each
    result is about the run's last day, and says so."""
    return [
        AssetCheckResult(
            asset_key=asset_name,
            check_name=result.name,
            passed=result.passed,
            severity=AssetCheckSeverity.WARN,
            metadata={"partition": partition, **result.metadata},
            description=f"{partition}: {result.description}",
        )
        for result in results
    ]
