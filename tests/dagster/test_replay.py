"""`recsys replay` as a person runs it, on DuckDB and on PostgreSQL with a PostgreSQL-backed Dagster
instance: the report, an event log holding every materialization and check, one-sentence errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import run_cli as recsys

from recsys.stores import ensure_postgres_database
from recsys.writer_lock import hold_store

DAYS = 3
ARGS = ["--batch-size", "2000", "--bootstrap-rows", "6000", "--start-date", "2025-01-01"]


@pytest.fixture(scope="module")
def archive(make_archive) -> Path:
    return make_archive(6_000 + 4 * 2_000, 2)


def dagster_home(tmp_path: Path, postgres_url: str | None) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    if postgres_url:
        ensure_postgres_database(postgres_url)
        (home / "dagster.yaml").write_text(
            f"storage:\n  postgres:\n    postgres_url: {postgres_url}\ntelemetry:\n  enabled: false\n"
        )
    return home


def event_log(home: Path) -> dict[str, list]:
    """Materializations and check evaluations in the instance, read in a fresh process."""
    code = (
        "import json; from dagster import DagsterInstance, DagsterEventType, EventRecordsFilter\n"
        "i = DagsterInstance.get()\n"
        "out = {}\n"
        "for name, kind in (('materializations', DagsterEventType.ASSET_MATERIALIZATION), ('checks', DagsterEventType.ASSET_CHECK_EVALUATION)):\n"
        "    records = i.get_event_records(EventRecordsFilter(event_type=kind), limit=10000)\n"
        "    out[name] = [(r.event_log_entry.dagster_event.asset_key.to_user_string() if name == 'materializations' else r.event_log_entry.dagster_event.event_specific_data.asset_check_key.name, r.event_log_entry.dagster_event.partition) for r in records]\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "DAGSTER_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_replay_writes_the_report_and_the_event_log_holds_every_run(backend, archive, tmp_path, request):
    if backend == "postgres":
        server = request.getfixturevalue("pg_base")
        # The local server trusts every connection, so a password can be given and must not leak.
        store = server.replace("postgres@", "postgres:s3cret-pw@", 1)
        home = dagster_home(tmp_path, server.rsplit("/", 1)[0] + f"/{server.rsplit('/', 1)[1]}_dagster")
    else:
        store = str(tmp_path / "stores")
        home = dagster_home(tmp_path, None)
    report_path = tmp_path / "report.json"
    result = recsys("replay", "--data", str(archive), "--days", str(DAYS), "--store", store, "--report", str(report_path), *ARGS, home=home)
    assert result.returncode == 0, result.stderr
    assert "[   3/3] 2025-01-03" in result.stdout  # the progress display
    report = json.loads(report_path.read_text())
    assert "s3cret-pw" not in report_path.read_text() + result.stdout + result.stderr

    assert report["config"]["days"] == DAYS and report["config"]["batch_size"] == 2000
    assert [d["partition"] for d in report["days"]] == ["2025-01-01", "2025-01-02", "2025-01-03"]
    for day in report["days"]:
        assert day["rows_raw"] == day["rows_clean"] + day["rows_rejected"] == 2000
        assert day["checks"]["failed"] == 0 and day["checks"]["passed"] >= 5
        assert set(day["mse"]) == {"global_mean", "bias", "bias_event_time", "champion", "warm", "full"}
        assert day["mse"]["champion"] is not None and day["mse"]["bias"] is not None
        assert day["champion_version"]
    assert report["days"][0]["mse"]["warm"] is None  # no warm start exists before the first day
    assert report_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the MSE chart beside it
    assert all(isinstance(d["promoted"], bool) and isinstance(d["retrieval_promoted"], bool) for d in report["days"])
    # A day's own run's steps, and each job's steps over the replay, add up to the layers' time.
    assert all({"lake_ratings", "daily_features", "daily_models"} <= set(d["step_seconds"]) for d in report["days"])
    assert all(sum(d["step_seconds"].values()) <= d["seconds"] for d in report["days"])
    by_job = report["summary"]["seconds_per_job_step"]
    assert {"bootstrap", "daily_pipeline"} <= set(by_job) and "initial_model" in by_job["bootstrap"]
    assert sum(sum(steps.values()) for steps in by_job.values()) == pytest.approx(sum(report["summary"]["seconds_per_layer"].values()), abs=0.05)
    assert all(d["seconds"] > 0 for d in report["days"]) and sum(d["seconds"] for d in report["days"]) < report["summary"]["wall_seconds"]
    summary = report["summary"]
    assert summary["rows_raw"] == 3 * 2000
    assert set(summary["seconds_per_layer"]) >= {"raw", "lake", "features", "models"}
    assert summary["mean_mse"]["champion"] == pytest.approx(sum(d["mse"]["champion"] for d in report["days"]) / DAYS)
    # RMSE pooled over every scored rating: the days' MSEs weighted by their clean rows.
    pooled = summary["rmse_by_segment"]["all"]["champion"]
    rows = [d["rows_clean"] for d in report["days"]]
    assert pooled["rows"] == sum(rows)
    assert pooled["rmse"] ** 2 == pytest.approx(sum(r * d["mse"]["champion"] for r, d in zip(rows, report["days"])) / sum(rows))
    assert {"served", "two_stage", "retrieval", "popularity"} <= set(summary["catalog_ranking_by_segment"]["all"])

    log = event_log(home)
    daily = {(asset, partition) for asset, partition in log["materializations"] if partition}
    for partition in ("2025-01-01", "2025-01-02", "2025-01-03"):
        for asset in ("lake_ratings", "training_examples", "user_genre_profiles", "model_metrics", "warm_model"):
            assert (asset, partition) in daily
    checks_in_report = sum(d["checks"]["passed"] + d["checks"]["failed"] + d["checks"]["warned"] for d in report["days"])
    daily_checks = [c for c in log["checks"] if c[0] not in ("lake_movies_schema", "lake_movies_values", "lake_movies_quality", "movie_features_values")]
    assert len(daily_checks) >= checks_in_report


def test_replay_bad_input_ends_with_one_sentence(archive, tmp_path):
    home = dagster_home(tmp_path, None)

    def error(*args: str) -> str:
        result = recsys("replay", "--report", str(tmp_path / "r.json"), *ARGS, *args, home=home)
        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        return lines[0]

    missing = tmp_path / "nowhere"
    assert error("--data", str(missing), "--days", "1", "--store", str(tmp_path / "s")) == (
        f"recsys: The data directory {missing} does not exist."
    )
    assert error("--data", str(archive), "--days", "9", "--store", str(tmp_path / "s")) == (
        f"recsys: The archive in {archive} holds 4 daily batches of 2,000 rows after the bootstrap slice; 9 days is more than that."
    )
    unreachable = error("--data", str(archive), "--days", "1", "--store", f"postgresql://postgres@127.0.0.1:1/r{uuid.uuid4().hex[:6]}")
    assert unreachable.startswith("recsys: Cannot create PostgreSQL database") and "127.0.0.1:1" in unreachable
    # A store another process is writing is refused before anything is touched.
    busy = tmp_path / "busy"
    with hold_store(str(busy / "raw.duckdb")):
        assert error("--data", str(archive), "--days", "1", "--store", str(busy)).startswith(
            f"recsys: Store {busy} is in use by process {os.getpid()} since "
        )
    assert not (busy / "raw.duckdb").exists()


def test_starting_one_store_over_leaves_another_stores_artifacts_alone(pg_base, tmp_path, monkeypatch):
    from dagster import DagsterInstance

    from recsys.cli.replay import _start_empty
    from recsys.settings import Settings

    monkeypatch.chdir(tmp_path)  # both stores' artifact folders are under .recsys/models here
    ours, theirs = Settings.for_store(pg_base), Settings.for_store(pg_base + "_other")
    for settings in (ours, theirs):
        Path(settings.model_dir).mkdir(parents=True)
        (Path(settings.model_dir) / "full-bootstrap.keras").write_bytes(b"a model")
    with DagsterInstance.ephemeral() as instance:
        _start_empty(ours, instance)
    assert not Path(ours.model_dir).exists()
    assert (Path(theirs.model_dir) / "full-bootstrap.keras").read_bytes() == b"a model"


def test_each_drift_kind_raises_its_alarm_on_its_day_and_a_persisting_one_triggers_a_recorded_retrain(tmp_path):
    from recsys.cli.main import parse_drift
    from recsys.sources import synthetic
    from recsys.stores import open_store

    data, ratings = tmp_path / "drift", 6_000 + 8 * 2_000
    # After 6,000 bootstrap rows and 2,000 a day: Comedy rated 1.5 stars lower from day 2, new
    # users making half the ratings from day 4, new movies getting 30% from day 6.
    drift = [parse_drift(spec, ratings, 2_000, 6_000) for spec in ("2:genre_appeal", "4:new_population", "6:catalog_growth")]
    # Without sessions: in an archive this small, with sessions most of every day's ratings are
    # arriving users' first sessions already, so a new population could not change their share.
    synthetic.generate(data, ratings, seed=5, drift=drift, **synthetic.INDEPENDENT_PARAMS)
    home, report_path = dagster_home(tmp_path, None), tmp_path / "report.json"
    result = recsys("replay", "--data", str(data), "--store", str(tmp_path / "stores"), "--report", str(report_path), *ARGS, home=home)
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    with open_store(str(tmp_path / "stores" / "features.duckdb"), read_only=True) as features:
        alarms = features.query("SELECT batch, check_name, statistic FROM drift_metrics WHERE alarm ORDER BY batch")
        triggers = features.query("SELECT partition_key, version, reason FROM retrain_triggers ORDER BY batch")
        versions = features.query("SELECT version, last_batch FROM model_versions WHERE stage = 'rating' AND kind = 'full'")
    first_alarm = {
        statistic: alarms.filter(alarms["statistic"] == statistic)["batch"].min()
        for statistic in ("genre_mean_shift", "new_users_share_change", "new_movies_share_change")
    }
    assert first_alarm == {"genre_mean_shift": 2, "new_users_share_change": 4, "new_movies_share_change": 6}
    data_alarms = alarms.filter(alarms["check_name"] != "champion_mse_not_degraded")
    assert data_alarms["batch"].min() == 2  # the stable days raised none
    # Two days of alarms: the first full retrain ran after day 3, through it, and the registry says why.
    triggered = {d["partition"]: d["retrain_triggered"] for d in report["days"] if d["retrain_triggered"]}
    first = triggers.row(0, named=True)
    assert first["partition_key"] == "2025-01-04" and "genre_drift.genre_mean_shift" in first["reason"]
    assert triggered["2025-01-04"] == first["reason"] and set(triggered) == set(triggers["partition_key"])
    assert versions.filter(versions["version"] == first["version"])["last_batch"].to_list() == [3]
    # The triggered model is a candidate like any other: the next day's gate judged it.
    assert report["days"][4]["mse"]["full"] is not None
