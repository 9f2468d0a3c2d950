"""Great Expectations results and monitoring results as Dagster asset checks.

One Dagster check per GX suite: an error-severity suite is a blocking check (a failure stops the
assets downstream in the run), a warn-severity suite is a soft one. A range run (several
partitions in one run) reports each check once, passing only if it passed on every partition, with
each partition's outcome in the metadata.
"""

from __future__ import annotations

from typing import Sequence

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from recsys.models.monitoring import DESCRIPTIONS, MonitoringResult
from recsys.quality.results import SuiteResult, SuiteSpec


def check_specs(asset_name: str, suites: Sequence[SuiteSpec]) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            suite.name,
            asset=asset_name,
            blocking=suite.severity == "error",
            description=f"Great Expectations suite ({suite.severity}): {suite.description}",
        )
        for suite in suites
    ]


def check_results(asset_name: str, results: dict[str, list[SuiteResult]]) -> list[AssetCheckResult]:
    """One check result per suite, folding the partitions of a range run together."""
    by_suite: dict[str, list[tuple[str, SuiteResult]]] = {}
    for partition, suite_results in results.items():
        for result in suite_results:
            by_suite.setdefault(result.suite, []).append((partition, result))
    checks = []
    for suite, outcomes in by_suite.items():
        failed = [(p, r) for p, r in outcomes if not r.success]
        severity = outcomes[0][1].severity
        if len(outcomes) == 1:
            metadata = outcomes[0][1].to_metadata()
            description = outcomes[0][1].summary()
        else:
            metadata = {p: r.to_metadata() for p, r in outcomes}
            description = f"{suite}: {len(outcomes) - len(failed)}/{len(outcomes)} partitions passed" + (
                "; failed: " + ", ".join(p for p, _ in failed) if failed else ""
            )
        checks.append(
            AssetCheckResult(
                asset_key=asset_name,
                check_name=suite,
                passed=not failed,
                severity=AssetCheckSeverity.ERROR if severity == "error" else AssetCheckSeverity.WARN,
                metadata=metadata,
                description=description,
            )
        )
    return checks


def monitoring_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(name, asset=asset_name, description=text) for name, text in DESCRIPTIONS.items()]


def monitoring_results(asset_name: str, results: list[MonitoringResult]) -> list[AssetCheckResult]:
    """Monitoring only warns: a champion worse than a baseline is news, not a reason to stop."""
    return [
        AssetCheckResult(
            asset_key=asset_name,
            check_name=result.name,
            passed=result.passed,
            severity=AssetCheckSeverity.WARN,
            metadata=result.metadata,
            description=result.description,
        )
        for result in results
    ]
