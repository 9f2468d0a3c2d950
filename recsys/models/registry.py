"""The model registry, monitoring metrics and promotion decisions, kept in the feature store.

Every trained model is a version row: its stage (rating or retrieval), kind (full or warm),
parent, the partitions and rows it was trained on, hyper-parameters, training metrics, artifact
path and checksum, and a status. Exactly one version per stage is the champion, the model in
service; candidates become champion only through the promotion gate (`decide_promotion`), like
TFX's Evaluator blessing a model only when it beats the baseline by a threshold.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass

import polars as pl

from recsys.stores import Store

CANDIDATE, CHAMPION, REJECTED, RETIRED = "candidate", "champion", "rejected", "retired"
RATING, RETRIEVAL = "rating", "retrieval"


@dataclass(frozen=True)
class ModelVersion:
    version: str
    kind: str  # full | warm
    parent: str | None
    trained_on: str
    first_batch: int
    last_batch: int
    rows: int
    hyperparameters: dict
    metrics: dict
    artifact: str
    checksum: str
    created_at: dt.datetime
    status: str
    stage: str = RATING

    @classmethod
    def from_row(cls, row: dict) -> ModelVersion:
        return cls(**{**row, "hyperparameters": json.loads(row["hyperparameters"]), "metrics": json.loads(row["metrics"])})

    def to_frame(self) -> pl.DataFrame:
        row = asdict(self)
        row["hyperparameters"] = json.dumps(self.hyperparameters, sort_keys=True)
        row["metrics"] = json.dumps(self.metrics, sort_keys=True)
        return pl.DataFrame(
            [row],
            schema={
                "version": pl.String, "kind": pl.String, "parent": pl.String, "trained_on": pl.String,
                "first_batch": pl.Int32, "last_batch": pl.Int32, "rows": pl.Int64, "hyperparameters": pl.String,
                "metrics": pl.String, "artifact": pl.String, "checksum": pl.String, "created_at": pl.Datetime,
                "status": pl.String, "stage": pl.String,
            },
        )  # fmt: skip


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def register(store: Store, version: ModelVersion) -> None:
    """Add a version; registering the same version id again replaces its row (idempotent)."""
    store.replace("model_versions", "version = $version", {"version": version.version}, version.to_frame())


def _versions(store: Store, where: str, params: dict | None = None) -> list[ModelVersion]:
    rows = store.query(f"SELECT * FROM model_versions WHERE {where} ORDER BY last_batch, created_at, version", params)
    return [ModelVersion.from_row(row) for row in rows.iter_rows(named=True)]


def get(store: Store, version: str) -> ModelVersion | None:
    found = _versions(store, "version = $version", {"version": version})
    return found[0] if found else None


def champion(store: Store, stage: str = RATING) -> ModelVersion | None:
    found = _versions(store, "status = $status AND stage = $stage", {"status": CHAMPION, "stage": stage})
    return found[-1] if found else None


def latest(store: Store, kind: str, before_batch: int, stage: str = RATING) -> ModelVersion | None:
    """The newest version of a stage and kind trained only on batches before `before_batch`."""
    found = _versions(
        store, "kind = $kind AND last_batch < $before AND stage = $stage", {"kind": kind, "before": before_batch, "stage": stage}
    )
    return found[-1] if found else None


def every_version(store: Store) -> list[ModelVersion]:
    """Every version of both stages, oldest first."""
    return _versions(store, "TRUE")


def of_kind(store: Store, kind: str, stage: str = RATING) -> list[ModelVersion]:
    """Every version of a stage and kind, oldest first."""
    return _versions(store, "kind = $kind AND stage = $stage", {"kind": kind, "stage": stage})


def set_status(store: Store, version: str, status: str) -> None:
    store.execute("UPDATE model_versions SET status = $status WHERE version = $version", {"status": status, "version": version})


def make_champion(store: Store, version: str, stage: str = RATING) -> None:
    """`version` goes into service; the previous champion of its stage retires."""
    with store.transaction():
        store.execute(
            "UPDATE model_versions SET status = $retired WHERE status = $champion AND stage = $stage",
            {"retired": RETIRED, "champion": CHAMPION, "stage": stage},
        )
        set_status(store, version, CHAMPION)


@dataclass(frozen=True)
class Decision:
    candidate: str
    champion: str
    candidate_score: float
    champion_score: float
    margin: float
    metric: str = "mse"

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "mse"

    @property
    def clears_margin(self) -> bool:
        # Relative margin: the candidate must be better by at least `margin` of the champion's score.
        if self.higher_is_better:
            return self.candidate_score > self.champion_score * (1.0 + self.margin)
        return self.candidate_score < self.champion_score * (1.0 - self.margin)


def judge(
    champion: ModelVersion, candidates: list[ModelVersion], day_scores: dict[str, float], margin: float, metric: str = "mse"
) -> tuple[list[Decision], ModelVersion | None]:
    """The gate on one unseen day: a decision per candidate, and the one to promote, if any.

    `day_scores` holds each model kind's figure on the day ("champion", "warm", "full"): MSE
    (lower is better) or NDCG@10 (higher). Only the best candidate can be promoted, and only if
    it beats the champion by the margin (TFX's Evaluator: a candidate is blessed only if it
    beats the baseline by a threshold).
    """
    decisions = [
        Decision(m.version, champion.version, day_scores[m.kind], day_scores["champion"], margin, metric) for m in candidates
    ]
    sign = -1.0 if metric != "mse" else 1.0
    best = min(zip(candidates, decisions), key=lambda pair: sign * pair[1].candidate_score, default=None)
    return decisions, best[0] if best is not None and best[1].clears_margin else None


def decide_promotion(
    store: Store, partition_key: str, batch: int, decision: Decision, promote: bool, stage: str = RATING
) -> None:
    """Record the gate's decision on the latest unseen day and act on it: promote or reject."""
    record = pl.DataFrame(
        [{**asdict(decision), "partition_key": partition_key, "batch": batch, "promoted": promote, "decided_at": now()}]
    ).select(
        "partition_key", pl.col("batch").cast(pl.Int32), "candidate", "champion", "metric", "candidate_score",
        "champion_score", "margin", "promoted", "decided_at",
    )  # fmt: skip
    with store.transaction():
        store.execute(
            "DELETE FROM promotions WHERE batch = $batch AND candidate = $candidate", {"batch": batch, "candidate": decision.candidate}
        )
        store.insert("promotions", record)
        if promote:
            make_champion(store, decision.candidate, stage)
        else:
            set_status(store, decision.candidate, REJECTED)


