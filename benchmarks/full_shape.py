"""MovieLens-32M's shape through the real pipeline: 200,948 users and 87,585 movies, a 5,000,000-row
bootstrap, then 50,000-row days (30 on DuckDB, 10 on PostgreSQL by default), one Dagster run per
day as the schedule makes them, with the weekly retrains they complete.

Measured: each day's wall seconds and its steps' (days on which either stage's champion changed
apart, since those rank every user again), the weekly retrain's seconds per million examples,
peak RSS, and from them the projected time of the whole archive: its 541 days and 77 weekly
retrains. A retrain's parts grow differently with the history, so each is projected on its own
from the registry's training seconds: the rating towers per example-epoch seen, the retrieval
model per pair seen (3x a rating example on a 2-core CPU), and the rest (reading the examples,
the factor fit, the factor slots, saving) per example of the history.

The archive is synthetic (`recsys generate`'s model with MovieLens-32M's users and movies), cut
to the rows the replay needs. It stands for a late day of the archive, where the whole population
exists: 80% of the users and movies are there from the start, the rest arrive over the replayed
rows (each new user with a first session), and users rate in sessions, so a 50k day has a few
thousand distinct users (MovieLens 100K's replay: about a thousand per 50k ratings).
"""

from __future__ import annotations

import argparse
import math
import resource
from statistics import fmean

from benchmarks.common import PG_SERVER, WORK, run_replay, store_base, write_result
from recsys.calendar import BOOTSTRAP_BATCH
from recsys.models import registry
from recsys.models.config import ModelConfig
from recsys.models.retrieval import RetrievalConfig
from recsys.settings import store_urls
from recsys.sources import synthetic
from recsys.stores import Store, open_store

USERS, MOVIES, ARCHIVE_ROWS = 200_948, 87_585, 32_000_204  # MovieLens 32M
BOOTSTRAP, BATCH = 5_000_000, 50_000
ARCHIVE_DAYS = math.ceil((ARCHIVE_ROWS - BOOTSTRAP) / BATCH)
DAILY_STEPS = {
    "lake": ("lake_ratings",),
    "features": ("daily_features",),
    "models": ("daily_models",),
    "serving": ("champion_embeddings", "popular_movies", "batch_recommendations"),
}


def archive(days: int):
    path = WORK / f"ml32m-shape-{days}"
    if not (path / "truth.json").exists():
        synthetic.generate(
            path, BOOTSTRAP + days * BATCH, seed=0, n_users=USERS, n_movies=MOVIES,
            initial_user_fraction=0.8, initial_movie_fraction=0.8,
        )  # fmt: skip
    return path


def week_examples(week: int) -> int:
    """The examples a full retrain after week `week` (0-based) trains on: the bootstrap and the days so far."""
    return BOOTSTRAP + 7 * (week + 1) * BATCH


def retrieval_pairs_seen(examples: int) -> int:
    """Pairs a full retrieval training sees on a history of `examples`: its epochs over at most the
    latest `max_pairs_seen` of them (`versions.train_full`)."""
    config = RetrievalConfig()
    pairs = min(examples, config.max_pairs_seen)
    return config.full_epochs(pairs) * pairs


def rating_examples_seen(examples: int) -> int:
    """Examples the rating towers of a full retrain see on a history of `examples`: every weekly
    retrain continues the previous full model (the bootstrap's, for the first) for
    `retrain_epochs` over at most the latest `max_examples_continued` (`versions.train_full`)."""
    config = ModelConfig()
    return config.retrain_epochs * min(examples, config.max_examples_continued)


def examples_seen(week: int) -> int:
    """Examples (rating) plus pairs (retrieval) a full retrain after week `week` sees: each
    model's epochs over what it learns from."""
    examples = week_examples(week)
    return rating_examples_seen(examples) + retrieval_pairs_seen(examples)


def retrain_rates(features: Store, weekly_s: float) -> dict | None:
    """Seconds per unit of each part of the replay's weekly retrains: the rating towers per
    example-epoch, the retrieval model per pair-epoch (both from the registry's training
    seconds), the rest of the step (reading the history, the factor fit over every rating, each
    trained example's user folded in from the history, saving) per example of the history."""
    rating = [v for v in registry.of_kind(features, "full") if v.last_batch > BOOTSTRAP_BATCH]
    retrieval = [v for v in registry.of_kind(features, "full", registry.RETRIEVAL) if v.last_batch > BOOTSTRAP_BATCH]
    if not rating or len(rating) != len(retrieval):
        return None

    def seen(versions: list) -> int:
        return sum(v.metrics["examples"] * v.metrics["epochs"] for v in versions)

    rating_s = sum(v.metrics["seconds"] for v in rating)
    retrieval_s = sum(v.metrics["seconds"] for v in retrieval)
    return {
        "retrains": len(rating),
        "rating_towers_s": round(rating_s, 1),
        "retrieval_s": round(retrieval_s, 1),
        "rest_s": round(weekly_s - rating_s - retrieval_s, 1),
        "rating_s_per_million_example_epochs": round(rating_s / seen(rating) * 1e6, 3),
        "retrieval_s_per_million_pairs": round(retrieval_s / seen(retrieval) * 1e6, 3),
        "rest_s_per_million_examples": round((weekly_s - rating_s - retrieval_s) / sum(week_examples(w) for w in range(len(rating))) * 1e6, 3),
    }


def projected_retrain_s(rates: dict, week: int) -> float:
    """A retrain after week `week` at `retrain_rates`: each part times what it would see."""
    examples = week_examples(week)
    return (
        rates["rating_s_per_million_example_epochs"] * rating_examples_seen(examples)
        + rates["retrieval_s_per_million_pairs"] * retrieval_pairs_seen(examples)
        + rates["rest_s_per_million_examples"] * examples
    ) / 1e6


