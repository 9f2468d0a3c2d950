"""MODELS layer in Dagster: the initial model, each day's test-then-train scores, promotion and warm
start (`recsys.models.daily`), the weekly full retrain (`recsys.models.versions`), and the full
retrain that persisting drift triggers (`recsys.models.triggers`).

Monitoring and the warm start are one multi-asset because a day runs in that order: every model
is scored on the day before anything trains on it, the gate decides, then the warm start learns
from the day. A range run goes through its days one after another.
"""

# No `from __future__ import annotations`: Dagster reads the asset functions' type hints.
from dataclasses import replace

import polars as pl
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    Definitions,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
    multi_asset,
)

from recsys.calendar import BOOTSTRAP_BATCH, Calendar
from recsys.errors import RecsysError
from recsys.features.drift import record_drift
from recsys.models import registry
from recsys.models.daily import DayReport, run_day
from recsys.models.monitoring import (
    DESCRIPTIONS,
    NOT_DEGRADED,
    degradation_statistic,
    drift_results,
    monitoring_checks,
    mse_history,
    residual_statistics,
)
from recsys.models.triggers import record_trigger, retrain_decision, trigger_table
from recsys.models.versions import prune_artifacts, train_full
from recsys.reporting import markdown_image, markdown_table, mse_chart_png
from recsys_assets.checks import monitoring_results, monitoring_specs
from recsys_assets.failures import user_errors
from recsys_assets.partitions import daily_partitions, weekly_partitions
from recsys_resources import (
    ModelingResource,
    MonitoringResource,
    ServingResource,
    StoreResource,
)

OWNERS = ["team:ml-platform"]


def version_metadata(version: registry.ModelVersion, retrieval: registry.ModelVersion) -> dict:
    return {
        "version": version.version,
        "retrieval_version": retrieval.version,
        "retrieval_train_seconds": float(round(retrieval.metrics["seconds"], 3)),
        "retrieval_final_train_loss": float(round(retrieval.metrics["epoch_losses"][-1], 4)),
        "kind": version.kind,
        "parent": version.parent or "",
        "trained_on": version.trained_on,
        "dagster/row_count": version.rows,
        "artifact": MetadataValue.path(version.artifact),
        "checksum": version.checksum,
        "train_seconds": float(round(version.metrics["seconds"], 3)),
        "examples_per_second": float(round(version.metrics["examples_per_second"])),
        "final_train_loss": float(round(version.metrics["epoch_losses"][-1], 4)),
    }


def day_metrics(report: DayReport) -> dict:
    """One day's figures, rounded as a person reads them: MSE per model (and per user segment),
    NDCG@10 and recall@10 per ranking, and what the promotion gates decided."""
    floats = {f"mse_{name}": round(float(value), 4) for name, value in report.mse.items() if value is not None}
    for segment in ("with_history", "no_history"):
        for row in report.segments.filter(pl.col("segment") == segment).iter_rows(named=True):
            floats[f"mse_{row['model']}_{segment}"] = round(float(row["mse"]), 4)
    # ndcg_at_10_champion is the catalog protocol; the rated protocol is prefixed.
    for row in report.ranking.filter(pl.col("segment") == "all").iter_rows(named=True):
        prefix = "" if row["protocol"] == "catalog" else f"{row['protocol']}_"
        floats[f"{prefix}ndcg_at_10_{row['model']}"] = round(float(row["ndcg_at_10"]), 4)
        floats[f"{prefix}recall_at_10_{row['model']}"] = round(float(row["recall_at_10"]), 4)
    return {
        **floats,
        "champion_version": report.champion_after,
        "promoted": report.champion_after != report.champion_before,
        "retrieval_champion_version": report.retrieval_champion_after,
        # Re-running a day keeps its first test-then-train figures (see recsys.models.daily).
        "rescored": report.rescored,
    }


def registry_tables(features) -> dict:
    """The model registry as the model assets show it: every version's lineage, every decision,
    every retrain triggered by drift."""
    versions, promotions, triggers = registry.version_table(features), registry.promotion_table(features), trigger_table(features)
    champions = versions.filter(pl.col("status") == registry.CHAMPION).select("stage", "version", "kind", "trained_on")

    def table(frame: pl.DataFrame, empty: str) -> MetadataValue:
        return MetadataValue.md(markdown_table(frame, limit=frame.height) if frame.height else empty)

    return {
        "champions": table(champions, "No champion yet."),
        "versions": table(versions, "No version yet."),
        "promotion_decisions": table(promotions, "No promotion decision yet: the first comes on the first scored day."),
        "retrain_triggers": table(triggers, "No retrain has been triggered by drift."),
    }