def promoted_on(store: Store, batch: int, stage: str = RATING) -> ModelVersion | None:
    """The version of `stage` the gate promoted on day `batch`, if it did: a day run again (after
    a crash, say) finds its candidate already champion and must go on from it as the first run did."""
    found = _versions(
        store,
        "stage = $stage AND version IN (SELECT candidate FROM promotions WHERE batch = $batch AND promoted)",
        {"stage": stage, "batch": batch},
    )
    return found[-1] if found else None


def recorded_scores(store: Store, batch: int) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """A day's test-then-train figures as first recorded (MSE table, ranking table), if any."""
    table = store.query(
        "SELECT model, version, segment, rows, mse, rmse, mae, mean_error FROM model_metrics WHERE batch = $batch", {"batch": batch}
    )
    if table.height == 0:
        return None
    ranks = store.query(
        "SELECT model, version, protocol, segment, users, ndcg_at_10, recall_at_10 FROM ranking_metrics WHERE batch = $batch",
        {"batch": batch},
    )
    return table, ranks


def record_metrics(store: Store, batch: int, metrics: pl.DataFrame) -> None:
    """Replace one day's monitoring rows (model, version, segment, rows, mse, rmse, mae)."""
    store.replace("model_metrics", "batch = $batch", {"batch": batch}, metrics)


def record_ranking(store: Store, batch: int, metrics: pl.DataFrame) -> None:
    """Replace one day's ranking rows (model, version, protocol, segment, users, ndcg_at_10, recall_at_10)."""
    store.replace("ranking_metrics", "batch = $batch", {"batch": batch}, metrics)


def trailing_mse(store: Store, model: str, before_batch: int, days: int) -> list[float]:
    """The model's whole-day MSE on the `days` days before `before_batch`, oldest first."""
    rows = store.query(
        "SELECT mse FROM model_metrics WHERE model = $model AND segment = 'all' AND batch < $before "
        "ORDER BY batch DESC LIMIT $days",
        {"model": model, "before": before_batch, "days": days},
    )
    return list(reversed(rows["mse"].to_list()))


def version_table(store: Store) -> pl.DataFrame:
    """Every version of both stages, oldest first, as a person reads the registry: lineage
    (kind, parent, days trained on), size and where it stands now."""
    return store.query(
        "SELECT version, stage, kind, coalesce(parent, '') AS parent, trained_on, rows, status FROM model_versions "
        "ORDER BY last_batch, created_at, version"
    )


def promotion_table(store: Store) -> pl.DataFrame:
    """Every promotion decision, oldest first, with the figures it was decided on."""
    return store.query(
        "SELECT partition_key AS day, metric, candidate, champion, candidate_score, champion_score, margin, promoted "
        "FROM promotions ORDER BY batch, decided_at, candidate"
    ).with_columns(pl.col("candidate_score", "champion_score").round(4))
