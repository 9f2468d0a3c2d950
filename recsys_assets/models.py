"""MODELS layer: the initial model, daily warm starts, weekly full retrains, test-then-train monitoring.

A day k runs in this order, which is why monitoring and the warm start are one asset: first every
model is scored on day k's examples before anything has trained on them (the champion in service,
the latest warm and full candidates, and the global-mean and user+item-bias baselines fitted on
the past), then the promotion gate decides on the candidates with those figures, then the day's
warm start fine-tunes yesterday's warm model (or the champion just promoted) on day k. A range run
goes through its days in that order, one after another.
"""

import dataclasses
from dataclasses import dataclass, field
from statistics import median

import numpy as np
import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    WeeklyPartitionsDefinition,
    asset,
    multi_asset,
)

from recsys_assets import model as keras_model
from recsys_assets import registry
from recsys_assets.baselines import BiasBaseline
from recsys_assets.checks import user_errors
from recsys_assets.features import bootstrap_features, state_as_of, stored_movie_features
from recsys_assets.partitions import START_DATE, batch_of, daily_partitions, partition_of
from recsys_assets.reporting import markdown_table
from recsys_assets.transforms import ranking
from recsys_assets.transforms.archive import BOOTSTRAP_BATCH
from recsys_assets.transforms.features import catalog_features
from recsys_resources import ModelingResource, RecsysError, ServingResource, Store, StoreResource

OWNERS = ["team:ml-platform"]
# Weeks start on the replay's start weekday, so week w holds batches 7w..7w+6 (dagster: 0 = Sunday).
weekly_partitions = WeeklyPartitionsDefinition(start_date=START_DATE.isoformat(), day_offset=START_DATE.isoweekday() % 7)
# Most ratings of a replayed day come from users with little or no earlier history, so MSE is
# reported for them apart from the rest (a model can shine on one and fail the other).
SEGMENTS = {
    "all": lambda history: np.ones_like(history, dtype=bool),
    "with_history": lambda history: history > 0,
    "no_history": lambda history: history == 0,
}


def model_config(modeling: ModelingResource) -> keras_model.ModelConfig:
    return keras_model.ModelConfig(seed=modeling.seed)


def _label(batch: int) -> str:
    return "bootstrap" if batch == BOOTSTRAP_BATCH else partition_of(batch)


def _examples(features: Store, where: str, params: dict) -> pl.DataFrame:
    return features.query(f"SELECT * FROM training_examples WHERE {where} ORDER BY seq", params)


def _save_version(
    features: Store,
    modeling: ModelingResource,
    trained,
    report: keras_model.TrainReport,
    *,
    kind: str,
    parent: str | None,
    first_batch: int,
    last_batch: int,
    learning_rate: float,
    status: str,
) -> registry.ModelVersion:
    """Write the artifact and register the version.

    A version is named by its kind and the last partition it learned from (full-bootstrap,
    warm-2025-01-03, full-2025-01-07), so rebuilding a partition replaces its version instead
    of piling up near-copies, and a replay under the same seed names its models the same way.
    """
    version = f"{kind}-{_label(last_batch)}"
    artifact = modeling.directory / f"{version}.keras"
    checksum = keras_model.save_model(trained, artifact)
    trained_on = _label(last_batch) if first_batch == last_batch else f"{_label(first_batch)}..{_label(last_batch)}"
    entry = registry.ModelVersion(
        version=version,
        kind=kind,
        parent=parent,
        trained_on=trained_on,
        first_batch=first_batch,
        last_batch=last_batch,
        rows=report.examples,
        hyperparameters={**model_config(modeling).to_dict(), "learning_rate_used": learning_rate},
        metrics=report.to_dict(),
        artifact=str(artifact),
        checksum=checksum,
        created_at=registry.now(),
        status=status,
    )
    registry.register(features, entry)
    return entry


def train_full(features: Store, modeling: ModelingResource, last_batch: int, status: str) -> registry.ModelVersion:
    """A model trained from scratch on every example up to `last_batch` (bootstrap included)."""
    examples = _examples(features, "batch <= $last", {"last": last_batch})
    if examples.height == 0:
        raise RecsysError("The feature store holds no training examples yet: materialize bootstrap_features first.")
    config = model_config(modeling)
    fresh = keras_model.fresh_model(config)
    report = keras_model.train(fresh, examples, config, learning_rate=config.learning_rate, epochs=config.epochs)
    return _save_version(
        features, modeling, fresh, report, kind="full", parent=None, first_batch=BOOTSTRAP_BATCH,
        last_batch=last_batch, learning_rate=config.learning_rate, status=status,
    )  # fmt: skip


