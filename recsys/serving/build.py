"""SERVING layer: the champion's embeddings, precomputed recommendations and the popularity fallback.

After a day's promotion decision, the rating champion's towers embed every user and every movie
of the catalog as they stand at the end of the day (predicted rating = global mean + user .
movie); each known user's top-N unrated movies come in two stages, the retrieval champion's
candidates ordered with those predictions (`recsys.models.retrieval.two_stage`); the popularity
ranking answers users the model does not know. A serving set (the champions' versions as of one
day) is recorded last, and it is what the API answers from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recsys.calendar import Calendar
from recsys.errors import RecsysError
from recsys.features.build import stored_movie_features
from recsys.features.point_in_time import catalog_features, user_features
from recsys.features.state import movie_counts_between, state_as_of, user_state_as_of, users_as_of
from recsys.lake.cleaning import MAX_RATING, MIN_RATING
from recsys.models import factors, network, ranking, registry, retrieval
from recsys.models.versions import (
    cold_rating_user,
    config_of,
    load_factors,
    load_version,
    rating_history,
    retrieval_config_of,
    users_rated_between,
)
from recsys.serving import store as serving_store
from recsys.stores import Store


@dataclass(frozen=True)
class ServingSettings:
    """How recommendations are precomputed and what the cold-start fallback ranks."""

    recommendations_per_user: int = 20  # movies precomputed per user (the API's largest n)
    popularity: ranking.PopularityWindow = field(default_factory=ranking.PopularityWindow)
    # auto: pgvector on a PostgreSQL server that offers it, otherwise float arrays; array: always arrays.
    embedding_backend: str = "auto"
    # Users who did not rate keep their vector from the previous serving set of the same champion
    # unless the global mean (a user tower input) moved by more than this many stars since; a
    # 50k day moves it by about 0.001 at 5M ratings.
    carry_mean_shift: float = 0.01



def _champion(features: Store, stage: str = registry.RATING) -> registry.ModelVersion:
    champion = registry.champion(features, stage)
    if champion is None:
        raise RecsysError("No model is in service yet: materialize initial_model first.")
    return champion


def build_embeddings(features: Store, serving: ServingSettings, as_of: int, calendar: Calendar) -> dict:
    """Embed users and every movie with the champion as of batch `as_of`; returns what was done.

    Work proportional to the day: when the previous serving set had the same champion, only the
    users who rated since then are embedded again, and the set keeps the others' vectors (their
    features, ratings and folded-in factors are unchanged; a set reads each user's newest row,
    `serving_store.read_embeddings`). What a kept vector misses is the global mean's move since,
    one of the user tower's inputs: more than `serving.carry_mean_shift` and everyone is embedded
    again. Movies are always all embedded (their features change every day, and the whole
    catalog is a fraction of the users' cost).
    """
    started = time.perf_counter()
    champion = _champion(features)
    backend, reason = serving_store.prepare_embeddings(features, serving.embedding_backend)
    _, movies, global_mean = state_as_of(features, as_of, calendar, users=False)
    known_users = users_as_of(features, as_of)  # the set's users: those who rated as of the batch
    previous = serving_store.serving_set_before(features, as_of)
    carried_from = (
        previous.as_of_batch
        if previous is not None
        and previous.model_version == champion.version
        and abs(previous.global_mean - global_mean) <= serving.carry_mean_shift
        else None
    )
    # The state of the users who rated since, alone.
    rated = users_rated_between(features, carried_from, as_of) if carried_from is not None else None
    users = user_state_as_of(features, as_of, calendar, only=rated)
    model, config = load_version(champion), config_of(champion)
    user_rows = user_features(users, global_mean)
    catalog = catalog_features(stored_movie_features(features), movies, global_mean)
    if config.factors:
        # Each user folded in from all their ratings so far, each movie with its factor row.
        settings, movie_factors = config.factor_settings(), load_factors(champion)
        history = rating_history(features, as_of, rated_after=carried_from)
        folded = factors.fold_in_latest(movie_factors, settings, history, user_rows["user_id"].to_numpy())
        user_rows = factors.with_user_factors(user_rows, folded, settings)
        catalog = factors.with_movie_factors(catalog, movie_factors, settings)
    user_vectors = network.embed_users(model, user_rows, config)
    movie_vectors = network.embed_movies(model, catalog, config)
    with features.transaction():
        serving_store.write_embeddings(features, "user", champion.version, as_of, user_rows["user_id"].to_numpy(), user_vectors, backend)
        serving_store.write_embeddings(features, "movie", champion.version, as_of, catalog["movie_id"].to_numpy(), movie_vectors, backend)
    users_carried = known_users - user_rows.height
    return {
        "model_version": champion.version,
        "backend": backend,
        "backend_reason": reason,
        "users": user_rows.height + users_carried,
        "users_embedded": user_rows.height,
        "users_carried": users_carried,
        "carried_from": carried_from,
        "movies": catalog.height,
        "dim": int(user_vectors.shape[1]),
        "seconds": time.perf_counter() - started,
    }


def build_popularity(features: Store, serving: ServingSettings, as_of: int) -> pl.DataFrame:
    """The popularity ranking over the `popularity_days` batches that end with `as_of`."""
    counts = movie_counts_between(features, as_of - serving.popularity.days + 1, as_of)
    popular = ranking.rank_popularity(counts, serving.popularity.min_ratings)
    serving_store.write_popularity(features, as_of, popular)
    return popular


@dataclass(frozen=True)
class RecommendationsBuilt:
    entry: serving_store.ServingSet
    users_ranked: int  # users whose lists were computed now
    users_carried: int  # users whose lists the set keeps from earlier days (not ranked again)
    carried_from: int | None  # the batch of that set; None when every list was computed
    users_searched: int  # ranked users whose retrieval candidates came from a catalog search
    candidates_reused: int  # ranked users whose stored candidates still held
    seconds: float


def build_recommendations(features: Store, serving: ServingSettings, as_of: int, calendar: Calendar) -> RecommendationsBuilt:
    """Each known user's top-N unrated movies in two stages as of `as_of` (the retrieval champion's
    candidates, ordered with the rating champion's stored embeddings), then the serving set that
    makes them the ones the API answers from.

    Work proportional to the day: when the previous set had the same champions (no promotion
    since), only the users who rated since then are ranked again; the others' features, rated
    movies and so lists are unchanged but for the movie side, and the set keeps their lists. A new
    champion of either stage ranks everyone again; under a new rating champion alone, the users
    who did not rate keep their stored retrieval candidates (`serving_store.read_candidates`) and
    only their order is computed again, which needs no search of the catalog.
    """
    started = time.perf_counter()
    champion = _champion(features)
    retriever = _champion(features, registry.RETRIEVAL)
    n = serving.recommendations_per_user
    backend, _ = serving_store.prepare_embeddings(features, serving.embedding_backend)
    movie_ids, movie_vectors = serving_store.read_embeddings(features, "movie", champion.version, as_of)
    if len(movie_ids) == 0:
        raise RecsysError(
            f"The feature store holds no embeddings of champion {champion.version} as of {calendar.partition_of(as_of)}: "
            "materialize user_embeddings and movie_embeddings for that partition first."
        )
    _, _, global_mean = state_as_of(features, as_of, calendar, users=False)
    previous = serving_store.serving_set_before(features, as_of)
    carried_from = (
        previous.as_of_batch
        if previous is not None
        and (previous.model_version, previous.retrieval_version, previous.recommendations_per_user) == (champion.version, retriever.version, n)
        else None
    )
    day_users = None
    if carried_from is not None:
        day_users = np.asarray(users_rated_between(features, carried_from, as_of), dtype=np.int64)
    user_ids, user_vectors = serving_store.read_embeddings(features, "user", champion.version, as_of, users=day_users)
    model, retrieval_settings = load_version(retriever), retrieval_config_of(retriever)
    width = retrieval_settings.candidates
    # Stage one: a user's stored candidates while they hold (this retrieval champion, no rating
    # since), so a new rating champion alone does not search the catalog for everyone; a search for
    # the others. The users ranked on a day without a promotion all rated since, so none hold.
    # Stored candidates were searched in the catalog of their day: a movie new since then joins a
    # user's candidates at their next search (a rating, or a new retrieval champion).
    if carried_from is None:
        cached_ids, cached_movies, cached_scores = serving_store.read_candidates(features, retriever.version, as_of, width)
        reused = np.isin(user_ids, cached_ids)
    else:
        reused = np.zeros(len(user_ids), dtype=bool)
    searched_ids = user_ids[~reused]
    if len(searched_ids) == 0:
        rated = pl.DataFrame(schema={"user_id": pl.Int64, "movie_id": pl.Int64})
    elif carried_from is None and not reused.any():  # everyone: the whole history, no list to match
        rated = features.query("SELECT user_id, movie_id FROM training_examples WHERE batch <= $as_of", {"as_of": as_of})
    else:
        rated = features.query(
            "SELECT user_id, movie_id FROM training_examples WHERE batch <= $as_of AND user_id IN (SELECT unnest($users))",
            {"as_of": as_of, "users": searched_ids.tolist()},
        )
    indptr, indices = ranking.rated_positions(rated, searched_ids, movie_ids)
    retrieval_movies = retrieval.embed_movie_ids(model, movie_ids)
    found, found_scores = ranking.top_n_unrated(
        retrieval.user_queries(model, searched_ids, retrieval_settings), retrieval_movies, indptr, indices, width
    )
    candidates = np.full((len(user_ids), width), -1, dtype=np.int32)
    scores = np.full((len(user_ids), width), -np.inf, dtype=np.float32)
    candidates[~reused], scores[~reused] = found, found_scores
    if reused.any():
        rows = np.searchsorted(cached_ids, user_ids[reused])
        candidates[reused], scores[reused] = ranking.catalog_positions(cached_movies[rows], movie_ids), cached_scores[rows]
    columns, deviations = retrieval.order_candidates(candidates, scores, user_vectors, movie_vectors, n, retrieval_settings)
    # The score shown is the predicted rating; the rank is the two-stage order.
    recommendations = ranking.as_list(user_ids, movie_ids, columns, deviations).with_columns(
        (pl.col("score") + global_mean).clip(MIN_RATING, MAX_RATING)
    )
    # Users without ratings: one list, the two stages for the cold user of both towers.
    cold_columns, cold_deviations = retrieval.cold_start(
        model, retrieval_movies,
        network.embed_users(load_version(champion), cold_rating_user(global_mean, config_of(champion)), config_of(champion)),
        movie_vectors, n, retrieval_settings,
    )
    cold_start = ranking.as_list(np.zeros(1, np.int64), movie_ids, cold_columns[None], cold_deviations[None]).with_columns(
        (pl.col("score") + global_mean).clip(MIN_RATING, MAX_RATING)
    )
    with features.transaction():
        found_movies = np.where(found >= 0, movie_ids[np.maximum(found, 0)], -1)
        serving_store.write_candidates(features, retriever.version, as_of, searched_ids, found_movies, found_scores)
        serving_store.write_recommendations(features, champion.version, as_of, recommendations)
        serving_store.write_cold_start(features, champion.version, as_of, cold_start)
        users_carried = serving_store.set_users(features, "recommendation_lists", champion.version, as_of) - len(user_ids)
        entry = serving_store.ServingSet(
            model_version=champion.version,
            as_of_batch=as_of,
            partition_key=calendar.partition_of(as_of),
            embedding_backend=backend,
            embedding_dim=int(movie_vectors.shape[1]),
            global_mean=global_mean,
            users=len(user_ids) + users_carried,
            movies=len(movie_ids),
            recommendations_per_user=n,
            created_at=registry.now(),
            retrieval_version=retriever.version,
        )
        serving_store.record_serving_set(features, entry)
    return RecommendationsBuilt(entry, len(user_ids), users_carried, carried_from, len(searched_ids), int(reused.sum()), time.perf_counter() - started)


# How many of a set's list entries are movies their user had rated, per engine. DuckDB joins every
# entry with the examples (1.2 s for 3.2M entries and 5.5M ratings, by hand; the form below took it
# 2.9 s). PostgreSQL took 7 to 8 s for that join at MovieLens-32M's shape, and 2.5 to 2.9 s to test
# each list against its user's ratings in the training_examples_user index, then unnest and count
# only the lists that hold one.
_RATED_ENTRIES = {
    "duckdb": (
        "SELECT count(*) FROM recommendation_rows AS r JOIN training_examples AS t "
        "ON t.user_id = r.user_id AND t.movie_id = r.movie_id AND t.batch <= $as_of "
        "WHERE r.model_version = $version AND r.as_of_batch = $as_of"
    ),
    "postgres": (
        "SELECT count(*) FROM (SELECT user_id, unnest(movie_ids) AS movie_id FROM serving_lists AS l "
        "WHERE model_version = $version AND as_of_batch = $as_of AND movie_ids && "
        "ARRAY(SELECT t.movie_id FROM training_examples AS t WHERE t.user_id = l.user_id AND t.batch <= $as_of)) AS r "
        "JOIN training_examples AS t ON t.user_id = r.user_id AND t.movie_id = r.movie_id AND t.batch <= $as_of"
    ),
}


def rated_recommendations(features: Store, version: str, as_of: int) -> int:
    """How many stored recommendations of a set are movies their user had already rated (should be 0)."""
    return int(features.scalar(_RATED_ENTRIES[features.dialect], {"version": version, "as_of": as_of}))
