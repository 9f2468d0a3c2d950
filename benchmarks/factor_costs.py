"""What the rating model's factors add to a day at MovieLens-32M's shape, part by part.

Run after `benchmarks.full_shape --store duckdb`, on the feature store its replay left (a 5M-row
bootstrap and its days): for the last replayed day, the work the factors add to the daily run,
each part timed alone in this process (best of 3):
- reading every rating through the day from the feature store (the models layer reads it once
  for the baselines as well; the serving layer reads it again);
- the warm start's factor pass (one alternating pass over every rating, from the parent's factors);
- folding in the day's users for scoring (each rating at its time, from their history), per model;
- folding in every user as of the end of the day, for the serving embeddings.
"""

from __future__ import annotations

import time

import polars as pl

from benchmarks.common import WORK, write_result
from recsys.models import factors, registry
from recsys.models.versions import config_of, load_factors, rating_history
from recsys.stores import open_store


def best_of(runs: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return round(best, 3), result


def main() -> None:
    store = WORK / "full_shape" / "duckdb" / "features.duckdb"
    if not store.exists():
        raise SystemExit(f"{store} does not exist: run `python -m benchmarks.full_shape --store duckdb` first.")
    with open_store(str(store), read_only=True) as features:
        last = int(features.scalar("SELECT max(batch) FROM training_examples"))
        champion = registry.champion(features)
        read_s, ratings = best_of(3, lambda: rating_history(features, last))
    config = config_of(champion)
    settings, movie_factors = config.factor_settings(), load_factors(champion)
    if movie_factors is None:
        raise SystemExit(f"The champion {champion.version} has no movie factors.")
    day_users = ratings.filter(pl.col("batch") == last).select("user_id").unique()
    users_history = ratings.join(day_users, on="user_id", how="semi")
    warm_s, _ = best_of(3, lambda: factors.fit_movie_factors(ratings, settings, start=movie_factors, iterations=config.factor_warm_iterations))
    fold_s, _ = best_of(3, lambda: factors.fold_in(movie_factors, settings, users_history))
    user_ids = ratings["user_id"].unique().to_numpy()
    latest_s, _ = best_of(3, lambda: factors.fold_in_latest(movie_factors, settings, ratings, user_ids))
    write_result(
        "factor_costs",
        {
            "ratings_through_the_day": ratings.height,
            "day": last,
            "day_users": day_users.height,
            "day_users_history_rows": users_history.height,
            "users": len(user_ids),
            "movies_with_factors": len(movie_factors.movie_ids),
            "read_all_ratings_s": read_s,
            "warm_start_factor_pass_s": warm_s,
            "fold_in_day_for_one_model_s": fold_s,
            "fold_in_every_user_s": latest_s,
            # Scoring folds in for the champion and the latest warm and full models (up to 3); the
            # serving layer reads every rating again and folds in every user.
            "added_per_day_s": round(warm_s + 3 * fold_s + read_s + latest_s, 2),
            "method": "Each part on the full-shape DuckDB replay's feature store, as of its last day, in one "
            "process, best of 3. added_per_day_s = the warm start's pass + 3 fold-ins of the day (champion, "
            "warm, full) + the serving layer's second read of every rating + its fold-in of every user; the "
            "models layer's read of every rating replaced the lake read it made before.",
        },
    )


if __name__ == "__main__":
    main()
