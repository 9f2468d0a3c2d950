"""What the rating model's factors add to a day at MovieLens-32M's shape, part by part, and the
serving layer's embeddings step with and without a champion change.

Run after `benchmarks.full_shape --store duckdb`, on the feature store its replay left (a 5M-row
bootstrap and its days): for the last replayed day, the work the factors add to the daily run,
each part timed alone in this process (best of 3):
- reading every rating through the day from the feature store (the models layer reads it once
  for the baselines as well);
- the warm start's factors: the update from the last day's users that the day made (its warm
  version's parent's fit carried forward by the users who rated since), and beside it the pass
  over every rating it replaced (what a parent saved without its fit's state still gets);
- folding in the day's users for scoring (each rating at its time, from their history), per model;
- for the serving embeddings: on a day without a champion change, reading the day's users'
  ratings and folding them in; when the champion changed, reading every rating and folding in
  every user.
Then, on a copy of the store, the whole embeddings step (`build_embeddings`) as of the last day:
once with a serving set of the same champion the day before (the day's users embedded, the
others copied), once without (everyone embedded).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks.common import WORK, write_result
from recsys.calendar import Calendar
from recsys.features.state import state_as_of
from recsys.models import factors, registry
from recsys.models.config import EMBEDDING_DIM
from recsys.models.versions import config_of, load_factors, rating_history
from recsys.serving import store as serving_store
from recsys.serving.build import ServingSettings, build_embeddings
from recsys.settings import DEFAULT_START_DATE, parse_date
from recsys.stores import open_store


def best_of(runs: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return round(best, 3), result


def embeddings_step(store: Path, last: int) -> dict:
    """The embeddings step as of `last` on a copy of `store`: with the champion's serving set of
    the day before in place (recorded here from its embeddings as of that day), then without."""
    calendar, serving = Calendar(parse_date(DEFAULT_START_DATE)), ServingSettings()
    with tempfile.TemporaryDirectory(dir=WORK) as scratch:
        copy = Path(scratch) / "features.duckdb"
        shutil.copy(store, copy)
        with open_store(str(copy)) as features:
            champion = registry.champion(features)
            features.execute("DELETE FROM serving_sets")
            build_embeddings(features, serving, last - 1, calendar)
            _, movies, global_mean = state_as_of(features, last - 1, calendar, users=False)
            set_before = serving_store.ServingSet(
                model_version=champion.version, as_of_batch=last - 1, partition_key=calendar.partition_of(last - 1),
                embedding_backend=serving_store.ARRAY, embedding_dim=EMBEDDING_DIM, global_mean=global_mean, users=0, movies=movies.height,
                recommendations_per_user=serving.recommendations_per_user, created_at=registry.now(), retrieval_version="",
            )  # fmt: skip
            serving_store.record_serving_set(features, set_before)
            day = build_embeddings(features, serving, last, calendar)
            features.execute("DELETE FROM serving_sets")
            everyone = build_embeddings(features, serving, last, calendar)
    if day["carried_from"] is None or everyone["carried_from"] is not None:
        raise SystemExit("The embeddings step did not take the paths this benchmark times.")
    return {
        "day_users_embedded": day["users_embedded"],
        "users_carried": day["users_carried"],
        "without_champion_change_s": round(day["seconds"], 3),
        "with_champion_change_s": round(everyone["seconds"], 3),
    }


def main() -> None:
    store = WORK / "full_shape" / "duckdb" / "features.duckdb"
    if not store.exists():
        raise SystemExit(f"{store} does not exist: run `python -m benchmarks.full_shape --store duckdb` first.")
    with open_store(str(store), read_only=True) as features:
        last = int(features.scalar("SELECT max(batch) FROM training_examples"))
        champion = registry.champion(features)
        warm = registry.latest(features, "warm", last + 1)
        parent = registry.get(features, warm.parent) if warm is not None else None
        if parent is None or parent.last_batch >= last:
            raise SystemExit("The replay's last day has no warm start to time.")
        since = rating_history(features, last, rated_after=parent.last_batch)
        read_s, ratings = best_of(3, lambda: rating_history(features, last))
        read_day_s, day_history = best_of(3, lambda: rating_history(features, last, rated_after=last - 1))
    config = config_of(champion)
    settings, movie_factors = config.factor_settings(), load_factors(champion)
    if movie_factors is None:
        raise SystemExit(f"The champion {champion.version} has no movie factors.")
    day_users = ratings.filter(pl.col("batch") == last).select("user_id").unique()
    users_history = ratings.join(day_users, on="user_id", how="semi")
    pass_s, _ = best_of(3, lambda: factors.fit_movie_factors(ratings, settings, start=movie_factors, iterations=config.factor_warm_iterations))
    parent_factors = load_factors(parent)
    if parent_factors is None or not parent_factors.has_fit_state:
        raise SystemExit(f"{parent.version}'s factors were saved without their fit's state: replay again at this commit.")
    warm_s, _ = best_of(3, lambda: factors.update_movie_factors(parent_factors, settings, since, parent.last_batch))
    fold_s, _ = best_of(3, lambda: factors.fold_in(movie_factors, settings, users_history))
    user_ids = ratings["user_id"].unique().to_numpy()
    latest_s, _ = best_of(3, lambda: factors.fold_in_latest(movie_factors, settings, ratings, user_ids))
    latest_day_s, _ = best_of(3, lambda: factors.fold_in_latest(movie_factors, settings, day_history, day_users["user_id"].to_numpy()))
    step = embeddings_step(store, last)
    # Scoring folds in for the champion and the latest warm and full models (up to 3).
    models_layer = warm_s + 3 * fold_s
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
            "warm_start_factor_update_s": warm_s,
            "warm_start_update_history_rows": since.height,
            "warm_start_factor_pass_over_every_rating_s": pass_s,
            "fold_in_day_for_one_model_s": fold_s,
            "read_day_users_ratings_s": read_day_s,
            "fold_in_day_users_latest_s": latest_day_s,
            "fold_in_every_user_s": latest_s,
            "added_per_day_s": round(models_layer + read_day_s + latest_day_s, 2),
            "added_on_champion_change_s": round(models_layer + read_s + latest_s, 2),
            "embeddings_step": step,
            "method": "Each part on the full-shape DuckDB replay's feature store, as of its last day, in one "
            "process, best of 3. added_per_day_s (no champion change) = the warm start's factor update + 3 fold-ins of "
            "the day (champion, warm, full) + the serving layer's read of the day's users' ratings and their "
            "fold-in; added_on_champion_change_s: the serving layer reads every rating and folds in every user "
            "instead. The models layer's read of every rating replaced the lake read it made before. "
            "embeddings_step: build_embeddings once each way on a copy of the store, the serving set of the "
            "day before recorded from the champion's embeddings as of that day.",
        },
    )


if __name__ == "__main__":
    main()
