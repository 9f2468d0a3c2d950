"""The model assets through Dagster: first champion, test-then-train metrics, warm starts, the
promotion gate, weekly full retrains, refused corrupt artifacts, reproducible replays."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import BATCH, BOOTSTRAP, BOOTSTRAP_ASSETS, DAYS, Replay

from recsys_assets import models, registry, synthetic
from recsys_assets.partitions import partition_of
from recsys_resources import open_store, store_urls


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("archive")
    synthetic.generate(data, BOOTSTRAP + DAYS * BATCH, seed=21)
    return data



def test_a_replay_keeps_a_champion_scores_before_training_and_retrains_weekly(archive, tmp_path):
    replay = Replay(tmp_path / "stores", archive, tmp_path / "models")
    replay.run(BOOTSTRAP_ASSETS)
    with replay.features_db() as db:
        first = registry.champion(db)
        assert first is not None and first.kind == "full" and first.trained_on == "bootstrap"
        assert Path(first.artifact).exists()

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
        decisions = db.query("SELECT * FROM promotions ORDER BY batch")
        # Every day after the first judged the previous day's warm start on a day it had not seen,
        # and promoted it exactly when it beat the champion by the margin (0 by default).
        assert decisions["batch"].to_list() == list(range(1, 7))
        assert (decisions["promoted"] == (decisions["candidate_mse"] < decisions["champion_mse"])).all()
        champion = registry.champion(db)
        statuses = db.query("SELECT status, count(*) AS n FROM model_versions GROUP BY status")
        assert dict(zip(statuses["status"], statuses["n"]))["champion"] == 1
        # Warm starts chain day to day: each one's parent is the previous day's, or the champion just promoted.
        warm = db.query("SELECT version, parent, first_batch FROM model_versions WHERE kind = 'warm' ORDER BY first_batch")
        assert warm["first_batch"].to_list() == list(range(7))

    week = models.weekly_partitions.get_partition_keys()[0]
    replay.run([models.full_model], week)
    with replay.features_db() as db:
        full = registry.latest(db, "full", 7)
        assert full.trained_on == f"bootstrap..{partition_of(6)}" and full.status == "candidate"
        assert full.rows == db.scalar("SELECT count(*) FROM training_examples WHERE batch <= 6")
    replay.day(7)
    with replay.features_db() as db:
        judged = db.query("SELECT candidate FROM promotions WHERE batch = 7")["candidate"].to_list()
        assert full.version in judged
        assert registry.champion(db) is not None and champion is not None


def test_a_corrupted_champion_artifact_is_refused_with_a_sentence(archive, tmp_path):
    replay = Replay(tmp_path / "stores", archive, tmp_path / "models")
    replay.run(BOOTSTRAP_ASSETS)
    with replay.features_db() as db:
        artifact = Path(registry.champion(db).artifact)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    message = replay.failure(replay.day(0, ok=False))
    assert message.startswith(f"Model artifact {artifact} does not match its recorded checksum")


def test_a_weekly_retrain_before_its_week_is_built_says_what_to_do(archive, tmp_path):
    replay = Replay(tmp_path / "stores", archive, tmp_path / "models")
    replay.run(BOOTSTRAP_ASSETS)
    week = models.weekly_partitions.get_partition_keys()[0]
    message = replay.failure(replay.run([models.full_model], week, ok=False))
    assert message == (
        f"The week of {week} ends with partition {partition_of(6)}, whose training examples are not built "
        "yet: materialize training_examples through that day first."
    )


def test_the_gate_promotes_only_a_candidate_that_beats_the_champion(store_base):
    with open_store(store_urls(store_base)["features"]) as db:
        db.apply_schema("features")

        def version(name: str, status: str) -> registry.ModelVersion:
            return registry.ModelVersion(
                version=name, kind="warm", parent=None, trained_on="x", first_batch=0, last_batch=0, rows=1,
                hyperparameters={}, metrics={}, artifact="/dev/null", checksum="0", created_at=registry.now(), status=status,
            )  # fmt: skip

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


def test_the_same_seed_replays_to_the_same_models(archive, tmp_path):
    outcomes = []
    for attempt in ("a", "b"):
        replay = Replay(tmp_path / attempt / "stores", archive, tmp_path / attempt / "models")
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
