"""SERVING layer in Dagster: the champion's embeddings, the popularity fallback and precomputed
recommendations (`recsys.serving.build`), recorded as the serving set the API answers from.

A range run computes the set for its last day only: serving is about the present, and each set
replaces the one before it (two are kept; see recsys.serving.store.KEEP_SETS).
"""

# No `from __future__ import annotations`: Dagster reads the asset functions' type hints.
import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from recsys.calendar import Calendar
from recsys.reporting import markdown_table
from recsys.serving.build import (
    build_embeddings,
    build_popularity,
    build_recommendations,
    rated_recommendations,
)
from recsys_assets.failures import user_errors
from recsys_assets.partitions import daily_partitions
from recsys_resources import ServingResource, StoreResource

GROUP = "serving"
OWNERS = ["team:ml-platform"]


def last_batch(context: AssetExecutionContext, calendar: Calendar) -> int:
    keys = context.partition_keys
    if len(keys) > 1:
        context.log.info(f"A range of {len(keys)} partitions: serving is computed for its last day, {keys[-1]}.")
    return calendar.batch_of(keys[-1])


def definitions(calendar: Calendar) -> Definitions:
    daily = daily_partitions(calendar)

    @multi_asset(
        specs=[
            AssetSpec(
                "user_embeddings",
                group_name=GROUP,
                deps=["model_metrics", "user_genre_profiles"],
                partitions_def=daily,
                kinds={"keras", "sql"},
                owners=OWNERS,
                description="The champion's user-tower output for every user with ratings, as of the end of the "
                "day (after the day's promotion decision), stored per model version: pgvector or float arrays. "
                "Only the day's users are embedded again while the champion stays; the others keep their vectors, "
                "which are not copied: a day's set reads each user's newest vector of the version.",
            ),
            AssetSpec(
                "movie_embeddings",
                group_name=GROUP,
                deps=["model_metrics", "movie_features", "user_genre_profiles"],
                partitions_def=daily,
                kinds={"keras", "sql"},
                owners=OWNERS,
                description="The champion's movie-tower output for every movie of the catalog as of the end of the "
                "day, stored per model version (with an HNSW cosine index under pgvector, for similarity search).",
            ),
        ],
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def champion_embeddings(context: AssetExecutionContext, features_store: StoreResource, serving: ServingResource):
        as_of = last_batch(context, calendar)
        with user_errors(), features_store.open() as features:
            done = build_embeddings(features, serving.settings(), as_of, calendar)
        context.log.info(f"Embeddings of {done['model_version']} stored as {done['backend']}: {done['backend_reason']}.")
        if done["carried_from"] is not None:
            context.log.info(
                f"{done['users_embedded']:,} users embedded again (rated since {calendar.partition_of(done['carried_from'])}), "
                f"{done['users_carried']:,} keep their vectors from that day's set or before."
            )
        common = {
            "model_version": done["model_version"],
            "embedding_backend": done["backend"],
            "backend_reason": done["backend_reason"],
            "dimensions": done["dim"],
            "seconds": float(round(done["seconds"], 3)),
        }
        yield MaterializeResult(
            asset_key="user_embeddings",
            metadata={**common, "dagster/row_count": done["users"], "users_embedded": done["users_embedded"], "users_carried": done["users_carried"]},
        )
        yield MaterializeResult(asset_key="movie_embeddings", metadata={**common, "dagster/row_count": done["movies"]})


    @asset(
        group_name=GROUP,
        # Counted from the feature store's per-day movie deltas, so after the day's features.
        deps=["training_examples"],
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"polars", "sql"},
        owners=OWNERS,
        description="The cold-start fallback: movies with at least the threshold of ratings in the recent "
        "window of days, ranked by how often they were rated (then by mean rating). Answers users the model does not know.",
    )
    def popular_movies(
        context: AssetExecutionContext, features_store: StoreResource, serving: ServingResource
    ) -> MaterializeResult:
        as_of = last_batch(context, calendar)
        with user_errors(), features_store.open() as features:
            popular = build_popularity(features, serving.settings(), as_of)
        return MaterializeResult(
            metadata={
                "dagster/row_count": popular.height,
                "window_days": serving.popularity_days,
                "min_ratings": serving.popularity_min_ratings,
                "top": MetadataValue.md(markdown_table(popular.head(10))),
            }
        )


    @asset(
        group_name=GROUP,
        deps=["user_embeddings", "movie_embeddings", "popular_movies", "training_examples"],
        partitions_def=daily,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"sql"},
        owners=OWNERS,
        description="Each known user's top-N movies they have not rated, in two stages (the retrieval champion's "
        "candidates ordered with the rating champion's predictions), precomputed per model version; recording it "
        "makes it the serving set the API answers from. Without a promotion since the previous set, only the users "
        "who rated since then are ranked again and written; the set keeps the others' lists where they were written.",
        check_specs=[
            AssetCheckSpec(
                "no_rated_movie_recommended",
                asset="batch_recommendations",
                description="No stored recommendation is a movie its user had already rated.",
                partitions_def=daily,
            )
        ],
    )
    def batch_recommendations(
        context: AssetExecutionContext, features_store: StoreResource, serving: ServingResource
    ) -> MaterializeResult:
        as_of = last_batch(context, calendar)
        with user_errors(), features_store.open() as features:
            built = build_recommendations(features, serving.settings(), as_of, calendar)
            entry = built.entry
            already_rated = rated_recommendations(features, entry.model_version, as_of)
            # The set's first user's list (the set's users are those of its version's lists written
            # as of its batch): ordering all of the set's rows for ten took PostgreSQL 2 s.
            sample = features.query(
                "SELECT user_id, rank, movie_id, score FROM recommendation_rows WHERE model_version = $version "
                "AND as_of_batch = $as_of AND user_id = (SELECT min(user_id) FROM recommendation_lists "
                "WHERE model_version = $version AND as_of_batch <= $as_of) ORDER BY rank LIMIT 10",
                {"version": entry.model_version, "as_of": as_of},
            )
        return MaterializeResult(
            metadata={
                "model_version": entry.model_version,
                "users": entry.users,
                "movies": entry.movies,
                "dagster/row_count": entry.users,  # one list per user
                "users_ranked": built.users_ranked,
                "users_carried": built.users_carried,
                "candidates_searched": built.users_searched,
                "candidates_reused": built.candidates_reused,
                "carried_from": calendar.label(built.carried_from) if built.carried_from is not None else "none: everyone ranked",
                "seconds": float(round(built.seconds, 3)),
                # Scores are stored as REAL: two decimals read better than float32's widened digits.
                "sample": MetadataValue.md(markdown_table(sample.with_columns(pl.col("score").round(2)))),
            },
            check_results=[
                AssetCheckResult(
                    check_name="no_rated_movie_recommended",
                    passed=already_rated == 0,
                    severity=AssetCheckSeverity.ERROR,
                    metadata={"partition": calendar.partition_of(as_of), "rated_movies_recommended": already_rated},
                    description=f"{calendar.partition_of(as_of)}: {already_rated} recommended movies were already rated by their user.",
                )
            ],
        )

    return Definitions(assets=[champion_embeddings, popular_movies, batch_recommendations])
