"""SERVING layer: the champion's embeddings, precomputed recommendations and the popularity fallback.

After a day's promotion decision (model_metrics), the champion's towers embed every user and
every movie of the catalog as they stand at the end of the day; each known user's top-N unrated
movies follow from the embeddings (predicted rating = global mean + user . movie); the popularity
ranking answers users the model does not know. A serving set (one champion version as of one
day) is recorded last, and it is what the API answers from.

A range run computes the set for its last day only: serving is about the present, and each set
replaces the one before it (two are kept; see serving_store.KEEP_SETS).
"""

import time

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from recsys_assets import model as keras_model
from recsys_assets import registry, serving_store
from recsys_assets.checks import user_errors
from recsys_assets.features import state_as_of, stored_movie_features
from recsys_assets.models import config_of, load_version
from recsys_assets.partitions import batch_of, daily_partitions, partition_of
from recsys_assets.reporting import markdown_table
from recsys_assets.transforms import ranking
from recsys_assets.transforms.features import catalog_features, user_features
from recsys_resources import RecsysError, ServingResource, Store, StoreResource

GROUP = "serving"
OWNERS = ["team:ml-platform"]


def _champion(features: Store) -> registry.ModelVersion:
    champion = registry.champion(features)
    if champion is None:
        raise RecsysError("No model is in service yet: materialize initial_model first.")
    return champion


def build_embeddings(features: Store, serving: ServingResource, as_of: int) -> dict:
    """Embed every user and movie with the champion as of batch `as_of`; returns what was done."""
    started = time.perf_counter()
    champion = _champion(features)
    backend, reason = serving_store.prepare_embeddings(features, serving.embedding_backend)
    users, movies, global_mean = state_as_of(features, as_of)
    model, config = load_version(champion), config_of(champion)
    user_rows = user_features(users, global_mean)
    catalog = catalog_features(stored_movie_features(features), movies, global_mean)
    user_vectors = keras_model.embed_users(model, user_rows, config)
    movie_vectors = keras_model.embed_movies(model, catalog, config)
    with features.transaction():
        serving_store.write_embeddings(features, "user", champion.version, as_of, user_rows["user_id"].to_numpy(), user_vectors, backend)
        serving_store.write_embeddings(features, "movie", champion.version, as_of, catalog["movie_id"].to_numpy(), movie_vectors, backend)
    return {
        "model_version": champion.version,
        "backend": backend,
        "backend_reason": reason,
        "users": user_rows.height,
        "movies": catalog.height,
        "dim": int(user_vectors.shape[1]),
        "seconds": time.perf_counter() - started,
    }


def build_popularity(lake: Store, features: Store, serving: ServingResource, as_of: int) -> pl.DataFrame:
    """The popularity ranking over the `popularity_days` batches that end with `as_of`."""
    window = lake.query(
        "SELECT movie_id, rating FROM lake_ratings WHERE batch > $first AND batch <= $as_of",
        {"first": as_of - serving.popularity_days, "as_of": as_of},
    )
    popular = ranking.popularity(window, serving.popularity_min_ratings)
    serving_store.write_popularity(features, as_of, popular)
    return popular


def build_recommendations(features: Store, serving: ServingResource, as_of: int) -> tuple[serving_store.ServingSet, int, float]:
    """Each known user's top-N unrated movies from the champion's stored embeddings as of `as_of`,
    then the serving set that makes them the ones the API answers from."""
    started = time.perf_counter()
    champion = _champion(features)
    backend, _ = serving_store.prepare_embeddings(features, serving.embedding_backend)
    user_ids, user_vectors = serving_store.read_embeddings(features, "user", champion.version, as_of)
    movie_ids, movie_vectors = serving_store.read_embeddings(features, "movie", champion.version, as_of)
    if len(movie_ids) == 0:
        raise RecsysError(
            f"The feature store holds no embeddings of champion {champion.version} as of {partition_of(as_of)}: "
            "materialize user_embeddings and movie_embeddings for that partition first."
        )
    _, _, global_mean = state_as_of(features, as_of, users=False)
    rated = features.query("SELECT user_id, movie_id FROM training_examples WHERE batch <= $as_of", {"as_of": as_of})
    indptr, indices = ranking.rated_positions(rated, user_ids, movie_ids)
    n = serving.recommendations_per_user
    columns, dots = ranking.top_n_unrated(user_vectors, movie_vectors, indptr, indices, n)
    recommendations = ranking.as_list(user_ids, movie_ids, columns, dots).with_columns(
        (pl.col("score") + global_mean).clip(keras_model.MIN_RATING, keras_model.MAX_RATING)
    )
    entry = serving_store.ServingSet(
        model_version=champion.version,
        as_of_batch=as_of,
        partition_key=partition_of(as_of),
        embedding_backend=backend,
        embedding_dim=int(movie_vectors.shape[1]),
        global_mean=global_mean,
        users=len(user_ids),
        movies=len(movie_ids),
        recommendations_per_user=n,
        created_at=registry.now(),
    )
    with features.transaction():
        serving_store.write_recommendations(features, champion.version, as_of, recommendations)
        serving_store.record_serving_set(features, entry)
    return entry, recommendations.height, time.perf_counter() - started


