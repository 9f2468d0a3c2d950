"""Running the platform's jobs through Dagster from the command line.

Runs go through a real Dagster instance (DAGSTER_HOME), so everything the CLI does shows up in the
UI afterwards: runs, materializations, check results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from dagster import DagsterEventType, DagsterInstance, ExecuteInProcessResult

from recsys_resources import RecsysError


# The console logger's step-by-step events (and a failed step's traceback) would drown the one
# sentence the CLI prints; the full event log is still in the instance, for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class PartitionReport:
    partition: str
    rows_raw: int
    rows_clean: int
    rows_rejected: int
    checks_passed: int
    checks_failed: int
    checks_warned: int
    mse: dict[str, float]  # model -> the day's MSE, scored before anything trained on the day
    champion: str


def failure_sentence(result: ExecuteInProcessResult) -> str:
    """The first step failure of a run as one sentence (a Failure's description, else the error)."""
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description
            return data.error.message.strip().splitlines()[-1] if data.error else "a step failed"
    return "the run failed"


def run_job(name: str, instance: DagsterInstance, partition_key: str | None = None) -> ExecuteInProcessResult:
    from recsys_assets.definitions import defs

    job = defs.resolve_job_def(name)
    result = job.execute_in_process(
        run_config=QUIET, instance=instance, partition_key=partition_key, raise_on_error=False
    )
    if not result.success:
        where = f" for partition {partition_key}" if partition_key else ""
        raise RecsysError(f"Job {name}{where} failed: {failure_sentence(result)}")
    return result


def partition_report(result: ExecuteInProcessResult, partition: str) -> PartitionReport:
    """Row counts and check outcomes of a daily run, read back from its events."""
    metadata: dict[str, dict] = {}
    passed = failed = warned = 0
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            values = {k: v.value for k, v in materialization.metadata.items()}
            metadata[materialization.asset_key.to_user_string()] = values
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if evaluation.passed:
                passed += 1
            elif evaluation.severity.value == "WARN":
                warned += 1
            else:
                failed += 1
    lake, monitoring = metadata.get("lake_ratings", {}), metadata.get("model_metrics", {})
    return PartitionReport(
        partition=partition,
        rows_raw=int(lake.get("rows_raw", 0)),
        rows_clean=int(lake.get("rows_clean", 0)),
        rows_rejected=int(lake.get("rows_rejected", 0)),
        checks_passed=passed,
        checks_failed=failed,
        checks_warned=warned,
        mse={
            key.removeprefix("mse_"): value
            for key, value in monitoring.items()
            if key.startswith("mse_") and not key.endswith(("_with_history", "_no_history"))
        },
        champion=str(monitoring.get("champion_version", "")),
    )


def run_demo(days: int, out: TextIO) -> list[PartitionReport]:
    """Load the archive, then materialize the first `days` daily partitions, one run each."""
    from recsys_assets.partitions import daily_partitions

    instance = DagsterInstance.get()
    print("Bootstrap: loading the archive, cleaning the bootstrap slice, building its features, training the first champion ...", file=out)
    run_job("bootstrap", instance)
    reports = []
    print(
        f"{'partition':<12}{'raw':>8}{'clean':>8}{'rejected':>9}  {'checks (pass/fail/warn)':<24}"
        f"{'MSE: global mean':>17}{'bias':>8}{'champion':>10}{'warm':>8}{'full':>8}",
        file=out,
    )
    for key in daily_partitions.get_partition_keys()[:days]:
        report = partition_report(run_job("daily_pipeline", instance, partition_key=key), key)
        reports.append(report)
        mse = "".join(
            f"{report.mse[m]:>{w}.4f}" if m in report.mse else f"{'-':>{w}}"
            for m, w in (("global_mean", 17), ("bias", 8), ("champion", 10), ("warm", 8), ("full", 8))
        )
        print(
            f"{key:<12}{report.rows_raw:>8,}{report.rows_clean:>8,}{report.rows_rejected:>9,}  "
            f"{f'{report.checks_passed}/{report.checks_failed}/{report.checks_warned}':<24}{mse}",
            file=out,
        )
    return reports
