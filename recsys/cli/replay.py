"""Replaying an archive through Dagster: the bootstrap, N daily partitions, the weekly retrains.

Every step is a real run of the platform's jobs in a real Dagster instance (DAGSTER_HOME), so the
UI shows afterwards exactly what a scheduled deployment would have done. Days run one run per
partition by default (each partition's metadata and checks are its own, as the schedule makes
them); `range_runs` replays each week's days in one run instead, the single-run backfill policy,
which saves Dagster's per-run start-up. A week's full retrain runs once its last day is done.

The definitions are built from the replay's own settings, so a replay needs nothing in the
environment but where its Dagster instance lives.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import fmean
from typing import Callable

import polars as pl
from dagster import (
    DagsterEventType,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
)

from recsys.errors import RecsysError
from recsys.models.daily import MSE_MODELS
from recsys.models.monitoring import CHART_MODELS, promoted_batches
from recsys.models.triggers import RetrainPolicy, retrain_decision
from recsys.raw.load import archive_file_days
from recsys.reporting import mse_chart_png
from recsys.settings import Settings
from recsys.stores import ensure_postgres_database, is_postgres_url, open_store, redact
from recsys.writer_lock import hold_store
from recsys_assets.definitions import build_definitions
from recsys_assets.runs import run_job

# Which layer each step's time counts toward in the report.
LAYER_OF_STEP = {
    "raw_movies": "raw", "raw_ratings": "raw",
    "lake_movies": "lake", "lake_bootstrap": "lake", "lake_ratings": "lake",
    "movie_features": "features", "bootstrap_features": "features", "daily_features": "features",
    "initial_model": "models", "daily_models": "models", "full_model": "models", "triggered_model": "models",
    "champion_embeddings": "serving", "popular_movies": "serving", "batch_recommendations": "serving",
}  # fmt: skip


@dataclass
class ReplayConfig:
    data: str
    days: int | None  # None: every day of the archive
    batch_size: int
    bootstrap_rows: int | None
    start_date: str
    store: str
    seed: int
    range_runs: bool = False
    resume: bool = False
    feature_time: str = "event"
    drift_retrain: bool = True  # apply the drift retrain trigger after each day, as the sensor does


@dataclass
class ReplayRuns:
    """The Dagster runs of one replay, and what they took per layer."""

    config: ReplayConfig
    defs: Definitions
    instance: DagsterInstance
    settings: Settings
    layer_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    checks: dict[str, dict[str, int]] = field(default_factory=dict)
    runs: int = 0
    run_seconds: float = 0.0
    triggers: dict[str, str] = field(default_factory=dict)  # partition -> why a full retrain was triggered
    day_seconds: dict[str, float] = field(default_factory=dict)  # partition -> wall seconds of its runs
    # job -> step -> seconds over the replay, and partition -> step -> seconds of one-day daily runs
    job_steps: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    day_steps: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))

    def run(
        self, job: str, partition: str | None = None, last: str | None = None, op_config: dict | None = None
    ) -> ExecuteInProcessResult:
        started = time.perf_counter()
        result = run_job(self.defs, job, self.instance, partition, last, op_config)
        self.runs += 1
        self.run_seconds += time.perf_counter() - started
        for event in result.all_events:
            if event.event_type == DagsterEventType.STEP_SUCCESS:
                step, seconds = event.step_key, event.event_specific_data.duration_ms / 1000
                self.layer_seconds[LAYER_OF_STEP.get(step, "other")] += seconds
                self.job_steps[job][step] += seconds
                if job == "daily_pipeline" and last in (None, partition):
                    self.day_steps[partition][step] += seconds
        return result

    def count_checks(self, result: ExecuteInProcessResult, partitions: list[str]) -> None:
        counts = {"passed": 0, "failed": 0, "warned": 0}
        for evaluation in result.get_asset_check_evaluations():
            if evaluation.passed:
                counts["passed"] += 1
            elif evaluation.severity.value == "WARN":
                counts["warned"] += 1
            else:
                counts["failed"] += 1
        for partition in partitions:
            self.checks[partition] = counts


def _start_empty(settings: Settings, instance: DagsterInstance) -> None:
    """Empty stores, model artifacts and Dagster instance, for a replay that does not resume."""
    for url in (settings.raw_url, settings.lake_url, settings.features_url):
        if is_postgres_url(url):
            with open_store(url) as store:
                store.execute("DROP SCHEMA public CASCADE")
                store.execute("CREATE SCHEMA public")
        else:
            for path in (Path(url), Path(f"{url}.wal")):
                path.unlink(missing_ok=True)
    shutil.rmtree(settings.model_dir, ignore_errors=True)
    instance.wipe()


def replay(
    config: ReplayConfig, settings: Settings, dagster_home: Path, progress: Callable[[str], None] = print
) -> dict:
    """Run the replay and return its report (see README: `config`, `days`, `summary`)."""
    if not Path(config.data).exists():
        raise RecsysError(f"The data directory {config.data} does not exist.")
    for url in settings.urls.values():
        if is_postgres_url(url):
            ensure_postgres_database(url)
    available = archive_file_days(Path(config.data), config.batch_size, config.bootstrap_rows)
    # The calendar is the archive's: the UI lists every day it holds, replayed or not.
    settings = replace(settings, archive_days=available)
    config = replace(config, days=available if config.days is None else config.days)
    if config.days > available:
        raise RecsysError(
            f"The archive in {config.data} holds {available} daily batches of {config.batch_size:,} rows after "
            f"the bootstrap slice; {config.days} days is more than that."
        )
    with hold_store(settings.raw_url):
        return _run(config, settings, dagster_home, progress)


def _run(config: ReplayConfig, settings: Settings, dagster_home: Path, progress: Callable[[str], None]) -> dict:
    """The replay's runs, with the store held: bootstrap, days, weekly retrains, then the report."""
    calendar = settings.calendar
    instance = DagsterInstance.from_config(str(dagster_home))
    if not config.resume:
        _start_empty(settings, instance)
    state = ReplayRuns(config=config, defs=build_definitions(settings), instance=instance, settings=settings)
    started = time.perf_counter()

    progress(f"bootstrap: loading {config.data} and training the first champion ...")
    state.count_checks(state.run("bootstrap", op_config={"bootstrap_features": {"feature_time": config.feature_time}}), ["bootstrap"])
    progress(f"bootstrap done in {time.perf_counter() - started:.1f} s")

    day = 0
    while day < config.days:
        # A run covers one day, or with range runs the rest of the day's week (never past --days).
        last = min(day + (6 - day % 7 if config.range_runs else 0), config.days - 1)
        first_key, last_key = calendar.partition_of(day), calendar.partition_of(last)
        run_started = time.perf_counter()
        result = state.run("daily_pipeline", first_key, last_key)
        state.count_checks(result, [calendar.partition_of(d) for d in range(day, last + 1)])
        if config.drift_retrain:
            # What the retrain_on_drift sensor does after each scored day, by the same rule.
            with open_store(settings.features_url, read_only=True) as features:
                decision = retrain_decision(features, last, RetrainPolicy())
            if decision.retrain:
                state.run("drift_retrain", last_key)
                state.triggers[last_key] = decision.reason
                progress(f"{last_key}: full retrain triggered ({decision.reason})")
        if last % 7 == 6:
            state.run("weekly_retrain", calendar.week_key(calendar.week_of(last)))
        # Each day's share of the wall time its runs took (a range run's time split evenly).
        for d in range(day, last + 1):
            state.day_seconds[calendar.partition_of(d)] = (time.perf_counter() - run_started) / (last - day + 1)
        elapsed = time.perf_counter() - started
        done = last + 1
        eta = elapsed / done * (config.days - done)
        progress(f"[{done:>4}/{config.days}] {last_key}  {elapsed:7.1f} s elapsed, about {eta:.0f} s to go")
        day = last + 1

    report = build_report(config, state, time.perf_counter() - started)
    return report


