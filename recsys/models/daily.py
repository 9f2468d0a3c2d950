"""A day of the models layer: test-then-train scoring, the promotion gates, then the warm starts.

A day k runs in this order: first every model is scored on day k's examples before anything has
trained on them (the rating champion in service, the latest warm and full candidates, and the
global-mean and user+item-bias baselines fitted on the latest past ratings; the retrieval
champion and candidates, the two-stage list and the popularity rankings on the day's choices),
then each stage's promotion gate decides on its candidates with those figures (rating: MSE;
retrieval: NDCG@10 of returning users), then the day's warm starts fine-tune yesterday's warm
models (or the champions just promoted) on day k. A range of days goes through them one after
another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recsys.calendar import Calendar
from recsys.errors import RecsysError
from recsys.features.build import stored_movie_features
from recsys.features.point_in_time import EXAMPLE_COLUMNS, catalog_features
from recsys.features.state import movie_counts_between, state_as_of
from recsys.models import factors, network, ranking, registry, retrieval, training
from recsys.models.baselines import BiasBaseline
from recsys.models.config import ModelConfig
from recsys.models.versions import (
    LoadedVersions,
    ModelingSettings,
    cold_rating_user,
    config_of,
    examples_where,
    latest_ratings,
    rating_history,
    retrieval_config_of,
    save_version,
    with_factor_slots,
)
from recsys.stores import Store

# The models and baselines whose MSE a day reports.
MSE_MODELS = ("global_mean", "bias", "bias_event_time", "champion", "warm", "full")
# Users of a day the catalog protocol ranks at most (a sample beyond it; see rank_day).
CATALOG_USERS = 5_000
# The bias baselines are fitted on at most the latest this many ratings before the day, so that
# a day's work does not grow with the archive: a fit over all of MovieLens-32M's history would
# read and pass over 32M ratings every day (0.8 s a day at the full-shape benchmark's 5.35M, by
# hand, growing with the history). The rating model's retrains continue over the same number
# (`max_examples_continued`).
BIAS_WINDOW = 2_000_000
# How the retrieval champion and candidates are named in the ranking metrics.
RETRIEVAL_NAMES = {"champion": "retrieval", "warm": "retrieval_warm", "full": "retrieval_full"}

# Most ratings of a replayed day come from users with little or no earlier history, so MSE is
# reported for them apart from the rest (a model can shine on one and fail the other).
SEGMENTS = {
    "all": lambda history: np.ones_like(history, dtype=bool),
    "with_history": lambda history: history > 0,
    "no_history": lambda history: history == 0,
}


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
    rescored: bool = False  # the day had been scored before; its first figures were kept
    retrieval_champion_after: str = ""
    retrieval_warm_version: str = ""


@dataclass
class DayScores:
    """What scoring a day before training on it gives: the MSE table and what it was computed from."""

    table: pl.DataFrame  # model, version, segment, rows, mse, rmse, mae
    models: dict[str, registry.ModelVersion]
    examples: pl.DataFrame  # the day's examples as the champion reads them (its factor slots included)
    champion_model: object
    champion_predictions: np.ndarray
    champion_factors: factors.MovieFactors | None
    history: pl.DataFrame  # the day's users' ratings through the day, to fold users in from

    @property
    def past(self) -> pl.DataFrame:
        """The day's users' ratings before the day."""
        return self.history.filter(pl.col("batch") < self.examples["batch"][0])


def score_day(batch: int, features: Store, calendar: Calendar, loaded: LoadedVersions) -> DayScores:
    """Test before train: every model and baseline on day `batch`, which none has trained on."""
    examples = examples_where(features, "batch = $batch", {"batch": batch})
    if examples.height == 0:
        raise RecsysError(
            f"Partition {calendar.partition_of(batch)} has no training examples: materialize training_examples for it first."
        )
    champion = registry.champion(features)
    if champion is None:
        raise RecsysError("No model is in service yet: materialize initial_model first.")
    models = {"champion": champion}
    for kind in ("warm", "full"):
        candidate = registry.latest(features, kind, batch)
        if candidate is not None:
            models[kind] = candidate
    # The day's users' ratings through the day (the feature store's examples are the lake's clean
    # ratings, each with the global mean the factor model is relative to): what they are folded
    # in from, and their past.
    users_history = rating_history(features, batch, rated_after=batch - 1)
    bias = BiasBaseline().fit(latest_ratings(features, batch, BIAS_WINDOW))
    predictions = {
        "global_mean": examples["global_mean"].to_numpy(),
        "bias": bias.predict(examples),
        # The same fit, its user term recomputed at each rating's time from all earlier ratings.
        "bias_event_time": bias.predict_at_event_time(users_history.filter(pl.col("batch") < batch), examples),
    }
    # Each model reads the day with its own factors: its users folded in from their history,
    # the day's earlier ratings included. Kinds naming one version (the latest full model is
    # often the champion) are scored once.
    slotted, scored = {}, {}
    for name, version in models.items():
        if version.version not in scored:
            read = with_factor_slots(examples, config_of(version), loaded.factors(version), users_history)
            scored[version.version] = read, training.predict(loaded.model(version), read, config_of(version))
        slotted[name], predictions[name] = scored[version.version]
    truth = examples["rating"].to_numpy()
    rows = []
    history = examples["u_count"].to_numpy()
    for name, predicted in predictions.items():
        for segment, select in SEGMENTS.items():
            mask = select(history)
            if mask.sum() == 0:
                continue
            figures = training.metrics(truth[mask], np.asarray(predicted)[mask])
            version = models[name].version if name in models else None
            rows.append({"model": name, "version": version, "segment": segment, "rows": int(mask.sum()), **figures})
    table = pl.DataFrame(
        rows,
        schema={
            "model": pl.String, "version": pl.String, "segment": pl.String, "rows": pl.Int64,
            "mse": pl.Float64, "rmse": pl.Float64, "mae": pl.Float64, "mean_error": pl.Float64,
        },  # fmt: skip
    )
    return DayScores(
        table, models, slotted["champion"], loaded.model(champion), predictions["champion"], loaded.factors(champion), users_history
    )


def retrieval_versions(features: Store, batch: int) -> dict[str, registry.ModelVersion]:
    """The retrieval champion and the latest retrieval candidates trained before day `batch`."""
    found = {}
    champion = registry.champion(features, registry.RETRIEVAL)
    if champion is None:
        raise RecsysError("No retrieval model is in service yet: materialize initial_model first.")
    found["champion"] = champion
    for kind in ("warm", "full"):
        candidate = registry.latest(features, kind, batch, registry.RETRIEVAL)
        if candidate is not None:
            found[kind] = candidate
    return found


def rank_day(
    scores: DayScores,
    retrievers: dict[str, registry.ModelVersion],
    batch: int,
    features: Store,
    popularity: ranking.PopularityWindow,
    calendar: Calendar,
    loaded: LoadedVersions,
) -> pl.DataFrame:
    """Test-then-train ranking quality of every ranking on day `batch`.

    Two protocols, both with relevant = rated at least 4 on the day:
    - catalog: each user's top 10 of every movie they had not rated before the day (what the
      service recommends, from the state before the day) against what they then rated highly
      (for at most CATALOG_USERS users of the day, a random sample on larger days);
    - rated: the movies the user rated on the day, reordered by each ranking (does it put the
      ones they liked first?). This one does not depend on which movies a user happens to find.
    Rankings: the rating champion alone (by predicted rating), the retrieval champion and its
    candidates alone (`retrievers`, from `retrieval_versions`), the two-stage list (retrieval
    candidates ordered with the rating model), and popularity, the fallback's ranking (by recent
    count), computed from the days before, minus each user's rated movies; the same window
    ranked by mean rating is reported beside it.
    "served" is what a user gets from the service: the two-stage list for a user with ratings
    before the day, the cold-start list (the two stages for the towers' cold user) for a new one.
    """
    examples, past, champion = scores.examples, scores.past, scores.models["champion"]
    config = config_of(champion)
    global_mean = float(examples["global_mean"][0])
    # A user's first example of the day carries their state before the day.
    day_users = examples.sort("seq").group_by("user_id", maintain_order=True).first().sort("user_id")
    # The catalog protocol searches every movie for each user: on a day of tens of thousands of
    # users a random sample of them (fixed by the day) measures it within noise, at a fraction.
    ranked = day_users if day_users.height <= CATALOG_USERS else day_users.sample(CATALOG_USERS, seed=batch).sort("user_id")
    user_ids = ranked["user_id"].to_numpy()
    _, movies_before, _ = state_as_of(features, batch - 1, calendar, users=False)
    catalog = catalog_features(stored_movie_features(features), movies_before, global_mean)
    if config.factors:
        catalog = factors.with_movie_factors(catalog, scores.champion_factors, config.factor_settings())
    movie_ids = catalog["movie_id"].to_numpy()
    user_vectors = network.embed_users(scores.champion_model, ranked, config)
    movie_vectors = network.embed_movies(scores.champion_model, catalog, config)
    seen = past.select("user_id", "movie_id").join(ranked.select("user_id"), on="user_id", how="semi")
    indptr, indices = ranking.rated_positions(seen, user_ids, movie_ids)
    columns, top = ranking.top_n_unrated(user_vectors, movie_vectors, indptr, indices, ranking.K)
    champion_list = ranking.as_list(user_ids, movie_ids, columns, top).select("user_id", "rank", "movie_id")

    retrieval_lists, two_stage_list, searched = {}, None, {}
    for kind, version in retrievers.items():
        model, settings = loaded.model(version), retrieval_config_of(version)
        movies_r = retrieval.embed_movie_ids(model, movie_ids)
        if version.version not in searched:  # a candidate that is the champion is searched once
            users_r = retrieval.user_queries(model, user_ids, settings)
            # The champion's search fetches its candidates, whose first K are its own list.
            fetch = max(ranking.K, settings.candidates) if kind == "champion" else ranking.K
            searched[version.version] = ranking.top_n_unrated(users_r, movies_r, indptr, indices, fetch)
        found, found_scores = searched[version.version]
        retrieval_lists[kind] = ranking.as_list(
            user_ids, movie_ids, found[:, : ranking.K], found_scores[:, : ranking.K]
        ).select("user_id", "rank", "movie_id")
        if kind == "champion":
            staged, _ = retrieval.order_candidates(
                found[:, : settings.candidates], found_scores[:, : settings.candidates], user_vectors, movie_vectors,
                ranking.K, settings,
            )  # fmt: skip
            two_stage_list = ranking.as_list(user_ids, movie_ids, staged, np.zeros(staged.shape, np.float32)).select(
                "user_id", "rank", "movie_id"
            )
            # One list for users with no ratings: the two stages for the cold user of both models,
            # all their candidates in order, each user's rated movies dropped.
            cold, _ = retrieval.cold_start(
                model, movies_r, network.embed_users(scores.champion_model, cold_rating_user(global_mean, config), config),
                movie_vectors, settings.candidates, settings,
            )
            cold_ranking = pl.DataFrame({"movie_id": movie_ids[cold[cold >= 0]]}).with_row_index("rank", offset=1)
            cold_start_list = ranking.unrated_from_ranking(cold_ranking, ranked["user_id"], seen, ranking.K)

    window = movie_counts_between(features, batch - popularity.days, batch - 1)
    popular = ranking.rank_popularity(window, popularity.min_ratings)
    best_rated = ranking.rank_popularity(window, popularity.min_ratings, "mean")
    by_day = examples.select(
        "user_id", "movie_id", "rating", pl.Series("champion", scores.champion_predictions, dtype=pl.Float64)
    ).join(popular.select("movie_id", (-pl.col("rank")).alias("popularity")), on="movie_id", how="left")
    fallback_list = ranking.unrated_from_ranking(popular, ranked["user_id"], seen, ranking.K)
    returning = ranked.filter(pl.col("u_count") > 0).select("user_id")
    served = pl.concat([
        two_stage_list.join(returning, on="user_id", how="semi"),
        cold_start_list.join(returning, on="user_id", how="anti"),
    ])  # fmt: skip
    lists = {
        ("champion", "catalog"): champion_list,
        **{(RETRIEVAL_NAMES[kind], "catalog"): found for kind, found in retrieval_lists.items()},
        ("two_stage", "catalog"): two_stage_list,
        ("cold_start", "catalog"): cold_start_list,
        ("popularity", "catalog"): fallback_list,
        ("popularity_by_mean", "catalog"): ranking.unrated_from_ranking(best_rated, ranked["user_id"], seen, ranking.K),
        ("served", "catalog"): served,
        ("champion", "rated"): ranking.rank_by_score(by_day, "champion"),
        ("popularity", "rated"): ranking.rank_by_score(by_day, "popularity"),
    }
    versions = {
        "champion": champion.version, "two_stage": retrievers["champion"].version, "served": retrievers["champion"].version,
        "cold_start": retrievers["champion"].version,
        **{RETRIEVAL_NAMES[kind]: version.version for kind, version in retrievers.items()},
    }  # fmt: skip
    relevant = examples.filter(pl.col("rating") >= ranking.RELEVANT_RATING).select("user_id", "movie_id")
    history = day_users.select("user_id", (pl.col("u_count") > 0).alias("has_history"))
    segments = {
        "all": relevant,
        "with_history": relevant.join(history.filter("has_history"), on="user_id", how="semi"),
        "no_history": relevant.join(history.filter(~pl.col("has_history")), on="user_id", how="semi"),
    }
    ranked_segments = {name: wanted.join(ranked, on="user_id", how="semi") for name, wanted in segments.items()}
    rows = []
    for (model, protocol), recommended in lists.items():
        for segment, wanted in (ranked_segments if protocol == "catalog" else segments).items():
            figures = ranking.ranking_metrics(recommended, wanted)
            if figures["users"]:
                rows.append({
                    "model": model, "version": versions.get(model), "protocol": protocol,
                    "segment": segment, "users": figures["users"], "ndcg_at_10": figures["ndcg"], "recall_at_10": figures["recall"],
                })  # fmt: skip
    return pl.DataFrame(
        rows,
        schema={"model": pl.String, "version": pl.String, "protocol": pl.String, "segment": pl.String, "users": pl.Int64, "ndcg_at_10": pl.Float64, "recall_at_10": pl.Float64},
    )


def warm_start_factors(
    scores: DayScores, parent: registry.ModelVersion, config: ModelConfig, features: Store, batch: int,
    loaded: LoadedVersions,
) -> factors.MovieFactors | None:
    """A warm start's movie factors: its parent's fit carried forward by the users who rated after
    the parent's last batch (`factors.update_movie_factors`, at what their ratings cost); for a
    parent saved without its fit's state, `factor_warm_iterations` alternating passes over every
    rating through the day instead."""
    if not config.factors:
        return None
    start = loaded.factors(parent)
    if start is None or not start.has_fit_state:
        return factors.fit_movie_factors(
            rating_history(features, batch), config.factor_settings(), start=start, iterations=config.factor_warm_iterations
        )
    # The day's users' ratings are at hand; a parent trained before yesterday needs more users.
    since = scores.history if parent.last_batch == batch - 1 else rating_history(features, batch, rated_after=parent.last_batch)
    return factors.update_movie_factors(start, config.factor_settings(), since, parent.last_batch)


def run_day(
    batch: int,
    features: Store,
    modeling: ModelingSettings,
    popularity: ranking.PopularityWindow,
    calendar: Calendar,
) -> DayReport:
    """Score day `batch` (MSE and ranking), let each stage's gate decide on its candidates, then
    warm-start both stages on the day."""
    loaded = LoadedVersions()
    scores = score_day(batch, features, calendar, loaded)
    table, models = scores.table, scores.models
    retrievers = retrieval_versions(features, batch)
    ranks = rank_day(scores, retrievers, batch, features, popularity, calendar, loaded)
    partition_key = calendar.partition_of(batch)
    # A day's test-then-train figures are immutable: when the day is run again, its champion may
    # be one that has learned from the day (promoted on it), so the first scoring stands.
    recorded = registry.recorded_scores(features, batch)
    if recorded is None:
        day_columns = [pl.lit(partition_key).alias("partition_key"), pl.lit(batch, dtype=pl.Int32).alias("batch")]
        registry.record_metrics(features, batch, table.select(*day_columns, pl.all()))
        registry.record_ranking(features, batch, ranks.select(*day_columns, pl.all()))
    else:
        table, ranks = recorded
    day_mse = {row["model"]: row["mse"] for row in table.filter(pl.col("segment") == "all").iter_rows(named=True)}
    champion = models["champion"]
    # Candidates not yet judged: trained before this day, never champion.
    pending = [m for k, m in models.items() if k != "champion" and m.status == registry.CANDIDATE]
    decisions, promoted_now = registry.judge(champion, pending, day_mse, modeling.promotion_margin)
    for candidate, decision in zip(pending, decisions):
        registry.decide_promotion(features, partition_key, batch, decision, promote=candidate is promoted_now)
    # Run again, a day keeps its first decision: the candidate it promoted is champion already.
    promoted_now = promoted_now or registry.promoted_on(features, batch)
    champion_after = promoted_now or champion

    # The retrieval gate: NDCG@10 of the returning users, the ones the retrieval stage serves.
    retrieval_pending = [m for k, m in retrievers.items() if k != "champion" and m.status == registry.CANDIDATE]
    catalog = ranks.filter(pl.col("protocol") == "catalog")
    segment = "with_history" if catalog.filter(pl.col("segment") == "with_history").height else "all"
    day_ndcg = {
        kind: row["ndcg_at_10"]
        for kind, name in RETRIEVAL_NAMES.items()
        for row in catalog.filter((pl.col("model") == name) & (pl.col("segment") == segment)).iter_rows(named=True)
    }
    retrieval_decisions, retrieval_promoted = registry.judge(
        retrievers["champion"], retrieval_pending, day_ndcg, modeling.promotion_margin, metric="ndcg_at_10"
    )
    for candidate, decision in zip(retrieval_pending, retrieval_decisions):
        registry.decide_promotion(
            features, partition_key, batch, decision, promote=candidate is retrieval_promoted, stage=registry.RETRIEVAL
        )
    retrieval_promoted = retrieval_promoted or registry.promoted_on(features, batch, registry.RETRIEVAL)

    # Warm starts: yesterday's warm model, or the champion when one was just promoted (or none yet).
    # A warm model keeps its parent's architecture (and so its recorded settings).
    parent = promoted_now or models.get("warm") or champion
    config = config_of(parent)
    warm_factors = warm_start_factors(scores, parent, config, features, batch, loaded)
    warmed = loaded.for_training(parent, config.warm_learning_rate)
    examples = with_factor_slots(scores.examples.select(EXAMPLE_COLUMNS), config, warm_factors, scores.history)
    report = training.train(warmed, examples, config, learning_rate=config.warm_learning_rate, epochs=config.warm_epochs)
    warm = save_version(
        features, modeling, calendar, warmed, report, kind="warm", parent=parent.version, first_batch=batch,
        last_batch=batch, learning_rate=config.warm_learning_rate, status=registry.CANDIDATE, config=config,
        movie_factors=warm_factors,
    )  # fmt: skip
    retrieval_parent = retrieval_promoted or retrievers.get("warm") or retrievers["champion"]
    retrieval_settings = modeling.retrieval_config()
    day_pairs = scores.examples.select("user_id", "movie_id")
    warmed = loaded.for_training(retrieval_parent, retrieval_settings.warm_learning_rate)
    warmed = retrieval.with_rows_for(warmed, day_pairs, retrieval_settings)
    retrieval_report = retrieval.train_retrieval(
        warmed, day_pairs, retrieval_settings,
        learning_rate=retrieval_settings.warm_learning_rate, epochs=retrieval_settings.warm_epochs,
    )  # fmt: skip
    retrieval_warm = save_version(
        features, modeling, calendar, warmed, retrieval_report, kind="warm", parent=retrieval_parent.version,
        first_batch=batch, last_batch=batch, learning_rate=retrieval_settings.warm_learning_rate,
        status=registry.CANDIDATE, stage=registry.RETRIEVAL,
    )  # fmt: skip
    return DayReport(
        batch=batch,
        partition_key=partition_key,
        mse={name: day_mse.get(name) for name in MSE_MODELS},
        segments=table,
        ranking=ranks,
        champion_before=champion.version,
        champion_after=champion_after.version,
        decisions=decisions,
        rescored=recorded is not None,
        warm_version=warm.version,
        warm_seconds=report.seconds + retrieval_report.seconds,
        retrieval_champion_after=(retrieval_promoted or retrievers["champion"]).version,
        retrieval_warm_version=retrieval_warm.version,
    )


