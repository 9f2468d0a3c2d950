"""Quality on real data: MovieLens 100K replayed through the platform, against the baselines.

The data comes from the `recbole==1.2.1` wheel on PyPI (`recsys.sources.recbole`), downloaded when
this runs and kept under the benchmark folder; it is never committed. `recsys replay` runs it
through Dagster as any archive: a 50,000-row bootstrap, then 10 days of 5,000 rows, each day
scored before anything trains on it. It runs four times: the defaults (event-time features, a
rating model whose genre towers carry latent movie factors with each user folded in at event
time), the same towers without the factors, batch-time features (features as of the end of the
previous day, with the genre towers alone, since the fold-in is event time by construction), and
event-time features with 8-dimensional hashed user and movie ID embeddings in the rating model's
towers: the three ablations.

Written: RMSE pooled over the 50,000 scored ratings, overall and for ratings with and without an
earlier rating by the same user (global mean, user+item bias fitted on earlier days, the same
bias with its user term at event time, the rating model), and NDCG@10 / recall@10 in the
catalog protocol (each user's top 10 of every movie not rated before the day, relevant = rated
>= 4 that day), overall and for users with and without a rating before the day, for every
ranking: most popular by count, best rated, the rating model alone, the retrieval model alone,
the two-stage list, and what the service serves (two-stage for returning users, most popular
for new ones). Targets from issue 11 are stated beside, with the anchors it measured (EASE).
"""

from __future__ import annotations

import statistics

from benchmarks.common import WORK, run_replay, write_result
from recsys.sources.recbole import fetch_ml_100k
from recsys.stores import open_store

BOOTSTRAP, BATCH, DAYS = 50_000, 5_000, 10
# Figures issue 11 measured on the same protocol and that this benchmark does not re-measure.
ANCHORS = {
    "ease_lambda_200_returning_ndcg_at_10": 0.127,
    "ease_plus_most_popular_ndcg_at_10": 0.218,
}
TARGETS = {"champion_rmse_at_most": 0.96, "served_ndcg_at_10_at_least": 0.25, "returning_vs_most_popular_at_least": 1.5}


VARIANTS = {
    "event": ["--feature-time", "event"],
    "without_factors": ["--feature-time", "event", "--rating-factors", "0"],
    # The features as of the end of the previous day, with the genre towers alone: the factor
    # model's fold-in is event time by construction, so with it this would not be batch time.
    "batch": ["--feature-time", "batch", "--rating-factors", "0"],
    "event_with_ids": ["--feature-time", "event", "--rating-id-dim", "8"],
}


def replay(data, name: str) -> dict:
    store = WORK / "movielens_100k" / name
    report, wall = run_replay(data, store, DAYS, BATCH, BOOTSTRAP, *VARIANTS[name])
    summary = report["summary"]
    with open_store(str(store / "features.duckdb"), read_only=True) as features:
        daily = features.query(
            "SELECT batch, model, ndcg_at_10 FROM ranking_metrics WHERE protocol = 'catalog' AND segment = 'all' "
            "AND model IN ('served', 'popularity') ORDER BY batch"
        )
    per_day = {
        model: daily.filter(daily["model"] == model)["ndcg_at_10"].to_list() for model in ("served", "popularity")
    }
    gaps = [s - p for s, p in zip(per_day["served"], per_day["popularity"])]
    ranking = summary["catalog_ranking_by_segment"]
    returning = ranking["with_history"]
    return {
        "wall_s": round(wall, 1),
        "rmse": {
            segment: {model: round(v["rmse"], 4) for model, v in sorted(models.items())}
            for segment, models in summary["rmse_by_segment"].items()
        },
        "rows": {segment: models["champion"]["rows"] for segment, models in summary["rmse_by_segment"].items() if "champion" in models},
        "ndcg_at_10": {
            segment: {model: round(v["ndcg_at_10"], 4) for model, v in sorted(models.items())} for segment, models in ranking.items()
        },
        "recall_at_10": {
            segment: {model: round(v["recall_at_10"], 4) for model, v in sorted(models.items())} for segment, models in ranking.items()
        },
        "user_days": {segment: models["popularity"]["user_days"] for segment, models in ranking.items() if "popularity" in models},
        "returning_served_vs_most_popular": round(returning["served"]["ndcg_at_10"] / returning["popularity"]["ndcg_at_10"], 3),
        "daily_ndcg_at_10": {model: [round(v, 4) for v in values] for model, values in per_day.items()},
        "served_minus_most_popular_by_day": {
            "worst": round(min(gaps), 4),
            "mean": round(statistics.fmean(gaps), 4),
            "stdev": round(statistics.stdev(gaps), 4),
        },
        "seconds_per_layer": summary["seconds_per_layer"],
    }


def main() -> None:
    data = fetch_ml_100k(WORK / "movielens")
    results = {name: replay(data, name) for name in VARIANTS}
    event = results["event"]
    write_result(
        "movielens_100k",
        {
            "dataset": "MovieLens 100K (recbole==1.2.1 wheel, dataset_example/ml-100k)",
            "bootstrap_rows": BOOTSTRAP,
            "batch_size": BATCH,
            "days": DAYS,
            **results,
            "targets": TARGETS,
            "met": {
                "champion_rmse": event["rmse"]["all"]["champion"] <= TARGETS["champion_rmse_at_most"],
                "served_ndcg_at_10": event["ndcg_at_10"]["all"]["served"] >= TARGETS["served_ndcg_at_10_at_least"],
                "returning_vs_most_popular": event["returning_served_vs_most_popular"]
                >= TARGETS["returning_vs_most_popular_at_least"],
            },
            "anchors_from_issue_11": ANCHORS,
            "method": "`recsys replay` in a subprocess per variant (fresh stores and Dagster instance), "
            "5,000-row days after a 50,000-row bootstrap; every figure is test-then-train on the day. "
            "popularity = most rated in the 14-day window (the fallback), popularity_by_mean = best mean rating there; "
            "champion = the rating model ranking by predicted rating; retrieval = the retrieval champion alone; "
            "two_stage = its 50 candidates ordered by retrieval score + 0.9 x predicted deviation; cold_start = the "
            "two stages for the cold user of both towers (the retrieval user tower's output layer on a zero "
            "embedding, the rating tower on no-history features), one list for everyone; served = two_stage "
            "for users with a rating before the day, cold_start for the others. Variants: event = the defaults "
            "(the rating model's towers end with 5 latent movie factors fitted by alternating least squares at "
            "each full training and refined by 2 passes at each warm start, each user's folded in at the rating's "
            "time from their strictly earlier ratings); without_factors = --rating-factors 0; batch = "
            "--feature-time batch --rating-factors 0; event_with_ids = --rating-id-dim 8.",
        },
    )


if __name__ == "__main__":
    main()
