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
    assert checks == {"lake_ratings_schema", "lake_ratings_values", "lake_ratings_volume", "freshness_check"}
    # The suites' checks are partitioned like their asset, so each result names its day.
    daily = graph.get(AssetKey("lake_ratings")).partitions_def
    assert daily is not None
    specs = {spec.name: spec for spec in defs().get_assets_def("lake_ratings").check_specs}
    assert all(specs[name].partitions_def == daily for name in checks - {"freshness_check"})
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


def test_the_schedule_runs_the_next_day_not_done_and_the_sensor_the_completed_week(tmp_path):
    import datetime as dt

    from dagster import AssetMaterialization, build_schedule_context, build_sensor_context, instance_for_test

    settings = Settings.for_store(str(tmp_path), start_date=dt.date(2025, 1, 1), archive_days=9, schedule_cron="*/5 * * * *")
    built = build_definitions(settings)
    daily = built.resolve_schedule_def("replay_next_day")
    weekly = built.resolve_sensor_def("retrain_completed_week")
    assert daily.cron_schedule == "*/5 * * * *"
    # The calendar is the archive's: 9 days, one complete week.
    graph = built.resolve_asset_graph()
    assert graph.get(AssetKey("lake_ratings")).partitions_def.get_partition_keys()[-1] == "2025-01-09"
    assert graph.get(AssetKey("full_model")).partitions_def.get_partition_keys() == ["2025-01-01"]

    tick = dt.datetime(2026, 6, 1, 2, tzinfo=dt.timezone.utc)  # long after the archive's days
    repository = built.get_repository_def()

    def next_day() -> list[str]:
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=repository)
        return [r.partition_key for r in daily.evaluate_tick(context).run_requests or []]

    def next_week() -> list[str]:
        return [r.partition_key for r in weekly.evaluate_tick(build_sensor_context(instance=instance, repository_def=repository)).run_requests or []]

    def done(asset: str, *keys: str) -> None:
        for key in keys:
            instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=key))

    with instance_for_test() as instance:  # the schedule and sensor read it by reference, as the daemon's do
        assert next_day() == ["2025-01-01"] and next_week() == []
        done("batch_recommendations", *(f"2025-01-0{d}" for d in range(1, 7)))
        assert next_day() == ["2025-01-07"] and next_week() == []  # the week is not complete yet
        done("batch_recommendations", "2025-01-07")
        assert next_day() == ["2025-01-08"] and next_week() == ["2025-01-01"]
        done("full_model", "2025-01-01")
        done("batch_recommendations", "2025-01-08", "2025-01-09")
        assert next_day() == [] and next_week() == []  # the archive is finished: nothing to ask for


def test_the_calendar_comes_from_the_settings_value_not_the_environment(tmp_path, monkeypatch):
    import datetime as dt

    monkeypatch.setenv("RECSYS_START_DATE", "2030-01-01")  # ignored: the settings value decides
    built = build_definitions(Settings.for_store(str(tmp_path), start_date=dt.date(2025, 1, 6)))
    graph = built.resolve_asset_graph()
    assert graph.get(AssetKey("lake_ratings")).partitions_def.get_first_partition_key() == "2025-01-06"
    assert graph.get(AssetKey("full_model")).partitions_def.get_first_partition_key() == "2025-01-06"


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


def test_the_calendar_is_the_archives_from_its_files_then_from_the_raw_store(tmp_path, make_archive):
    import datetime as dt

    from asset_replay import AssetReplay

    from recsys_assets.definitions import settings_with_archive_calendar

    archive = make_archive(6_000 + 5 * 2_000, 3)
    # The environment's batching (here 4,000 rows a day after a 6,000-row bootstrap) cuts the
    # files before any load; there is no archive at all: open-ended, as a live source would be.
    settings = Settings.for_store(str(tmp_path / "stores"), data_dir=str(archive), batch_size=4_000, bootstrap_rows=6_000)
    assert settings_with_archive_calendar(settings).calendar.days == 3
    assert not (tmp_path / "stores" / "raw.duckdb").exists()  # looking did not create a store
    nowhere = Settings.for_store(str(tmp_path / "none"), data_dir=str(tmp_path / "no-archive"))
    assert settings_with_archive_calendar(nowhere).calendar.days is None
    # Once loaded, the raw store's own cut (2,000 rows a day) is the calendar, whatever the settings say.
    AssetReplay(tmp_path / "stores", archive, tmp_path / "models", batch=2_000, bootstrap=6_000).run(["raw_movies", "raw_ratings"])
    loaded = settings_with_archive_calendar(settings)
    assert loaded.calendar.days == 5
    keys = build_definitions(loaded).resolve_asset_graph().get(AssetKey("lake_ratings")).partitions_def.get_partition_keys()
    assert keys == [(loaded.start_date + dt.timedelta(days=d)).isoformat() for d in range(5)]


def test_the_drift_sensor_requests_a_retrain_of_the_day_whose_alarms_persisted(tmp_path):
    import datetime as dt

    from dagster import AssetMaterialization, build_sensor_context, instance_for_test

    from recsys.stores import open_store
    from recsys_resources import MonitoringResource, StoreResource

    settings = Settings.for_store(str(tmp_path), start_date=dt.date(2025, 1, 1), archive_days=5)
    built = build_definitions(settings)
    sensor = built.resolve_sensor_def("retrain_on_drift")
    with open_store(settings.features_url) as features:
        features.apply_schema("features")
        features.insert("drift_metrics", pl.DataFrame(
            [{"partition_key": f"2025-01-0{b + 1}", "batch": b, "check_name": "genre_drift", "statistic": "genre_mean_shift",
              "value": 1.4 if b >= 1 else 0.1, "threshold": 0.35, "alarm": b >= 1, "reference": "w", "contributors": "[]"} for b in range(3)],
            schema_overrides={"batch": pl.Int32},
        ))  # fmt: skip
    resources = {"features_store": StoreResource(url=settings.features_url, schema_name="features"), "monitoring": MonitoringResource()}
    with instance_for_test() as instance:

        def evaluate(cursor=None):
            context = build_sensor_context(instance=instance, repository_def=built.get_repository_def(), resources=resources, cursor=cursor)
            return sensor.evaluate_tick(context)

        assert evaluate().skip_message == "No day has been scored yet."
        for day in ("2025-01-01", "2025-01-02"):
            instance.report_runless_asset_event(AssetMaterialization(asset_key="model_metrics", partition=day))
        assert "no alarm on 1 of the last 2 days" in evaluate().skip_message  # one day of alarms is not a trend
        instance.report_runless_asset_event(AssetMaterialization(asset_key="model_metrics", partition="2025-01-03"))
        tick = evaluate()
        (request,) = tick.run_requests
        assert request.partition_key == "2025-01-03" and tick.cursor == "2025-01-03"
        assert "genre_drift.genre_mean_shift" in request.tags["recsys/retrain_trigger"]
        assert "judged already" in evaluate(cursor="2025-01-03").skip_message  # one request per day