def day_figures(days: list[dict]) -> dict:
    """Mean seconds per day and per layer, for days with and without a champion change (the first
    day counted with them), and the changed days split by stage: a new rating champion alone
    orders stored retrieval candidates again, a new retrieval champion (or the first day)
    searches the catalog for everyone."""

    def summary(chosen: list[dict]) -> dict:
        if not chosen:
            return {"days": 0}
        layers = {
            layer: round(fmean(sum(d["step_seconds"].get(s, 0.0) for s in steps) for d in chosen), 2)
            for layer, steps in DAILY_STEPS.items()
        }
        return {"days": len(chosen), "wall_s": round(fmean(d["daily_run_s"] for d in chosen), 2), "steps_s": layers}

    # The first day has no lists to carry: it searches the catalog for everyone, as a day with a
    # new retrieval champion does, whether or not a champion changed.
    searched = [d for i, d in enumerate(days) if i == 0 or d["retrieval_promoted"]]
    changed = [d for d in days if d in searched or d["promoted"]]
    return {
        "champion_changed": summary(changed),
        "champion_unchanged": summary([d for d in days if d not in changed]),
        "rating_champion_only": summary([d for d in changed if d not in searched]),
        "retrieval_champion_changed": summary(searched),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--days", type=int, default=None, help="days replayed (default: 30 on DuckDB, 10 on PostgreSQL)")
    args = parser.parse_args()
    days = args.days or (30 if args.store == "duckdb" else 10)
    data = archive(days)
    base = store_base(args.store, "full_shape") if args.store == "postgres" else WORK / "full_shape" / "duckdb"
    home = WORK / "full_shape" / args.store / "dagster_home"
    report, wall = run_replay(data, base, days, BATCH, BOOTSTRAP, home=home)
    summary, steps = report["summary"], report["summary"]["seconds_per_job_step"]
    weekly = steps.get("weekly_retrain", {})
    weekly_runs = days // 7
    weekly_s = sum(weekly.values())
    seen = sum(examples_seen(week) for week in range(weekly_runs))
    per_million = weekly_s / (seen / 1e6) if weekly_runs else None
    bootstrap_s = sum(steps.get("bootstrap", {}).values())
    for day in report["days"]:
        # The daily run's own wall time: the day's seconds less a weekly retrain that followed it.
        day["daily_run_s"] = sum(day["step_seconds"].values())
    figures = day_figures(report["days"])
    changed_share = figures["champion_changed"]["days"] / days
    mean_day = fmean(d["daily_run_s"] for d in report["days"])
    archive_weeks = ARCHIVE_DAYS // 7
    with open_store(store_urls(str(base))["features"]) as features:
        rates = retrain_rates(features, weekly_s)
    if rates is None:  # no weekly retrain in the replay: linear in examples seen (none measured: 0)
        projected_weekly = (per_million or 0.0) * sum(examples_seen(week) for week in range(archive_weeks)) / 1e6
    else:
        projected_weekly = sum(projected_retrain_s(rates, week) for week in range(archive_weeks))
    write_result(
        f"full_shape_{args.store}",
        {
            "store": args.store,
            "users": USERS,
            "movies": MOVIES,
            "bootstrap_rows": BOOTSTRAP,
            "batch_size": BATCH,
            "days": days,
            "wall_s": round(wall, 1),
            "bootstrap_s": round(bootstrap_s, 1),
            "bootstrap_steps_s": steps.get("bootstrap", {}),
            "per_day": figures,
            "mean_day_s": round(mean_day, 2),
            "champion_changed_share": round(changed_share, 3),
            "weekly_retrains": weekly_runs,
            "weekly_retrain_steps_s": weekly,
            "weekly_retrain_examples_seen": seen,
            "weekly_retrain_s_per_million_examples_seen": round(per_million, 2) if per_million else None,
            "weekly_retrain_parts": rates,
            "projected_last_retrain_s": round(projected_retrain_s(rates, archive_weeks - 1)) if rates else None,
            "days_detail": [
                {k: d[k] for k in ("partition", "seconds", "daily_run_s", "step_seconds", "promoted", "retrieval_promoted")}
                for d in report["days"]
            ],
            "projection": {
                "archive_days": ARCHIVE_DAYS,
                "weekly_retrains": archive_weeks,
                "days_s": round(ARCHIVE_DAYS * mean_day),
                "weekly_retrains_s": round(projected_weekly),
                "bootstrap_s": round(bootstrap_s),
                "total_hours": round((ARCHIVE_DAYS * mean_day + projected_weekly + bootstrap_s) / 3600, 1),
                "assumes": "days cost their measured mean (champion changes at the measured rate); a weekly retrain "
                "costs each part's measured rate (weekly_retrain_parts) times what it would see: the rating towers "
                "retrain_epochs over at most the latest max_examples_continued of the bootstrap + 350k examples a "
                "week so far (continuing the previous full model), the retrieval model the pairs it "
                "sees (retrieval_pairs_seen: at most the latest max_pairs_seen), "
                "the rest the whole history's examples",
            },
            "mean_mse": summary["mean_mse"],
            # Test-then-train NDCG@10 over the catalog for users with a rating before the day: the
            # users the retrieval stage serves (new users get the cold-start list).
            "returning_users_ndcg_at_10": {
                model: round(ranks["ndcg_at_10"], 4)
                for model, ranks in summary["catalog_ranking_by_segment"]["with_history"].items()
            },
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            "pg_server": PG_SERVER.rsplit("@", 1)[-1] if args.store == "postgres" else None,
            "method": "`recsys replay` in a subprocess (fresh stores and Dagster instance), one run per day; step "
            "seconds are Dagster's step durations from the replay report.",
        },
    )


if __name__ == "__main__":
    main()
