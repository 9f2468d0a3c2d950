"""The model registry, the promotion gate and the monitoring checks, on real stores, without Dagster."""

from __future__ import annotations

import dataclasses
import math

import polars as pl
import pytest

from recsys.models import registry
from recsys.models.daily import DayReport
from recsys.models.monitoring import BEATS_BIAS, NOT_DEGRADED, monitoring_checks
from recsys.models.config import ModelConfig
from recsys.models.versions import ModelingSettings, previous_full, prune_artifacts
from recsys.settings import store_urls
from recsys.stores import open_store


def version(name: str, status: str, kind: str = "warm", stage: str = registry.RATING) -> registry.ModelVersion:
    return registry.ModelVersion(
        version=name, kind=kind, parent=None, trained_on="x", first_batch=0, last_batch=0, rows=1,
        hyperparameters={}, metrics={}, artifact="/dev/null", checksum="0", created_at=registry.now(), status=status,
        stage=stage,
    )  # fmt: skip


def test_the_gate_promotes_only_a_candidate_that_beats_the_champion(store_base):
    with open_store(store_urls(store_base)["features"]) as db:
        db.apply_schema("features")
        for name, status in (("champ", "champion"), ("worse", "candidate"), ("better", "candidate")):
            registry.register(db, version(name, status))
        registry.decide_promotion(db, "d", 1, registry.Decision("worse", "champ", 0.80, 0.70, 0.01), promote=False)
        assert registry.champion(db).version == "champ" and registry.get(db, "worse").status == "rejected"
        decision = registry.Decision("better", "champ", 0.60, 0.70, 0.01)
        assert decision.clears_margin
        registry.decide_promotion(db, "d", 2, decision, promote=True)
        assert registry.champion(db).version == "better" and registry.get(db, "champ").status == "retired"
        # A candidate within the margin does not clear it.
        assert not registry.Decision("c", "better", 0.699, 0.70, 0.01).clears_margin
        assert db.query("SELECT promoted FROM promotions ORDER BY batch")["promoted"].to_list() == [False, True]

        # Each stage has its own champion: promoting a retrieval model retires no rating model.
        for name, status in (("r-champ", "champion"), ("r-new", "candidate")):
            registry.register(db, version(name, status, stage=registry.RETRIEVAL))
        assert registry.champion(db, registry.RETRIEVAL).version == "r-champ"
        decision = registry.Decision("r-new", "r-champ", 0.30, 0.25, 0.01, metric="ndcg_at_10")
        registry.decide_promotion(db, "d", 3, decision, promote=True, stage=registry.RETRIEVAL)
        assert registry.champion(db, registry.RETRIEVAL).version == "r-new" and registry.get(db, "r-champ").status == "retired"
        assert registry.champion(db).version == "better"
        recorded = db.query("SELECT metric, candidate_score, champion_score FROM promotions WHERE batch = 3").row(0)
        assert recorded == ("ndcg_at_10", 0.30, 0.25)


def test_pruning_deletes_the_artifacts_no_coming_day_needs_and_keeps_every_registry_row(store_base, tmp_path):
    # (name, stage, kind, last batch, status); day 9 was just run, with 2 days of retention.
    versions = [
        ("full-bootstrap", registry.RATING, "full", -1, "retired"),
        ("warm-0", registry.RATING, "warm", 0, "rejected"),
        ("warm-1", registry.RATING, "warm", 1, "champion"),
        ("full-3", registry.RATING, "full", 3, "rejected"),
        ("warm-7", registry.RATING, "warm", 7, "rejected"),
        ("warm-8", registry.RATING, "warm", 8, "rejected"),
        ("warm-9", registry.RATING, "warm", 9, "candidate"),
        ("retrieval-full-bootstrap", registry.RETRIEVAL, "full", -1, "champion"),
        ("retrieval-warm-2", registry.RETRIEVAL, "warm", 2, "rejected"),
        ("retrieval-warm-9", registry.RETRIEVAL, "warm", 9, "candidate"),
    ]
    with open_store(store_urls(store_base)["features"]) as db:
        db.apply_schema("features")
        for name, stage, kind, last_batch, status in versions:
            artifact = tmp_path / f"{name}.keras"
            artifact.write_bytes(b"x" * 100)
            registry.register(db, dataclasses.replace(version(name, status, kind, stage), last_batch=last_batch, artifact=str(artifact)))
        settings = ModelingSettings(artifact_dir=str(tmp_path), artifact_retention_days=2)
        assert prune_artifacts(db, settings, 9) == (4, 400)
        # Kept: days 8 and 9, each stage's champion and its latest full model.
        assert sorted(p.stem for p in tmp_path.glob("*.keras")) == [
            "full-3", "retrieval-full-bootstrap", "retrieval-warm-9", "warm-1", "warm-8", "warm-9"
        ]
        assert len(registry.every_version(db)) == len(versions)
        assert prune_artifacts(db, settings, 9) == (0, 0)
    with pytest.raises(Exception, match="at least 1"):
        ModelingSettings(artifact_dir=str(tmp_path), artifact_retention_days=0)


def test_a_full_training_continues_the_latest_full_model_whose_artifact_is_kept(store_base, tmp_path):
    settings = ModelConfig().to_dict()
    with open_store(store_urls(store_base)["features"]) as db:
        db.apply_schema("features")
        for name, last_batch, kept in (("full-6", 6, True), ("full-13", 13, False), ("full-20", 20, True)):
            artifact = tmp_path / f"{name}.keras"
            if kept:
                artifact.write_bytes(b"x")
            registry.register(db, dataclasses.replace(
                version(name, "rejected", "full"), last_batch=last_batch, artifact=str(artifact), hyperparameters=settings
            ))  # fmt: skip
        assert previous_full(db, ModelConfig(), 20).version == "full-6"  # full-13's artifact was pruned
        assert previous_full(db, ModelConfig(), 21).version == "full-20"
        assert previous_full(db, ModelConfig(factors=0), 21) is None  # other settings: a fresh start


