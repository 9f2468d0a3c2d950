"""Running the platform's jobs through Dagster, in process, from the command line.

Runs go through a real Dagster instance (DAGSTER_HOME), so everything the CLI does shows up in the
UI afterwards: runs, materializations, check results.
"""

from __future__ import annotations

from dagster import DagsterInstance, Definitions, ExecuteInProcessResult

from recsys.errors import RecsysError
from recsys_assets.failures import failure_sentence

# The console logger's step-by-step events (and a failed step's traceback) would drown the one
# sentence the CLI prints; the full event log is still in the instance, for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def run_job(
    defs: Definitions,
    name: str,
    instance: DagsterInstance,
    partition_key: str | None = None,
    last_partition_key: str | None = None,
    op_config: dict | None = None,
) -> ExecuteInProcessResult:
    """Run a job of `defs` in `instance`: one partition, or a range in one run; `op_config` maps a
    step (an asset's name) to its config."""
    ranged = last_partition_key is not None and last_partition_key != partition_key
    ops = {"ops": {step: {"config": config} for step, config in op_config.items()}} if op_config else {}
    result = defs.resolve_job_def(name).execute_in_process(
        run_config={**QUIET, **ops},
        instance=instance,
        partition_key=None if ranged else partition_key,
        tags={RANGE_START: partition_key, RANGE_END: last_partition_key} if ranged else None,
        raise_on_error=False,
    )
    if not result.success:
        where = f" for partition {partition_key}" + (f"..{last_partition_key}" if ranged else "") if partition_key else ""
        raise RecsysError(f"Job {name}{where} failed: {failure_sentence(result)}")
    return result
