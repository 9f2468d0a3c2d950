"""The model assets through Dagster: first champion, test-then-train metrics, warm starts, the
promotion gate, weekly full retrains, refused corrupt artifacts, reproducible replays."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest
from asset_replay import (
    BATCH,
    BOOTSTRAP,
    BOOTSTRAP_ASSETS,
    CALENDAR,
    DAYS,
    AssetReplay,
    partition_of,
)

from recsys.calendar import BOOTSTRAP_BATCH
from recsys.models import registry, versions


@pytest.fixture(scope="module")
def archive(make_archive) -> Path:
    return make_archive(BOOTSTRAP + DAYS * BATCH, 21)


def test_a_replay_keeps_a_champion_scores_before_training_and_retrains_weekly(archive, tmp_path, monkeypatch):
    # A window of the latest examples smaller than the first week's history (MovieLens-32M's is 2M).
    window = BOOTSTRAP + 3 * BATCH
    model_config = versions.ModelingSettings.model_config
    monkeypatch.setattr(
        versions.ModelingSettings, "model_config", lambda self: dataclasses.replace(model_config(self), max_examples_continued=window)
    )
    replay = AssetReplay(tmp_path / "stores", archive, tmp_path / "models")
    replay.run(BOOTSTRAP_ASSETS)
    with replay.features_db() as db:
        first = registry.champion(db)
        assert first is not None and first.kind == "full" and first.trained_on == "bootstrap"
        assert Path(first.artifact).exists()
        first_retrieval = registry.champion(db, registry.RETRIEVAL)
        assert first_retrieval.version == "retrieval-full-bootstrap" and first_retrieval.trained_on == "bootstrap"
        assert first_retrieval.rows == first.rows and Path(first_retrieval.artifact).exists()

    result = replay.day(0)
    materializations = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    metrics = next(m.metadata for m in materializations if m.asset_key.to_user_string() == "model_metrics")
    assert {"mse_global_mean", "mse_bias", "mse_champion", "mse_champion_no_history"} <= set(metrics)
    assert metrics["champion_version"].value == first.version
    with replay.features_db() as db:
        day0 = db.query("SELECT model, segment, rows FROM model_metrics WHERE batch = 0")
        assert set(day0["model"]) >= {"global_mean", "bias", "champion"}
        warm0 = registry.latest(db, "warm", 1)
        assert warm0.parent == first.version and warm0.trained_on == partition_of(0) and warm0.status == "candidate"

    for batch in range(1, 7):
        replay.day(batch)
    with replay.features_db() as db:
        decisions = db.query("SELECT * FROM promotions WHERE metric = 'mse' ORDER BY batch")
        # Every day after the first judged the previous day's warm start on a day it had not seen,
        # and promoted it exactly when it beat the champion by the margin (a share of its score).
        assert decisions["batch"].to_list() == list(range(1, 7))
        beaten = decisions["candidate_score"] < decisions["champion_score"] * (1 - decisions["margin"])
        assert (decisions["promoted"] == beaten).all() and (decisions["margin"] > 0).all()
        # The retrieval stage's gate did the same with NDCG@10 of the returning users, higher being better.
        retrieval_decisions = db.query("SELECT * FROM promotions WHERE metric = 'ndcg_at_10' ORDER BY batch")
        assert retrieval_decisions["batch"].to_list() == list(range(1, 7))
        assert retrieval_decisions["candidate"].to_list() == [f"retrieval-warm-{CALENDAR.label(b)}" for b in range(6)]
        beaten = retrieval_decisions["candidate_score"] > retrieval_decisions["champion_score"] * (1 + retrieval_decisions["margin"])
        assert (retrieval_decisions["promoted"] == beaten).all()
        recorded = db.query(
            "SELECT batch, ndcg_at_10 FROM ranking_metrics WHERE model = 'retrieval_warm' AND protocol = 'catalog' "
            "AND segment = 'with_history' ORDER BY batch"
        )
        assert retrieval_decisions["candidate_score"].to_list() == recorded.filter(pl.col("batch") >= 1)["ndcg_at_10"].to_list()
        champion = registry.champion(db)
        statuses = db.query("SELECT stage, status, count(*) AS n FROM model_versions GROUP BY stage, status")
        champions = statuses.filter(pl.col("status") == "champion")
        assert sorted(champions["stage"].to_list()) == ["rating", "retrieval"] and (champions["n"] == 1).all()
        # Warm starts chain day to day: each one's parent is the previous day's, or the champion just promoted.
        # Before the weekly retrain the only candidate a day judges is yesterday's warm start, so
        # promoted or not, it is today's parent.
        warm = db.query(
            "SELECT version, parent, first_batch FROM model_versions WHERE kind = 'warm' AND stage = 'rating' ORDER BY first_batch"
        )
        assert warm["first_batch"].to_list() == list(range(7))
        assert warm["parent"].to_list() == [first.version, *warm["version"].to_list()[:-1]]

    week = CALENDAR.week_key(0)
    replay.run(["full_model"], week)
    with replay.features_db() as db:
        full = registry.latest(db, "full", 7)
        assert full.trained_on == f"bootstrap..{partition_of(6)}" and full.status == "candidate"
        # It continued the bootstrap model (towers and factor fit) at the warm learning rate, for
        # retrain_epochs over the latest examples; the bootstrap model, which had none to
        # continue, trained on every example.
        assert first.rows == db.scalar(f"SELECT count(*) FROM training_examples WHERE batch = {BOOTSTRAP_BATCH}")
        assert full.rows == window < db.scalar("SELECT count(*) FROM training_examples WHERE batch <= 6")
        assert full.parent == first.version and first.parent is None
        assert full.hyperparameters["learning_rate_used"] == full.hyperparameters["warm_learning_rate"]
        assert full.metrics["epochs"] == full.hyperparameters["retrain_epochs"]
        full_retrieval = registry.latest(db, "full", 7, registry.RETRIEVAL)
        assert full_retrieval.trained_on == full.trained_on
        assert full_retrieval.rows == db.scalar("SELECT count(*) FROM training_examples WHERE batch <= 6")
    replay.day(7)
    with replay.features_db() as db:
        judged = db.query("SELECT candidate FROM promotions WHERE batch = 7")["candidate"].to_list()
        assert full.version in judged and full_retrieval.version in judged
        assert registry.champion(db) is not None and champion is not None


def test_a_corrupted_champion_artifact_is_refused_with_a_sentence(archive, tmp_path):
    replay = AssetReplay(tmp_path / "stores", archive, tmp_path / "models")
    replay.run(BOOTSTRAP_ASSETS)
    with replay.features_db() as db:
        artifact = Path(registry.champion(db).artifact)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    message = replay.failure(replay.day(0, ok=False))
    assert message.startswith(f"Model artifact {artifact} does not match its recorded checksum")


def test_a_weekly_retrain_before_its_week_is_built_says_what_to_do(archive, tmp_path):
    replay = AssetReplay(tmp_path / "stores", archive, tmp_path / "models")
    replay.run(BOOTSTRAP_ASSETS)
    week = CALENDAR.week_key(0)
    message = replay.failure(replay.run(["full_model"], week, ok=False))
    assert message == (
        f"The week of {week} ends with partition {partition_of(6)}, whose training examples are not built "
        "yet: materialize training_examples through that day first."
    )


def test_the_same_seed_replays_to_the_same_models(archive, tmp_path):
    outcomes = []
    for attempt in ("a", "b"):
        replay = AssetReplay(tmp_path / attempt / "stores", archive, tmp_path / attempt / "models")
        replay.run(BOOTSTRAP_ASSETS)
        replay.day(0)
        replay.day(1)
        with replay.features_db() as db:
            versions = db.query("SELECT version, kind, parent, trained_on, rows, status FROM model_versions ORDER BY version")
            metrics = db.query("SELECT batch, model, version, segment, mse FROM model_metrics ORDER BY batch, model, segment")
        outcomes.append((versions, metrics))
    assert outcomes[0][0].equals(outcomes[1][0])
    # The same weights give the same predictions, so every monitored MSE repeats exactly.
    assert outcomes[0][1].equals(outcomes[1][1])


def test_a_day_run_again_keeps_its_first_test_then_train_scores(archive, tmp_path, monkeypatch):
    replay = AssetReplay(tmp_path / "stores", archive, tmp_path / "models")
    replay.run(BOOTSTRAP_ASSETS)
    load_version = versions.load_version
    loads = []
    monkeypatch.setattr(versions, "load_version", lambda version: loads.append(version.version) or load_version(version))
    for batch in range(3):
        loads.clear()
        replay.day(batch)
        # The models layer's day loads each version once, also a candidate that is the champion,
        # and warm-starts both stages from the models it scored (yesterday's warm models).
        assert loads and sorted(loads) == sorted(set(loads))
        if batch:
            with replay.features_db() as db:
                warm = {registry.latest(db, "warm", batch + 1, stage).parent for stage in (registry.RATING, registry.RETRIEVAL)}
            assert warm <= set(loads)
    query = "SELECT model, version, segment, rows, mse FROM model_metrics WHERE batch = 2 ORDER BY model, segment"
    with replay.features_db() as db:
        first = db.query(query)
        # The champion now is a model trained on day 2 itself: scored on day 2 it would look better
        # than anything honestly could.
        trained_on_day_2 = registry.latest(db, "warm", 3)
        assert trained_on_day_2.last_batch == 2
        registry.make_champion(db, trained_on_day_2.version)
    result = replay.day(2)  # the latest day may be rebuilt
    with replay.features_db() as db:
        assert db.query(query).equals(first)
    metadata = next(
        e.event_specific_data.materialization.metadata for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "model_metrics"
    )  # fmt: skip
    assert metadata["rescored"].value is True
    # The UI shows MSE to four decimals.
    assert metadata["mse_champion"].value == round(first.filter((first["model"] == "champion") & (first["segment"] == "all"))["mse"].item(), 4)


def test_a_range_run_gives_each_day_its_own_figures_and_check_results(archive, tmp_path):
    replay = AssetReplay(tmp_path / "stores", archive, tmp_path / "models")
    initial = replay.run(BOOTSTRAP_ASSETS)
    (initial_metadata,) = [
        e.event_specific_data.materialization.metadata for e in initial.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "initial_model"
    ]  # fmt: skip
    # The registry, readable on the model assets: the two first champions, no decision yet.
    champions = initial_metadata["champions"].value.splitlines()[2:]  # below the header and its rule
    assert sorted(line.split(" | ")[0] for line in champions) == ["| rating", "| retrieval"]
    assert initial_metadata["promotion_decisions"].value.startswith("No promotion decision yet")

    days = [partition_of(b) for b in range(3)]
    result = replay.run(replay.daily, days[0], last=days[-1])  # one run, as a single-run backfill makes
    materializations = {
        (e.asset_key.to_user_string(), e.partition): e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    with replay.features_db() as db:
        scored = db.query("SELECT batch, mse FROM model_metrics WHERE model = 'champion' AND segment = 'all' ORDER BY batch")
        decisions = db.query("SELECT count(*) AS n FROM promotions")["n"].item()
    for batch, day in enumerate(days):
        metadata = materializations["model_metrics", day]
        assert metadata["mse_champion"].value == round(scored["mse"][batch], 4)
        assert materializations["lake_ratings", day]["rows_raw"].value == BATCH
    # The days differ, so each partition holds its own day's figure, not the range's last.
    assert len({materializations["model_metrics", d]["mse_champion"].value for d in days}) == len(days)
    last = materializations["model_metrics", days[-1]]
    assert last["mse_chart"].value.startswith("![MSE per day") and "data:image/png;base64," in last["mse_chart"].value
    assert materializations["warm_model", days[-1]]["promotion_decisions"].value.count("\n") == 1 + decisions
    assert materializations["warm_model", days[-1]]["retrain_triggers"].value == "No retrain has been triggered by drift."

    # Each day's checks are evaluations of that day; the run's own result covers the range.
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == "lake_ratings_values"]
    assert sorted(e.partition for e in evaluations if e.partition) == days
    (folded,) = [e for e in evaluations if e.partition is None]
    assert folded.passed and folded.description.startswith(f"{days[0]}..{days[-1]}: 3/3 partitions passed")
    for evaluation in evaluations:
        if evaluation.partition:
            assert evaluation.description.startswith(f"{evaluation.partition}: lake_ratings_values")
            assert evaluation.metadata["partition"].value == evaluation.partition