def test_judge_promotes_the_best_candidate_and_only_past_the_margin():
    champion = version("champ", "champion", kind="full")
    warm, full = version("warm-1", "candidate", kind="warm"), version("full-1", "candidate", kind="full")
    # Both beat the champion; the better one (full, 0.80) is promoted, the other is not.
    decisions, promoted = registry.judge(champion, [warm, full], {"champion": 1.00, "warm": 0.90, "full": 0.80}, 0.10)
    assert promoted is full
    assert [(d.candidate, d.candidate_score, d.champion_score, d.margin) for d in decisions] == [
        ("warm-1", 0.90, 1.00, 0.10), ("full-1", 0.80, 1.00, 0.10),
    ]  # fmt: skip
    # 10% better is not better than 10% better: the margin is strict, relative to the champion.
    _, promoted = registry.judge(champion, [warm, full], {"champion": 1.00, "warm": 0.95, "full": 0.90}, 0.10)
    assert promoted is None
    # With no margin, any improvement counts; with none at all, nobody is promoted.
    _, promoted = registry.judge(champion, [warm, full], {"champion": 1.00, "warm": 0.95, "full": 0.90}, 0.0)
    assert promoted is full
    assert registry.judge(champion, [], {"champion": 1.0}, 0.0) == ([], None)


def test_the_retrieval_gate_promotes_the_highest_ndcg_and_only_past_the_margin():
    champion = version("r-champ", "champion", kind="full", stage=registry.RETRIEVAL)
    warm, full = (version(f"r-{k}", "candidate", kind=k, stage=registry.RETRIEVAL) for k in ("warm", "full"))
    decisions, promoted = registry.judge(champion, [warm, full], {"champion": 0.20, "warm": 0.23, "full": 0.25}, 0.10, "ndcg_at_10")
    assert promoted is full and all(d.metric == "ndcg_at_10" for d in decisions)
    # 0.22 is exactly 10% above 0.20: not past the margin; lower NDCG never is.
    _, promoted = registry.judge(champion, [warm, full], {"champion": 0.20, "warm": 0.22, "full": 0.15}, 0.10, "ndcg_at_10")
    assert promoted is None


def day_report(batch: int, champion: float, bias: float) -> DayReport:
    return DayReport(
        batch=batch, partition_key=f"day-{batch}", mse={"champion": champion, "bias": bias, "global_mean": 1.0},
        segments=pl.DataFrame(), ranking=pl.DataFrame(), champion_before="c", champion_after="c",
    )  # fmt: skip


def record_champion_mse(db, batch: int, mse: float) -> None:
    row = {"partition_key": f"day-{batch}", "batch": batch, "model": "champion", "version": "c", "segment": "all",
           "rows": 10, "mse": mse, "rmse": math.sqrt(mse), "mae": mse, "mean_error": 0.0}  # fmt: skip
    registry.record_metrics(db, batch, pl.DataFrame([row]).with_columns(pl.col("batch").cast(pl.Int32)))


@pytest.fixture
def metrics_db(tmp_path):
    with open_store(str(tmp_path / "features.duckdb")) as db:
        db.apply_schema("features")
        yield db


def test_monitoring_warns_when_the_champion_is_no_better_than_the_bias_baseline(metrics_db):
    settings = ModelingSettings(artifact_dir="unused")
    checks = {c.name: c for c in monitoring_checks(day_report(0, champion=0.70, bias=0.80), metrics_db, settings)}
    assert checks[BEATS_BIAS].passed and checks[BEATS_BIAS].metadata == {"champion_mse": 0.70, "bias_mse": 0.80, "partition": "day-0"}
    checks = {c.name: c for c in monitoring_checks(day_report(0, champion=0.80, bias=0.80), metrics_db, settings)}
    assert not checks[BEATS_BIAS].passed  # level is not better
    assert checks[BEATS_BIAS].description == "champion MSE 0.8000 vs user+item bias 0.8000 on day-0"
    # With no earlier day there is nothing to degrade from.
    assert checks[NOT_DEGRADED].passed and checks[NOT_DEGRADED].description == "no earlier days to compare with"


def test_monitoring_warns_when_the_champion_degrades_past_the_trailing_median(metrics_db):
    settings = ModelingSettings(artifact_dir="unused", degradation_tolerance=0.25, trailing_days=3)
    for batch, mse in enumerate([9.0, 0.40, 0.50, 0.60]):  # batch 0 falls outside the 3-day window
        record_champion_mse(metrics_db, batch, mse)
    # Median of days 1-3 is 0.50; the limit 0.625.
    at_limit = {c.name: c for c in monitoring_checks(day_report(4, champion=0.625, bias=1.0), metrics_db, settings)}
    assert at_limit[NOT_DEGRADED].passed
    assert at_limit[NOT_DEGRADED].metadata == {"champion_mse": 0.625, "trailing_median": 0.50, "tolerance": 0.25, "trailing_days": 3}
    past = {c.name: c for c in monitoring_checks(day_report(4, champion=0.63, bias=1.0), metrics_db, settings)}
    assert not past[NOT_DEGRADED].passed
    assert past[NOT_DEGRADED].description == "champion MSE 0.6300 against limit 0.6250 (trailing median 0.5000)"