def load_version(version: registry.ModelVersion):
    """The version's Keras model, once its artifact matches the recorded checksum."""
    return keras_model.load_model(version.artifact, version.checksum)


def config_of(version: registry.ModelVersion) -> keras_model.ModelConfig:
    """The settings a version was trained with: its inputs must be prepared the same way."""
    known = {f.name for f in dataclasses.fields(keras_model.ModelConfig)}
    return keras_model.ModelConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in version.hyperparameters.items() if k in known}
    )


@dataclass
class DayReport:
    batch: int
    partition_key: str
    mse: dict[str, float | None]  # model -> MSE on the day (None where there is no such model)
    segments: pl.DataFrame  # model, version, segment, rows, mse, rmse, mae
    ranking: pl.DataFrame  # model, version, protocol, segment, users, ndcg_at_10, recall_at_10
    champion_before: str
    champion_after: str
    decisions: list[registry.Decision] = field(default_factory=list)
    warm_version: str = ""
    warm_seconds: float = 0.0


@dataclass
class DayScores:
    """What scoring a day before training on it gives: the MSE table and what it was computed from."""

    table: pl.DataFrame  # model, version, segment, rows, mse, rmse, mae
    models: dict[str, registry.ModelVersion]
    examples: pl.DataFrame
    past: pl.DataFrame  # the lake's ratings before the day: batch, user_id, movie_id, rating
    champion_model: object
    champion_predictions: np.ndarray


def score_day(batch: int, lake: Store, features: Store) -> DayScores:
    """Test before train: every model and baseline on day `batch`, which none has trained on."""
    examples = _examples(features, "batch = $batch", {"batch": batch})
    if examples.height == 0:
        raise RecsysError(
            f"Partition {partition_of(batch)} has no training examples: materialize training_examples for it first."
        )
    champion = registry.champion(features)
    if champion is None:
        raise RecsysError("No model is in service yet: materialize initial_model first.")
    models = {"champion": champion}
    for kind in ("warm", "full"):
        candidate = registry.latest(features, kind, batch)
        if candidate is not None:
            models[kind] = candidate
    past = lake.query("SELECT batch, user_id, movie_id, rating FROM lake_ratings WHERE batch < $batch", {"batch": batch})
    predictions = {
        "global_mean": examples["global_mean"].to_numpy(),
        "bias": BiasBaseline().fit(past).predict(examples),
    }
    loaded = {name: load_version(version) for name, version in models.items()}
    for name, version in models.items():
        predictions[name] = keras_model.predict(loaded[name], examples, config_of(version))
    truth = examples["rating"].to_numpy()
    rows = []
    history = examples["u_count"].to_numpy()
    for name, predicted in predictions.items():
        for segment, select in SEGMENTS.items():
            mask = select(history)
            if mask.sum() == 0:
                continue
            figures = keras_model.metrics(truth[mask], np.asarray(predicted)[mask])
            version = models[name].version if name in models else None
            rows.append({"model": name, "version": version, "segment": segment, "rows": int(mask.sum()), **figures})
    table = pl.DataFrame(
        rows,
        schema={"model": pl.String, "version": pl.String, "segment": pl.String, "rows": pl.Int64, "mse": pl.Float64, "rmse": pl.Float64, "mae": pl.Float64},
    )
    return DayScores(table, models, examples, past, loaded["champion"], predictions["champion"])