def definitions(calendar: Calendar) -> Definitions:
    daily = daily_partitions(calendar)

    @asset(
        group_name="models",
        deps=["bootstrap_features"],
        kinds={"keras", "tensorflow"},
        owners=OWNERS,
        description="The first champions of both stages, trained from scratch on the bootstrap slice's "
        "examples: the genre-preference two-tower rating model, and the retrieval two-tower (a row per "
        "user and movie id, in-batch softmax with logQ correction) that picks the candidates it orders.",
    )
    def initial_model(features_store: StoreResource, modeling: ModelingResource) -> MaterializeResult:
        settings = modeling.settings()
        with user_errors(), features_store.open() as features:
            version = train_full(features, settings, calendar, BOOTSTRAP_BATCH, registry.CANDIDATE)
            retrieval = train_full(features, settings, calendar, BOOTSTRAP_BATCH, registry.CANDIDATE, registry.RETRIEVAL)
            registry.make_champion(features, version.version)
            registry.make_champion(features, retrieval.version, registry.RETRIEVAL)
            tables = registry_tables(features)
        return MaterializeResult(metadata={**version_metadata(version, retrieval), **tables})

    @multi_asset(
        specs=[
            AssetSpec(
                "model_metrics",
                group_name="monitoring",
                deps=["training_examples", initial_model],
                partitions_def=daily,
                kinds={"keras"},
                owners=OWNERS,
                description="Test-then-train: the champion, the latest warm and full models and the global-mean "
                "and user+item-bias baselines (fitted on the past; one with its user term at event time) scored "
                "on the day's batch before anything trains on it; MSE, RMSE, MAE overall and for users with and "
                "without an earlier rating. NDCG@10 and recall@10 of every ranking (rating model, retrieval, "
                "two-stage, popularity, what was served). Then each stage's promotion gate decides on its candidates.",
            ),
            AssetSpec(
                "warm_model",
                group_name="models",
                deps=[
                    "training_examples",
                    "model_metrics",
                    AssetDep("warm_model", partition_mapping=TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
                ],
                partitions_def=daily,
                kinds={"keras", "tensorflow"},
                owners=OWNERS,
                description="The day's warm starts of both stages: yesterday's warm model (or the champion just "
                "promoted) fine-tuned on the day's examples at a low learning rate, optimizer state carried over.",
            ),
        ],
        check_specs=monitoring_specs("model_metrics", DESCRIPTIONS, daily),
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def daily_models(
        context: AssetExecutionContext,
        features_store: StoreResource,
        modeling: ModelingResource,
        serving: ServingResource,
        monitoring: MonitoringResource,
    ):
        reports, checks = [], {}
        settings, popularity = modeling.settings(), serving.settings().popularity
        with user_errors(), features_store.open() as features:
            for key in context.partition_keys:
                report = run_day(calendar.batch_of(key), features, settings, popularity, calendar)
                pruned, pruned_bytes = prune_artifacts(features, settings, report.batch)
                context.log.info(
                    f"{key}: MSE champion {report.mse['champion']:.4f}, bias {report.mse['bias']:.4f}, "
                    f"global mean {report.mse['global_mean']:.4f}; champion {report.champion_after}; warm {report.warm_version}"
                )
                # Each day's figures go on its own partition, also when a backfill ran several days
                # in one run: what the Plots tab's Partitions mode and the day's page read.
                context.add_asset_metadata(day_metrics(report), asset_key="model_metrics", partition_key=key)
                context.add_asset_metadata(
                    {"version": report.warm_version, "retrieval_version": report.retrieval_warm_version,
                     "train_seconds": float(round(report.warm_seconds, 2)), "artifacts_deleted": pruned,
                     "artifact_mb_deleted": float(round(pruned_bytes / 1e6, 1))},
                    asset_key="warm_model", partition_key=key,
                )  # fmt: skip
                reports.append(report)
                # The champion's residuals and MSE against the days before: warnings, and what the
                # retrain trigger reads.
                residuals = residual_statistics(report, features, monitoring.thresholds(), calendar)
                results = monitoring_checks(report, features, settings)
                (not_degraded,) = [r for r in results if r.name == NOT_DEGRADED]
                record_drift(features, key, report.batch, [*residuals, degradation_statistic(not_degraded)])
                checks[key] = [*results, *drift_results(residuals)]
            chart = mse_chart_png(mse_history(features))
            registry_metadata = registry_tables(features)
        days = pl.DataFrame(
            [(r.partition_key, r.mse["champion"], r.mse["bias"], r.mse["global_mean"], r.champion_after) for r in reports],
            schema=["partition", "champion", "bias", "global_mean", "champion_version"],
            orient="row",
        ).with_columns(pl.col("champion", "bias", "global_mean").round(4))
        yield MaterializeResult(
            asset_key="model_metrics",
            metadata={
                "mse_chart": MetadataValue.md(markdown_image(chart, "MSE per day: champion against the baselines")),
                "days": MetadataValue.md(markdown_table(days, limit=len(reports))),
            },
            check_results=monitoring_results("model_metrics", checks, context),
        )
        yield MaterializeResult(asset_key="warm_model", metadata=registry_metadata)

    @asset(
        group_name="models",
        deps=[AssetDep("training_examples", partition_mapping=TimeWindowPartitionMapping())],
        partitions_def=weekly_partitions(calendar),
        kinds={"keras", "tensorflow"},
        owners=OWNERS,
        description="The weekly full retrain of both stages up to the end of its week: the rating model's movie "
        "factors on every rating (bootstrap included), its towers continuing the previous full rating model (its "
        "parent) at the warm learning rate on the latest examples its window allows; the retrieval model from "
        "scratch on the latest pairs its budget allows. Registered as candidates for the promotion gates.",
    )
    def full_model(context: AssetExecutionContext, features_store: StoreResource, modeling: ModelingResource) -> MaterializeResult:
        # The week's last day: the day before the next week starts.
        last_day = (context.partition_time_window.end.date() - calendar.start_date).days - 1
        with user_errors(), features_store.open() as features:
            have = features.scalar("SELECT max(batch) FROM training_examples")
            if have is None or have < last_day:
                raise RecsysError(
                    f"The week of {context.partition_key} ends with partition {calendar.partition_of(last_day)}, whose "
                    "training examples are not built yet: materialize training_examples through that day first."
                )
            version = train_full(features, modeling.settings(), calendar, last_day, registry.CANDIDATE)
            retrieval = train_full(features, modeling.settings(), calendar, last_day, registry.CANDIDATE, registry.RETRIEVAL)
            tables = registry_tables(features)
        return MaterializeResult(metadata={**version_metadata(version, retrieval), **tables})

    @asset(
        group_name="models",
        deps=["training_examples", "model_metrics"],
        partitions_def=daily,
        kinds={"keras", "tensorflow"},
        owners=OWNERS,
        description="A full retrain of both stages outside the weekly calendar, trained as the weekly one is, through the "
        "day, requested by the retrain_on_drift sensor when drift or degradation alarms persist "
        "(recsys.models.triggers). A candidate like the weekly retrain's: the promotion gate decides. Why it "
        "was trained is in the registry (retrain_triggers).",
    )
    def triggered_model(
        context: AssetExecutionContext, features_store: StoreResource, modeling: ModelingResource, monitoring: MonitoringResource
    ) -> MaterializeResult:
        batch = calendar.batch_of(context.partition_key)
        with user_errors(), features_store.open() as features:
            decision = retrain_decision(features, batch, monitoring.policy())
            if not decision.retrain:
                context.log.info(f"Materialized without a trigger ({decision.reason}): training as asked.")
            version = train_full(features, modeling.settings(), calendar, batch, registry.CANDIDATE)
            retrieval = train_full(features, modeling.settings(), calendar, batch, registry.CANDIDATE, registry.RETRIEVAL)
            reason = decision.reason if decision.retrain else f"materialized by hand ({decision.reason})"
            record_trigger(features, context.partition_key, batch, version.version, replace(decision, reason=reason))
            tables = registry_tables(features)
        return MaterializeResult(metadata={**version_metadata(version, retrieval), "trigger": reason, **tables})

    return Definitions(assets=[initial_model, daily_models, full_model, triggered_model])