def build_report(config: ReplayConfig, state: ReplayRuns, seconds: float) -> dict:
    """Per-day rows, check counts and MSEs, read back from the stores the replay wrote."""
    with open_store(state.settings.lake_url) as lake, open_store(state.settings.features_url) as features:
        batches = lake.query("SELECT batch, rows_raw, rows_clean, rows_rejected FROM lake_batches WHERE batch >= 0")
        metrics = features.query("SELECT batch, model, version, mse FROM model_metrics WHERE segment = 'all'")
        promoted = promoted_batches(features)
        retrieval_promoted = promoted_batches(features, "ndcg_at_10")
        # RMSE over every scored rating of the replay's days, per model and segment.
        pooled = features.query(
            "SELECT model, segment, sqrt(sum(rows * mse) / sum(rows)) AS rmse, sum(rows) AS rows FROM model_metrics "
            "WHERE batch >= 0 AND batch < $days GROUP BY model, segment",
            {"days": config.days},
        )
        segment_ranks = features.query(
            "SELECT model, segment, avg(ndcg_at_10) AS ndcg_at_10, avg(recall_at_10) AS recall_at_10, sum(users) AS user_days "
            "FROM ranking_metrics WHERE protocol = 'catalog' AND batch >= 0 AND batch < $days GROUP BY model, segment",
            {"days": config.days},
        )
        ranks = features.query(
            "SELECT protocol, model, avg(ndcg_at_10) AS ndcg_at_10, avg(recall_at_10) AS recall_at_10, count(*) AS days "
            "FROM ranking_metrics WHERE segment = 'all' AND batch >= 0 AND batch < $days GROUP BY protocol, model",
            {"days": config.days},
        )
    by_batch = {row["batch"]: row for row in batches.iter_rows(named=True)}
    mse: dict[int, dict[str, float]] = defaultdict(dict)
    champion: dict[int, str] = {}
    for row in metrics.iter_rows(named=True):
        mse[row["batch"]][row["model"]] = row["mse"]
        if row["model"] == "champion":
            champion[row["batch"]] = row["version"]
    days = []
    for batch in range(config.days):
        key = state.settings.calendar.partition_of(batch)
        counts = by_batch.get(batch, {})
        days.append(
            {
                "partition": key,
                "rows_raw": counts.get("rows_raw"),
                "rows_clean": counts.get("rows_clean"),
                "rows_rejected": counts.get("rows_rejected"),
                "checks": state.checks.get(key, {"passed": 0, "failed": 0, "warned": 0}),
                "mse": {name: mse[batch].get(name) for name in MSE_MODELS},
                "champion_version": champion.get(batch),
                # The day's promotion gate put a new rating champion in service (from the next day on).
                "promoted": batch in promoted,
                "retrieval_promoted": batch in retrieval_promoted,
                # Why a full retrain ran after the day outside the weekly calendar (None: it did not).
                "retrain_triggered": state.triggers.get(key),
                # Wall seconds of the day's runs: the daily pipeline, and a triggered or weekly retrain after it.
                "seconds": round(state.day_seconds.get(key, 0.0), 2),
                # Seconds of each step of the day's own daily run (empty with range runs).
                "step_seconds": {step: round(v, 2) for step, v in sorted(state.day_steps.get(key, {}).items())},
            }
        )
    means = {
        name: (fmean(values) if (values := [d["mse"][name] for d in days if d["mse"][name] is not None]) else None)
        for name in MSE_MODELS
    }
    rows = sum(d["rows_raw"] or 0 for d in days)
    return {
        # The store URL may hold a password: the report is a file people pass around.
        "config": {**config.__dict__, "store": redact(config.store)},
        "days": days,
        "summary": {
            "days": len(days),
            "rows_raw": rows,
            "rows_clean": sum(d["rows_clean"] or 0 for d in days),
            "rows_rejected": sum(d["rows_rejected"] or 0 for d in days),
            "checks": {k: sum(d["checks"][k] for d in days) for k in ("passed", "failed", "warned")},
            "mean_mse": means,
            # Test-then-train ranking (relevant = rated >= 4 on the day), averaged over the days.
            "mean_ranking": {
                protocol: {
                    r["model"]: {"ndcg_at_10": r["ndcg_at_10"], "recall_at_10": r["recall_at_10"]}
                    for r in ranks.filter(pl.col("protocol") == protocol).iter_rows(named=True)
                }
                for protocol in ("catalog", "rated")
            },
            "rmse_by_segment": {
                segment: {r["model"]: {"rmse": r["rmse"], "rows": int(r["rows"])} for r in pooled.filter(pl.col("segment") == segment).iter_rows(named=True)}
                for segment in ("all", "with_history", "no_history")
            },
            # Catalog protocol per segment: users with and without a rating before the day.
            "catalog_ranking_by_segment": {
                segment: {
                    r["model"]: {"ndcg_at_10": r["ndcg_at_10"], "recall_at_10": r["recall_at_10"], "user_days": int(r["user_days"])}
                    for r in segment_ranks.filter(pl.col("segment") == segment).iter_rows(named=True)
                }
                for segment in ("all", "with_history", "no_history")
            },
            "seconds_per_layer": {k: round(v, 2) for k, v in sorted(state.layer_seconds.items())},
            "seconds_per_job_step": {
                job: {step: round(v, 2) for step, v in sorted(steps.items())} for job, steps in sorted(state.job_steps.items())
            },
            "runs": state.runs,
            "run_seconds": round(state.run_seconds, 2),
            "wall_seconds": round(seconds, 2),
            "rows_per_second": round(rows / seconds) if seconds else None,
        },
    }


