"""Running the platform's jobs through Dagster from the command line.

Runs go through a real Dagster instance (DAGSTER_HOME), so everything the CLI does shows up in the
UI afterwards: runs, materializations, check results.
"""

from __future__ import annotations

from dagster import DagsterEventType, DagsterInstance, ExecuteInProcessResult

from recsys_resources import RecsysError


# The console logger's step-by-step events (and a failed step's traceback) would drown the one
# sentence the CLI prints; the full event log is still in the instance, for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def failure_sentence(result: ExecuteInProcessResult) -> str:
    """The first step failure of a run as one sentence (a Failure's description, else the error)."""
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description
            return data.error.message.strip().splitlines()[-1] if data.error else "a step failed"
    return "the run failed"


RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def run_job(
    name: str, instance: DagsterInstance, partition_key: str | None = None, last_partition_key: str | None = None
) -> ExecuteInProcessResult:
    """Run a job of the definitions in `instance`: one partition, or a range in one run."""
    from recsys_assets.definitions import defs

    ranged = last_partition_key is not None and last_partition_key != partition_key
    result = defs.resolve_job_def(name).execute_in_process(
        run_config=QUIET,
        instance=instance,
        partition_key=None if ranged else partition_key,
        tags={RANGE_START: partition_key, RANGE_END: last_partition_key} if ranged else None,
        raise_on_error=False,
    )
    if not result.success:
        where = f" for partition {partition_key}" + (f"..{last_partition_key}" if ranged else "") if partition_key else ""
        raise RecsysError(f"Job {name}{where} failed: {failure_sentence(result)}")
    return result