def rated_recommendations(features: Store, version: str, as_of: int) -> int:
    """How many stored recommendations of a set are movies their user had already rated (should be 0)."""
    return int(
        features.scalar(
            "SELECT count(*) FROM batch_recommendations AS r JOIN training_examples AS t "
            "ON t.user_id = r.user_id AND t.movie_id = r.movie_id AND t.batch <= $as_of "
            "WHERE r.model_version = $version AND r.as_of_batch = $as_of",
            {"version": version, "as_of": as_of},
        )
    )


# --- assets ---------------------------------------------------------------------------------


def _last_batch(context: AssetExecutionContext) -> int:
    keys = context.partition_keys
    if len(keys) > 1:
        context.log.info(f"A range of {len(keys)} partitions: serving is computed for its last day, {keys[-1]}.")
    return batch_of(keys[-1])


@multi_asset(
    specs=[
        AssetSpec(
            "user_embeddings",
            group_name=GROUP,
            deps=["model_metrics", "user_genre_profiles"],
            partitions_def=daily_partitions,
            kinds={"keras", "sql"},
            owners=OWNERS,
            description="The champion's user-tower output for every user with ratings, as of the end of the "
            "day (after the day's promotion decision), stored per model version: pgvector or float arrays.",
        ),
        AssetSpec(
            "movie_embeddings",
            group_name=GROUP,
            deps=["model_metrics", "movie_features", "user_genre_profiles"],
            partitions_def=daily_partitions,
            kinds={"keras", "sql"},
            owners=OWNERS,
            description="The champion's movie-tower output for every movie of the catalog as of the end of the "
            "day, stored per model version (with an HNSW cosine index under pgvector, for similarity search).",
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
)
def champion_embeddings(context: AssetExecutionContext, features_store: StoreResource, serving: ServingResource):
    as_of = _last_batch(context)
    with user_errors(), features_store.open() as features:
        done = build_embeddings(features, serving, as_of)
    context.log.info(f"Embeddings of {done['model_version']} stored as {done['backend']}: {done['backend_reason']}.")
    common = {
        "model_version": done["model_version"],
        "embedding_backend": done["backend"],
        "backend_reason": done["backend_reason"],
        "dimensions": done["dim"],
        "seconds": float(round(done["seconds"], 3)),
    }
    yield MaterializeResult(asset_key="user_embeddings", metadata={**common, "dagster/row_count": done["users"]})
    yield MaterializeResult(asset_key="movie_embeddings", metadata={**common, "dagster/row_count": done["movies"]})


@asset(
    group_name=GROUP,
    deps=["lake_ratings"],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    kinds={"polars", "sql"},
    owners=OWNERS,
    description="The cold-start fallback: movies with at least the threshold of ratings in the recent "
    "window of days, ranked by mean rating (then by count). Answers users the model does not know.",
)
def popular_movies(
    context: AssetExecutionContext, lake_store: StoreResource, features_store: StoreResource, serving: ServingResource
) -> MaterializeResult:
    as_of = _last_batch(context)
    with user_errors(), lake_store.open() as lake, features_store.open() as features:
        popular = build_popularity(lake, features, serving, as_of)
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
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    kinds={"sql"},
    owners=OWNERS,
    description="Each known user's top-N movies they have not rated, by the champion's predicted rating, "
    "precomputed per model version; recording it makes it the serving set the API answers from.",
    check_specs=[
        AssetCheckSpec(
            "no_rated_movie_recommended",
            asset="batch_recommendations",
            description="No stored recommendation is a movie its user had already rated.",
        )
    ],
)
def batch_recommendations(
    context: AssetExecutionContext, features_store: StoreResource, serving: ServingResource
) -> MaterializeResult:
    as_of = _last_batch(context)
    with user_errors(), features_store.open() as features:
        entry, rows, seconds = build_recommendations(features, serving, as_of)
        already_rated = rated_recommendations(features, entry.model_version, as_of)
        sample = features.query(
            "SELECT user_id, rank, movie_id, score FROM batch_recommendations WHERE model_version = $version "
            "AND as_of_batch = $as_of ORDER BY user_id, rank LIMIT 10",
            {"version": entry.model_version, "as_of": as_of},
        )
    return MaterializeResult(
        metadata={
            "model_version": entry.model_version,
            "users": entry.users,
            "movies": entry.movies,
            "dagster/row_count": rows,
            "seconds": float(round(seconds, 3)),
            "users_per_second": float(round(entry.users / seconds)) if seconds else 0.0,
            "sample": MetadataValue.md(markdown_table(sample)),
        },
        check_results=[
            AssetCheckResult(
                check_name="no_rated_movie_recommended",
                passed=already_rated == 0,
                severity=AssetCheckSeverity.ERROR,
                metadata={"rated_movies_recommended": already_rated},
            )
        ],
    )