def write_report(report: dict, path: Path) -> Path:
    """The report as JSON, and beside it (same name, .png) the chart of each day's MSE: the
    champion against the baselines, promotions marked. Returns the chart's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    history = pl.DataFrame(
        [{"partition_key": d["partition"], **{m: d["mse"].get(m) for m in CHART_MODELS}, "promoted": d["promoted"]} for d in report["days"]]
    )
    chart = path.with_suffix(".png")
    chart.write_bytes(mse_chart_png(history))
    return chart


def print_mse_table(report: dict) -> None:
    columns = ("global_mean", "bias", "champion", "warm", "full")
    print(
        "\nEach day: its clean and rejected rows, its data checks (passed/failed/warned), and the MSE of each "
        "model on it, scored before anything trained on it ('-': no such model yet)."
    )
    print(f"{'':<43}" + f"{'MSE':-^60}")
    print(f"{'partition':<12}{'rows':>8}{'rejected':>9}{'checks p/f/w':>14}" + "".join(f"{c:>12}" for c in columns))
    for day in report["days"]:
        checks = day["checks"]
        figures = "".join(f"{day['mse'][c]:>12.4f}" if day["mse"][c] is not None else f"{'-':>12}" for c in columns)
        print(
            f"{day['partition']:<12}{day['rows_clean'] or 0:>8,}{day['rows_rejected'] or 0:>9,}"
            f"{checks['passed']:>8}/{checks['failed']}/{checks['warned']}{figures}"
        )
    means = report["summary"]["mean_mse"]
    print(f"{'mean MSE':<43}" + "".join(f"{means[c]:>12.4f}" if means[c] is not None else f"{'-':>12}" for c in columns))
    summary = report["summary"]
    for protocol, label in (("catalog", "top 10 of all unrated movies"), ("rated", "the day's rated movies reordered")):
        figures = summary["mean_ranking"].get(protocol, {})
        if figures:
            shown = ", ".join(f"{m} {f['ndcg_at_10']:.4f}" for m, f in sorted(figures.items()))
            print(f"mean NDCG@10, {label}: {shown}")
    print(f"{summary['days']} days, {summary['rows_raw']:,} rows in {summary['wall_seconds']:.1f} s ({summary['runs']} Dagster runs).")
