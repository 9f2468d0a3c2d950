"""What advances the replay on its own: a schedule that runs the next archive day at each tick, a
sensor that retrains once a week's days are all done, and one that retrains when drift persists.

"Done" is what the Dagster instance records: a day is done once its daily run materialized
`batch_recommendations`, the pipeline's last asset; a week once `full_model` has its partition.
So days run from the UI, a backfill or `recsys replay` count the same as the schedule's, a finished
archive stops asking, and a day that failed is asked for again at the next tick (a failed retrain
is not: its week is re-run from the UI once the cause is fixed).
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)

from recsys.calendar import Calendar
from recsys.errors import RecsysError
from recsys.models.triggers import retrain_decision
from recsys_resources import MonitoringResource, StoreResource

LAST_DAILY_ASSET = AssetKey("batch_recommendations")
WEEKLY_ASSET = AssetKey("full_model")
SCORED_ASSET = AssetKey("model_metrics")


def _done_days(instance) -> set[str]:
    return set(instance.get_materialized_partitions(LAST_DAILY_ASSET))


def _busy(instance, job_name: str) -> bool:
    """Whether a run of the job is queued or running: the next day waits for it."""
    active = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    return bool(instance.get_run_ids(RunsFilter(job_name=job_name, statuses=active), limit=1))


def next_day_schedule(job: JobDefinition, calendar: Calendar, cron: str) -> ScheduleDefinition:
    @schedule(
        job=job,
        cron_schedule=cron,
        name="replay_next_day",
        description=f"At each tick ({cron}) runs the daily pipeline for the first archive day not done yet; "
        "skips while a day is still running and once the archive is finished.",
    )
    def replay_next_day(context: ScheduleEvaluationContext):
        if _busy(context.instance, job.name):
            return SkipReason("A day of the daily pipeline is still queued or running.")
        today = (context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)).date()
        key = calendar.next_day(_done_days(context.instance), today)
        if key is None:
            return SkipReason("Every day of the archive is done: nothing left to replay.")
        # One request per attempt: a tick that finds the day still not done (its run failed) asks again.
        return RunRequest(partition_key=key, run_key=f"{key}@{context.scheduled_execution_time or today}")

    return replay_next_day


def completed_week_sensor(job: JobDefinition, calendar: Calendar) -> SensorDefinition:
    @sensor(
        job=job,
        name="retrain_completed_week",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Runs the weekly full retrain of a week as soon as its seven days are done.",
    )
    def retrain_completed_week(context: SensorEvaluationContext):
        retrained = set(context.instance.get_materialized_partitions(WEEKLY_ASSET))
        week = calendar.next_week(_done_days(context.instance), retrained, dt.date.today())
        if week is None:
            return SkipReason("No completed week is waiting for its retrain.")
        return RunRequest(partition_key=week, run_key=week)

    return retrain_completed_week


def drift_retrain_sensor(job: JobDefinition, calendar: Calendar) -> SensorDefinition:
    @sensor(
        job=job,
        name="retrain_on_drift",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="After each scored day, asks recsys.models.triggers whether drift or degradation alarms have "
        "persisted (MonitoringResource: persist_days, cooldown_days) and if so runs a full retrain through that day.",
    )
    def retrain_on_drift(context: SensorEvaluationContext, features_store: StoreResource, monitoring: MonitoringResource):
        scored = context.instance.get_materialized_partitions(SCORED_ASSET)
        if not scored:
            return SkipReason("No day has been scored yet.")
        day = max(scored, key=calendar.batch_of)
        if context.cursor == day:
            return SkipReason(f"{day} was judged already.")
        try:
            with features_store.read() as features:
                decision = retrain_decision(features, calendar.batch_of(day), monitoring.policy())
        except RecsysError as error:  # e.g. a run holds the DuckDB file: judge at the next evaluation
            return SkipReason(f"The feature store cannot be read now: {error}")
        context.update_cursor(day)
        if not decision.retrain:
            return SkipReason(f"{day}: {decision.reason}.")
        return RunRequest(partition_key=day, run_key=f"drift-{day}", tags={"recsys/retrain_trigger": decision.reason[:250]})

    return retrain_on_drift