def rank_day(scores: DayScores, batch: int, features: Store, serving: ServingResource) -> pl.DataFrame:
    """Test-then-train ranking quality of the champion and of the popularity ranking on day `batch`.

    Two protocols, both with relevant = rated at least 4 on the day:
    - catalog: each user's top 10 of every movie they had not rated before the day (what the
      service recommends, from the state before the day) against what they then rated highly;
    - rated: the movies the user rated on the day, reordered by each ranking (does it put the
      ones they liked first?). This one does not depend on which movies a user happens to find.
    Popularity is the fallback's ranking: recent mean rating with a count threshold, computed
    from the days before, minus each user's rated movies.
    """
    examples, past, champion = scores.examples, scores.past, scores.models["champion"]
    config = config_of(champion)
    global_mean = float(examples["global_mean"][0])
    day_users = examples.group_by("user_id").first().sort("user_id")
    user_ids = day_users["user_id"].to_numpy()
    _, movies_before, _ = state_as_of(features, batch - 1, users=False)
    catalog = catalog_features(stored_movie_features(features), movies_before, global_mean)
    movie_ids = catalog["movie_id"].to_numpy()
    user_vectors = keras_model.embed_users(scores.champion_model, day_users, config)
    movie_vectors = keras_model.embed_movies(scores.champion_model, catalog, config)
    seen = past.select("user_id", "movie_id")
    indptr, indices = ranking.rated_positions(seen, user_ids, movie_ids)
    columns, top = ranking.top_n_unrated(user_vectors, movie_vectors, indptr, indices, ranking.K)
    window = past.filter(pl.col("batch") >= batch - serving.popularity_days)
    popular = ranking.popularity(window, serving.popularity_min_ratings)
    by_day = examples.select(
        "user_id", "movie_id", "rating", pl.Series("champion", scores.champion_predictions, dtype=pl.Float64)
    ).join(popular.select("movie_id", pl.col("mean_rating").alias("popularity")), on="movie_id", how="left")
    lists = {
        ("champion", "catalog"): ranking.as_list(user_ids, movie_ids, columns, top),
        ("popularity", "catalog"): ranking.unrated_from_ranking(popular, day_users["user_id"], seen, ranking.K),
        ("champion", "rated"): ranking.rank_by_score(by_day, "champion"),
        ("popularity", "rated"): ranking.rank_by_score(by_day, "popularity"),
    }
    relevant = examples.filter(pl.col("rating") >= ranking.RELEVANT_RATING).select("user_id", "movie_id")
    history = day_users.select("user_id", (pl.col("u_count") > 0).alias("has_history"))
    segments = {
        "all": relevant,
        "with_history": relevant.join(history.filter("has_history"), on="user_id", how="semi"),
        "no_history": relevant.join(history.filter(~pl.col("has_history")), on="user_id", how="semi"),
    }
    rows = []
    for (model, protocol), recommended in lists.items():
        for segment, wanted in segments.items():
            figures = ranking.ranking_metrics(recommended, wanted)
            if figures["users"]:
                rows.append({
                    "model": model, "version": champion.version if model == "champion" else None, "protocol": protocol,
                    "segment": segment, "users": figures["users"], "ndcg_at_10": figures["ndcg"], "recall_at_10": figures["recall"],
                })  # fmt: skip
    return pl.DataFrame(
        rows,
        schema={"model": pl.String, "version": pl.String, "protocol": pl.String, "segment": pl.String, "users": pl.Int64, "ndcg_at_10": pl.Float64, "recall_at_10": pl.Float64},
    )


def run_day(batch: int, lake: Store, features: Store, modeling: ModelingResource, serving: ServingResource) -> DayReport:
    """Score day `batch` (MSE and ranking), let the gate decide on candidates, then warm-start on the day."""
    scores = score_day(batch, lake, features)
    table, models = scores.table, scores.models
    ranks = rank_day(scores, batch, features, serving)
    partition_key = partition_of(batch)
    day_columns = [pl.lit(partition_key).alias("partition_key"), pl.lit(batch, dtype=pl.Int32).alias("batch")]
    registry.record_metrics(features, batch, table.select(*day_columns, pl.all()))
    registry.record_ranking(features, batch, ranks.select(*day_columns, pl.all()))
    day_mse = {row["model"]: row["mse"] for row in table.filter(pl.col("segment") == "all").iter_rows(named=True)}
    champion = models["champion"]
    # Candidates not yet judged (trained before this day, never champion): only the best of them
    # can be promoted, and only if it clears the margin against the champion.
    pending = [m for k, m in models.items() if k != "champion" and m.status == registry.CANDIDATE]
    decisions = {
        m.version: registry.Decision(m.version, champion.version, day_mse[m.kind], day_mse["champion"], modeling.promotion_margin)
        for m in pending
    }
    best = min(pending, key=lambda m: day_mse[m.kind], default=None)
    promoted_now = best if best is not None and decisions[best.version].clears_margin else None
    for candidate in pending:
        registry.decide_promotion(features, partition_key, batch, decisions[candidate.version], promote=candidate is promoted_now)
    champion_after = promoted_now or champion

    # Warm start: yesterday's warm model, or the champion when one was just promoted (or none yet).
    parent = promoted_now or models.get("warm") or champion
    config = model_config(modeling)
    examples = _examples(features, "batch = $batch", {"batch": batch})
    warmed = keras_model.warm_start(parent.artifact, parent.checksum, config)
    report = keras_model.train(warmed, examples, config, learning_rate=config.warm_learning_rate, epochs=config.warm_epochs)
    warm = _save_version(
        features, modeling, warmed, report, kind="warm", parent=parent.version, first_batch=batch,
        last_batch=batch, learning_rate=config.warm_learning_rate, status=registry.CANDIDATE,
    )  # fmt: skip
    return DayReport(
        batch=batch,
        partition_key=partition_key,
        mse={name: day_mse.get(name) for name in ("global_mean", "bias", "champion", "warm", "full")},
        segments=table,
        ranking=ranks,
        champion_before=champion.version,
        champion_after=champion_after.version,
        decisions=list(decisions.values()),
        warm_version=warm.version,
        warm_seconds=report.seconds,
    )


