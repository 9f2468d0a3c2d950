"""The Dagster definitions load and validate, and error-level checks really block downstream."""

from __future__ import annotations

import os
import subprocess
import sys

import polars as pl
from dagster import AssetKey, DagsterInstance, MaterializeResult, asset, materialize

from recsys.lake import suites as lake_suites
from recsys.lake.cleaning import CLEAN_RATINGS_SCHEMA
from recsys.quality.gx import validate_all
from recsys.settings import Settings
from recsys_assets.checks import check_results, check_specs
from recsys_assets.definitions import build_definitions, defs


def test_definitions_validate_with_dagsters_own_cli(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "recsys_assets.definitions"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_assets_are_grouped_by_layer_and_checked():
    graph = defs().resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups["raw_ratings"] == "raw" and groups["lake_ratings"] == "lake"
    checks = {key.name for key in graph.asset_check_keys if key.asset_key == AssetKey("lake_ratings")}
    assert checks == {"lake_ratings_schema", "lake_ratings_values", "lake_ratings_volume"}
    assert graph.get(AssetKey("lake_ratings")).partitions_def is not None
    assert {job.name for job in defs().resolve_all_job_defs()} >= {"bootstrap", "daily_pipeline", "weekly_retrain"}


def test_error_suites_are_blocking_and_warn_suites_are_not():
    specs = {spec.name: spec for spec in check_specs("lake_ratings", lake_suites.lake_ratings_suite_specs())}
    assert specs["lake_ratings_values"].blocking and specs["lake_ratings_schema"].blocking
    assert not specs["lake_ratings_volume"].blocking


def test_a_failed_error_check_stops_the_assets_downstream():
    """A real GX failure, through our check glue, keeps Dagster from running the next asset."""
    bad_batch = pl.DataFrame(
        {"batch": [0], "seq": [1], "user_id": [1], "movie_id": [1], "rating": [7.0], "timestamp": [900000000]},
        schema=CLEAN_RATINGS_SCHEMA,
    )
    suites = [s for s in lake_suites.lake_ratings_suites(batch_size=10, max_timestamp=2_000_000_000) if s.frame == "ratings"]

    @asset(check_specs=check_specs("upstream", suites))
    def upstream():
        return MaterializeResult(check_results=check_results("upstream", {"p": validate_all(bad_batch, suites)}))

    ran = []

    @asset(deps=[upstream])
    def downstream():
        ran.append(True)

    result = materialize([upstream, downstream], instance=DagsterInstance.ephemeral(), raise_on_error=False)
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"lake_ratings_values"}
    assert ran == []


def test_schedules_run_the_day_and_the_week_that_just_ended(tmp_path):
    import datetime as dt

    from dagster import build_schedule_context

    built = build_definitions(Settings.for_store(str(tmp_path), start_date=dt.date(2025, 1, 1)))
    daily = built.resolve_schedule_def("daily_pipeline_schedule")
    weekly = built.resolve_schedule_def("weekly_retrain_schedule")
    # Weeks start on the replay's start weekday (2025-01-01, a Wednesday), so the retrain of the
    # week that ended on Tuesday runs on Wednesday, after that night's daily run (02:00).
    assert (daily.cron_schedule, weekly.cron_schedule) == ("0 2 * * *", "0 4 * * 3")
    with DagsterInstance.ephemeral() as instance:
        tick = dt.datetime(2025, 1, 15, 2, tzinfo=dt.timezone.utc)
        requests = daily.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=tick)).run_requests
        assert [r.partition_key for r in requests] == ["2025-01-14"]
        tick = dt.datetime(2025, 1, 15, 4, tzinfo=dt.timezone.utc)
        requests = weekly.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=tick)).run_requests
        assert [r.partition_key for r in requests] == ["2025-01-08"]


def test_the_calendar_comes_from_the_settings_value_not_the_environment(tmp_path, monkeypatch):
    import datetime as dt

    monkeypatch.setenv("RECSYS_START_DATE", "2030-01-01")  # ignored: the settings value decides
    built = build_definitions(Settings.for_store(str(tmp_path), start_date=dt.date(2025, 1, 6)))
    graph = built.resolve_asset_graph()
    assert graph.get(AssetKey("lake_ratings")).partitions_def.get_first_partition_key() == "2025-01-06"
    assert graph.get(AssetKey("full_model")).partitions_def.get_first_partition_key() == "2025-01-06"
    # 2025-01-06 is a Monday: weeks start on Mondays, so the weekly retrain runs on Mondays.
    assert built.resolve_schedule_def("weekly_retrain_schedule").cron_schedule == "0 4 * * 1"


def test_a_store_password_from_the_environment_never_reaches_dagsters_config(pg_base, monkeypatch):
    url = pg_base.replace("postgres@", "postgres:s3cret-pw@", 1)  # the local server trusts any password
    monkeypatch.setenv("RECSYS_STORE", url)
    resources = build_definitions(Settings.from_env()).resources
    stores = {name: resources[name] for name in ("raw_store", "lake_store", "features_store")}
    assert all("s3cret-pw" not in repr(resource) for resource in stores.values())
    # At run time Dagster resolves the variable, and each store opens its own database.
    for name, resource in stores.items():
        with resource.process_config_and_initialize().open() as store:
            assert store.scalar("SELECT current_database()") == f"{pg_base.rsplit('/', 1)[1]}_{name.removesuffix('_store')}"