# --- checks ---------------------------------------------------------------------------------


def monitoring_checks(report: DayReport, features: Store, modeling: ModelingResource) -> list[AssetCheckResult]:
    champion, bias = report.mse["champion"], report.mse["bias"]
    trailing = registry.trailing_mse(features, "champion", report.batch, modeling.trailing_days)
    baseline = median(trailing) if trailing else None
    limit = baseline * (1 + modeling.degradation_tolerance) if baseline is not None else None
    return [
        AssetCheckResult(
            asset_key="model_metrics",
            check_name="champion_beats_bias_baseline",
            passed=bool(champion < bias),
            severity=AssetCheckSeverity.WARN,
            metadata={"champion_mse": champion, "bias_mse": bias, "partition": report.partition_key},
            description=f"champion MSE {champion:.4f} vs user+item bias {bias:.4f} on {report.partition_key}",
        ),
        AssetCheckResult(
            asset_key="model_metrics",
            check_name="champion_mse_not_degraded",
            passed=limit is None or champion <= limit,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "champion_mse": champion,
                "trailing_median": baseline if baseline is not None else float("nan"),
                "tolerance": modeling.degradation_tolerance,
                "trailing_days": len(trailing),
            },
            description=(
                "no earlier days to compare with"
                if limit is None
                else f"champion MSE {champion:.4f} against limit {limit:.4f} (trailing median {baseline:.4f})"
            ),
        ),
    ]


# --- assets ---------------------------------------------------------------------------------


@asset(
    group_name="models",
    deps=[bootstrap_features],
    kinds={"keras", "tensorflow"},
    owners=OWNERS,
    description="A two-tower genre-preference model trained from scratch on the bootstrap slice's "
    "examples; it becomes the first champion.",
)
def initial_model(features_store: StoreResource, modeling: ModelingResource) -> MaterializeResult:
    with user_errors(), features_store.open() as features:
        version = train_full(features, modeling, BOOTSTRAP_BATCH, registry.CANDIDATE)
        registry.make_champion(features, version.version)
    return MaterializeResult(metadata=_version_metadata(version))


def _version_metadata(version: registry.ModelVersion) -> dict:
    return {
        "version": version.version,
        "kind": version.kind,
        "parent": version.parent or "",
        "trained_on": version.trained_on,
        "dagster/row_count": version.rows,
        "artifact": MetadataValue.path(version.artifact),
        "checksum": version.checksum,
        "train_seconds": float(round(version.metrics["seconds"], 3)),
        "examples_per_second": float(round(version.metrics["examples_per_second"])),
        "final_train_loss": float(version.metrics["epoch_losses"][-1]),
    }


@multi_asset(
    specs=[
        AssetSpec(
            "model_metrics",
            group_name="monitoring",
            deps=["training_examples", initial_model],
            partitions_def=daily_partitions,
            kinds={"keras"},
            owners=OWNERS,
            description="Test-then-train: the champion, the latest warm and full models and the global-mean "
            "and user+item-bias baselines (fitted on the past) scored on the day's batch before anything "
            "trains on it; MSE, RMSE, MAE overall and for users with and without history. Then the "
            "promotion gate decides on the candidates.",
        ),
        AssetSpec(
            "warm_model",
            group_name="models",
            deps=[
                "training_examples",
                "model_metrics",
                AssetDep("warm_model", partition_mapping=TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
            ],
            partitions_def=daily_partitions,
            kinds={"keras", "tensorflow"},
            owners=OWNERS,
            description="The day's warm start: yesterday's warm model (or the champion just promoted) "
            "fine-tuned on the day's examples at a low learning rate, optimizer state carried over.",
        ),
    ],
    check_specs=[
        AssetCheckSpec("champion_beats_bias_baseline", asset="model_metrics",
                       description="Warns when the champion does no better than the user+item-bias baseline on the day."),
        AssetCheckSpec("champion_mse_not_degraded", asset="model_metrics",
                       description="Warns when the champion's MSE exceeds the trailing median by more than the tolerance."),
    ],  # fmt: skip
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
)
def daily_models(
    context: AssetExecutionContext,
    lake_store: StoreResource,
    features_store: StoreResource,
    modeling: ModelingResource,
    serving: ServingResource,
):
    reports = []
    with user_errors(), lake_store.open() as lake, features_store.open() as features:
        for key in context.partition_keys:
            report = run_day(batch_of(key), lake, features, modeling, serving)
            context.log.info(
                f"{key}: MSE champion {report.mse['champion']:.4f}, bias {report.mse['bias']:.4f}, "
                f"global mean {report.mse['global_mean']:.4f}; champion {report.champion_after}; warm {report.warm_version}"
            )
            reports.append(report)
        checks = monitoring_checks(reports[-1], features, modeling)
    last = reports[-1]
    floats = {f"mse_{name}": float(value) for name, value in last.mse.items() if value is not None}
    for segment in ("with_history", "no_history"):
        for row in last.segments.filter(pl.col("segment") == segment).iter_rows(named=True):
            floats[f"mse_{row['model']}_{segment}"] = float(row["mse"])
    # Plotted per partition in the UI like MSE: ndcg_at_10_champion is the catalog protocol.
    for row in last.ranking.filter(pl.col("segment") == "all").iter_rows(named=True):
        prefix = "" if row["protocol"] == "catalog" else f"{row['protocol']}_"
        floats[f"{prefix}ndcg_at_10_{row['model']}"] = float(row["ndcg_at_10"])
        floats[f"{prefix}recall_at_10_{row['model']}"] = float(row["recall_at_10"])
    yield MaterializeResult(
        asset_key="model_metrics",
        metadata={
            **floats,
            "champion_version": last.champion_after,
            "promoted": last.champion_after != last.champion_before,
            "days": MetadataValue.md(
                markdown_table(
                    pl.DataFrame(
                        [(r.partition_key, r.mse["champion"], r.mse["bias"], r.mse["global_mean"], r.champion_after) for r in reports],
                        schema=["partition", "champion", "bias", "global_mean", "champion_version"],
                        orient="row",
                    ),
                    limit=len(reports),
                )
            ),
        },
        check_results=checks,
    )
    yield MaterializeResult(
        asset_key="warm_model",
        metadata={"version": last.warm_version, "parent": last.champion_after, "train_seconds": float(round(last.warm_seconds, 3))},
    )


@asset(
    group_name="models",
    deps=[AssetDep("training_examples", partition_mapping=TimeWindowPartitionMapping())],
    partitions_def=weekly_partitions,
    kinds={"keras", "tensorflow"},
    owners=OWNERS,
    description="The weekly full retrain: a model trained from scratch on every example up to the end "
    "of its week (bootstrap included), registered as a candidate for the promotion gate.",
)
def full_model(context: AssetExecutionContext, features_store: StoreResource, modeling: ModelingResource) -> MaterializeResult:
    window = context.partition_time_window
    last_day = (window.end.date() - START_DATE).days - 1
    with user_errors(), features_store.open() as features:
        have = features.scalar("SELECT max(batch) FROM training_examples")
        if have is None or have < last_day:
            raise RecsysError(
                f"The week of {context.partition_key} ends with partition {partition_of(last_day)}, whose training "
                "examples are not built yet: materialize training_examples through that day first."
            )
        version = train_full(features, modeling, last_day, registry.CANDIDATE)
    return MaterializeResult(metadata=_version_metadata(version))
