"""The serving assets through Dagster on DuckDB and PostgreSQL: embeddings of the champion,
precomputed two-stage recommendations that never contain a rated movie, retention of serving
sets, test-then-train ranking metrics, and similarity search over stored embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from asset_replay import BATCH, BOOTSTRAP, BOOTSTRAP_ASSETS, CALENDAR, AssetReplay

from recsys.errors import RecsysError
from recsys.features.build import stored_movie_features
from recsys.features.point_in_time import catalog_features, user_features
from recsys.features.state import state_as_of
from recsys.models import daily, factors, network, ranking, registry, retrieval
from recsys.models.artifacts import load_model
from recsys.models.training import predict
from recsys.models.versions import (
    cold_rating_user,
    config_of,
    load_factors,
    load_version,
    rating_history,
    retrieval_config_of,
    with_factor_slots,
)
from recsys.serving.build import build_embeddings, build_recommendations, rated_recommendations
from recsys.serving import store as serving_store
from recsys.settings import store_urls
from recsys.stores import open_store
from recsys_resources import ModelingResource, ServingResource

DAYS = 3


@pytest.fixture(scope="module")
def archive(make_archive) -> Path:
    return make_archive(BOOTSTRAP + DAYS * BATCH, 21)


def assert_recorded_ranking(db, batch: int, protocol: str, segment: str, expected: dict, model: str = "champion") -> None:
    """A ranking's figures recorded for a day equal those computed independently."""
    recorded = db.query(
        "SELECT users, ndcg_at_10, recall_at_10 FROM ranking_metrics WHERE batch = $b AND model = $model "
        "AND protocol = $protocol AND segment = $segment",
        {"b": batch, "protocol": protocol, "segment": segment, "model": model},
    ).row(0, named=True)
    assert recorded["users"] == expected["users"] > 0
    assert recorded["ndcg_at_10"] == pytest.approx(expected["ndcg"]) and recorded["recall_at_10"] == pytest.approx(expected["recall"])


def metadata_of(result) -> dict:
    """Each materialized asset's metadata in a run's result."""
    return {
        event.asset_key.to_user_string(): event.event_specific_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


@pytest.fixture(
    params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("pgvector", marks=pytest.mark.postgres)]
)
def serving_base(request, tmp_path: Path) -> tuple[str, str]:
    """(store base, the embedding layout it should get): DuckDB arrays, PostgreSQL real[], pgvector."""
    if request.param == "duckdb":
        return str(tmp_path / "stores"), "array"
    if request.param == "postgres":
        return request.getfixturevalue("pg_base"), "array"
    return request.getfixturevalue("pgvector_base"), "pgvector"


def test_the_champion_serves_every_known_user_unrated_movies_scored_like_the_model(serving_base, archive, tmp_path):
    base, layout = serving_base
    replay = AssetReplay(base, archive, tmp_path / "models", serve=True)
    replay.run(BOOTSTRAP_ASSETS)
    results = [replay.day(batch) for batch in range(DAYS)]
    last = DAYS - 1
    with replay.features_db() as db, open_store(replay.urls["lake"]) as lake:
        served = serving_store.latest_serving_set(db)
        champion = registry.champion(db)
        assert (served.model_version, served.as_of_batch, served.embedding_backend) == (champion.version, last, layout)
        recs = db.query(
            "SELECT user_id, rank, movie_id, score FROM recommendation_rows WHERE model_version = $v AND as_of_batch = $a",
            {"v": served.model_version, "a": last},
        )
        # Checked against the lake, not against the feature store the recommendations came from.
        rated = lake.query("SELECT user_id, movie_id FROM lake_ratings WHERE batch <= $a", {"a": last})
        assert recs.height > 0 and recs.join(rated, on=["user_id", "movie_id"]).height == 0
        assert set(recs["user_id"]) == set(rated["user_id"]) and served.users == rated["user_id"].n_unique()
        per_user = recs.group_by("user_id").agg(pl.col("rank").sort(), pl.col("score"))
        assert (per_user["rank"].list.len() == served.recommendations_per_user).all()

        # Two stages, checked by brute force in numpy: each list is drawn from the user's top
        # `candidates` unrated movies by retrieval score, ordered by retrieval score plus the
        # rating weight times the predicted deviation from the global mean.
        # Without a promotion on the last day, the lists of users who did not rate on it were
        # kept from the day before: they are checked against that day's embeddings.
        retriever = registry.champion(db, registry.RETRIEVAL)
        assert served.retrieval_version == retriever.version
        settings = retrieval_config_of(retriever)
        model = load_version(retriever)
        carried = metadata_of(results[-1])["batch_recommendations"]["carried_from"].text != "none: everyone ranked"
        rated_today = set(lake.query("SELECT DISTINCT user_id FROM lake_ratings WHERE batch = $b", {"b": last})["user_id"])
        for user in np.random.default_rng(0).choice(sorted(set(recs["user_id"])), 15, replace=False):
            computed_on = last if user in rated_today or not carried else last - 1
            user_ids, rating_users = serving_store.read_embeddings(db, "user", served.model_version, computed_on)
            movie_ids, rating_movies = serving_store.read_embeddings(db, "movie", served.model_version, computed_on)
            row = int(np.searchsorted(user_ids, user))
            found_users, found_movies = retrieval.user_queries(model, user_ids[row : row + 1], settings), retrieval.embed_movie_ids(model, movie_ids)
            user = int(user)
            rated_then = lake.query("SELECT movie_id FROM lake_ratings WHERE batch <= $a AND user_id = $u", {"a": computed_on, "u": user})
            unrated = ~np.isin(movie_ids, rated_then["movie_id"].to_numpy())
            scores = found_movies @ found_users[0]
            candidates = np.flatnonzero(unrated)[np.argsort(-scores[unrated], kind="stable")[: settings.candidates]]
            blended = scores[candidates] + settings.rating_weight * (rating_movies[candidates] @ rating_users[row])
            expected = movie_ids[candidates[np.argsort(-blended, kind="stable")]][: served.recommendations_per_user]
            stored = recs.filter(pl.col("user_id") == user).sort("rank")["movie_id"].to_list()
            assert stored == expected.tolist()

        # The cold-start list: the two stages for the cold user of both towers, over the set's movies.
        movie_ids, rating_movies = serving_store.read_embeddings(db, "movie", served.model_version, last)
        _, _, mean_then = state_as_of(db, last, CALENDAR, users=False)
        cold_rating = network.embed_users(load_version(champion), cold_rating_user(mean_then, config_of(champion)), config_of(champion))
        columns, deviations = retrieval.cold_start(model, retrieval.embed_movie_ids(model, movie_ids), cold_rating, rating_movies, served.recommendations_per_user, settings)
        stored_cold = serving_store.read_cold_start(db, served.model_version, last)
        assert stored_cold["movie_id"].to_list() == movie_ids[columns].tolist()
        assert np.allclose(stored_cold["score"].to_numpy(), np.clip(deviations + mean_then, 0.5, 5.0), atol=1e-4)

        # The stored scores are the rating model's predictions for those pairs (embeddings agree).
        users, movies, global_mean = state_as_of(db, last, CALENDAR)
        assert global_mean == pytest.approx(served.global_mean)
        sample = recs.filter(pl.col("rank") <= 3).sort("user_id").head(30)
        pairs = (
            sample.join(user_features(users, global_mean), on="user_id")
            .join(catalog_features(stored_movie_features(db), movies, global_mean).drop("global_mean"), on="movie_id")
        )
        # With the factor slots: each user folded in from all their ratings, each movie's row.
        settings, movie_factors = config_of(champion).factor_settings(), load_factors(champion)
        folded = factors.fold_in_latest(movie_factors, settings, rating_history(db, last), pairs["user_id"].to_numpy())
        pairs = factors.with_movie_factors(factors.with_user_factors(pairs, folded, settings), movie_factors, settings)
        predicted = predict(load_model(champion.artifact, champion.checksum), pairs, config_of(champion))
        assert np.allclose(predicted, pairs["score"].to_numpy(), atol=1e-4)

        # Two serving sets are kept (the one in service and the one before); older rows are gone.
        # A user's rows stay where they were written while a kept set reads them: every row left
        # is some kept set's newest row of its user.
        sets = db.query("SELECT model_version, as_of_batch FROM serving_sets ORDER BY as_of_batch")
        assert sets["as_of_batch"].to_list() == [last - 1, last]
        kept = db.query("SELECT DISTINCT model_version, as_of_batch FROM movie_embeddings ORDER BY as_of_batch")
        assert kept.equals(sets)
        for table in ("user_embeddings", "recommendation_lists"):
            rows = db.query(f"SELECT model_version, as_of_batch, user_id FROM {table}")
            read = pl.concat(
                rows.filter((pl.col("model_version") == version) & (pl.col("as_of_batch") <= as_of))
                .group_by("user_id").agg(pl.col("as_of_batch").max()).with_columns(model_version=pl.lit(version))
                for version, as_of in sets.iter_rows()
            ).unique()
            assert rows.height == read.height and rows.join(read, on=["model_version", "as_of_batch", "user_id"], how="anti").height == 0, table

        # Test-then-train ranking metrics: every day, every ranking, both protocols, all users.
        ranks = db.query("SELECT batch, model, protocol FROM ranking_metrics WHERE segment = 'all'")
        # retrieval_full: the latest full retrieval model, here the initial one (the champion).
        every_day = {
            ("champion", "catalog"), ("retrieval", "catalog"), ("retrieval_full", "catalog"), ("two_stage", "catalog"), ("popularity", "catalog"),
            ("popularity_by_mean", "catalog"), ("served", "catalog"), ("cold_start", "catalog"), ("champion", "rated"),
            ("popularity", "rated"),
        }  # fmt: skip
        for batch in range(DAYS):
            day = ranks.filter(pl.col("batch") == batch)
            # From the second day on, yesterday's retrieval warm start is scored beside the champion.
            assert set(zip(day["model"], day["protocol"])) == every_day | ({("retrieval_warm", "catalog")} if batch else set())
            assert day.height == len(every_day) + (1 if batch else 0)
        # What is served: the two-stage list to users who rated before the day, the cold-start list to new ones.
        figures = db.query(
            "SELECT model, segment, users, ndcg_at_10 FROM ranking_metrics WHERE protocol = 'catalog' AND batch = $b", {"b": last}
        )
        value = {(m, seg): (u, n) for m, seg, u, n in figures.iter_rows()}
        assert value["served", "with_history"] == pytest.approx(value["two_stage", "with_history"])
        assert value["served", "no_history"] == pytest.approx(value["cold_start", "no_history"])
        popular = db.query("SELECT movie_id, ratings FROM popular_movies")
        assert popular.height > 0 and (popular["ratings"] >= 20).all()

        # Test-then-train ranks what was served: the day's catalog figures for users with history
        # are those of the recommendations stored the evening before.
        served_before = db.query(
            "SELECT user_id, rank, movie_id FROM recommendation_rows WHERE as_of_batch = $a", {"a": last - 1}
        )
        with open_store(replay.urls["lake"]) as lake:
            day = lake.query("SELECT user_id, movie_id, rating FROM lake_ratings WHERE batch = $b", {"b": last})
        relevant = day.filter(pl.col("rating") >= ranking.RELEVANT_RATING).join(served_before.select("user_id").unique(), on="user_id")
        expected = ranking.ranking_metrics(served_before, relevant)
        assert_recorded_ranking(db, last, "catalog", "with_history", expected, model="served")

    metadata = metadata_of(results[-1])
    assert 0.0 <= metadata["model_metrics"]["ndcg_at_10_champion"].value <= 1.0
    assert {"recall_at_10_popularity", "rated_ndcg_at_10_champion"} <= set(metadata["model_metrics"])
    assert metadata["user_embeddings"]["embedding_backend"].text == layout
    checks = [c for c in results[-1].get_asset_check_evaluations() if c.check_name == "no_rated_movie_recommended"]
    assert len(checks) == 1 and checks[0].passed

    with replay.features_db() as db:
        # Similarity search in SQL agrees with cosine similarity computed from the stored vectors.
        ids, vectors = serving_store.read_embeddings(db, "movie", served.model_version, last)
        query = 3
        found = serving_store.similar_movies(db, served.model_version, last, int(ids[query]), 5, served.embedding_backend)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        cosine = unit @ unit[query]
        cosine[query] = -np.inf
        assert found["movie_id"].to_list() == [int(ids[i]) for i in np.argsort(-cosine, kind="stable")[:5]]
        assert np.allclose(found["similarity"].to_numpy(), np.sort(cosine)[::-1][:5], atol=1e-4)

        # The "rated" protocol: the day's rated movies ordered by the champion in service that
        # day (before the day's gate), scored against what each user rated at least 4.
        in_service = db.scalar("SELECT version FROM model_metrics WHERE batch = $b AND model = 'champion' LIMIT 1", {"b": last})
        judged = registry.get(db, in_service)
        day_examples = db.query("SELECT * FROM training_examples WHERE batch = $b ORDER BY seq", {"b": last})
        # Each rating's user folded in at its time, from every earlier rating (the day's included).
        day_examples = with_factor_slots(day_examples, config_of(judged), load_factors(judged), rating_history(db, last))
        scored = day_examples.select("user_id", "movie_id", "rating").with_columns(
            champion=pl.Series(predict(load_model(judged.artifact, judged.checksum), day_examples, config_of(judged)), dtype=pl.Float64)
        )
        expected = ranking.ranking_metrics(
            ranking.rank_by_score(scored, "champion"),
            scored.filter(pl.col("rating") >= ranking.RELEVANT_RATING).select("user_id", "movie_id"),
        )
        assert_recorded_ranking(db, last, "rated", "all", expected)

        # The query behind no_rated_movie_recommended finds a rated movie slipped into the lists.
        assert rated_recommendations(db, served.model_version, last) == 0
        user, movie = db.query("SELECT user_id, movie_id FROM training_examples WHERE batch = $b LIMIT 1", {"b": last}).row(0)
        in_list = {"v": served.model_version, "a": last, "u": user}
        db.execute("DELETE FROM recommendation_lists WHERE model_version = $v AND as_of_batch = $a AND user_id = $u", in_list)
        db.execute(
            "INSERT INTO recommendation_lists (model_version, as_of_batch, user_id, movie_ids, scores) "
            "VALUES ($v, $a, $u, ARRAY[$m], CAST(ARRAY[5.0] AS REAL[]))",
            {"v": served.model_version, "a": last, "u": user, "m": movie},
        )
        assert rated_recommendations(db, served.model_version, last) == 1

    # A refused re-run changes nothing downstream: re-running day 0 of a store that stands at the
    # last day fails at the features, and nothing after them runs (the fallback is not rolled back).
    refused = replay.day(0, ok=False)
    assert not refused.success and "already stands at" in replay.failure(refused)
    assert {e.asset_key.to_user_string() for e in refused.get_asset_materialization_events()} <= {"lake_ratings"}
    with replay.features_db() as db:
        assert serving_store.read_popularity(db)[0] == last
        assert serving_store.latest_serving_set(db).as_of_batch == last


def test_recommendations_need_the_days_embeddings_first(archive, tmp_path):
    replay = AssetReplay(tmp_path / "stores", archive, tmp_path / "models")
    replay.run(BOOTSTRAP_ASSETS)
    replay.day(0)

    message = replay.failure(replay.run(["batch_recommendations"], "2025-01-01", ok=False))
    assert message.startswith("The feature store holds no embeddings of champion full-bootstrap as of 2025-01-01")


def test_embedding_layouts_round_trip_and_refuse_another_size(store_base):
    with open_store(store_urls(store_base)["features"]) as db:
        db.apply_schema("features")
        backend, reason = serving_store.prepare_embeddings(db, "array")
        assert backend == "array" and reason
        vectors = np.random.default_rng(0).standard_normal((5, serving_store.EMBEDDING_DIM)).astype(np.float32)
        serving_store.write_embeddings(db, "movie", "v1", 3, np.arange(5), vectors, backend)
        ids, back = serving_store.read_embeddings(db, "movie", "v1", 3)
        assert ids.tolist() == [0, 1, 2, 3, 4] and np.array_equal(back, vectors)
        with pytest.raises(RecsysError, match="hold 32-dimensional vectors, but model v1 gives 8-dimensional"):
            serving_store.write_embeddings(db, "movie", "v1", 3, np.arange(5), vectors[:, :8], backend)
        # Once the tables exist, their column type decides the layout.
        assert serving_store.prepare_embeddings(db, "auto")[0] == "array"


@pytest.mark.postgres
def test_pgvector_columns_and_index_where_the_server_offers_the_extension(pgvector_base):
    with open_store(store_urls(pgvector_base)["features"]) as db:
        db.apply_schema("features")
        backend, reason = serving_store.prepare_embeddings(db, "auto")
        assert backend == "pgvector" and "pgvector" in reason
        vectors = np.random.default_rng(1).standard_normal((50, serving_store.EMBEDDING_DIM)).astype(np.float32)
        serving_store.write_embeddings(db, "movie", "v1", 0, np.arange(50), vectors, backend)
        ids, back = serving_store.read_embeddings(db, "movie", "v1", 0)
        assert np.allclose(back, vectors, atol=1e-6)
        assert db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'movie_embeddings_cosine'") == 1
        assert db.scalar("SELECT udt_name FROM information_schema.columns WHERE table_name = 'user_embeddings' AND column_name = 'embedding'") == "vector"
        assert serving_store.similar_movies(db, "v1", 0, 0, 3, backend).height == 3
        # Asked for arrays on a store that already has vector columns: the existing layout stays.
        assert serving_store.prepare_embeddings(db, "array")[0] == "pgvector"


def test_a_new_rating_champion_alone_reorders_the_stored_candidates(serving_base, archive, tmp_path):
    """When only the rating champion changed, the users who did not rate keep the retrieval
    candidates stored by their last search and are not searched again; their lists are the ones
    a search of the whole catalog gives. Candidates of a retrieval version no set uses go."""
    replay = AssetReplay(serving_base[0], archive, tmp_path / "models", serve=True)
    modeling = replay.resources["modeling"]
    replay.resources["modeling"] = ModelingResource(artifact_dir=modeling.artifact_dir, seed=modeling.seed, promotion_margin=10.0)
    replay.run(BOOTSTRAP_ASSETS)
    replay.day(0)
    replay.day(1)
    settings = replay.resources["serving"].settings()
    lists = "SELECT user_id, rank, movie_id, score FROM recommendation_rows WHERE as_of_batch = 1 ORDER BY user_id, rank"
    with replay.features_db() as db:
        rated_on_day = set(db.query("SELECT DISTINCT user_id FROM training_examples WHERE batch = 1")["user_id"])
        retriever = registry.champion(db, registry.RETRIEVAL).version
        assert db.scalar("SELECT count(DISTINCT as_of_batch) FROM retrieval_candidates") == 2  # day 0's searches, then day 1's
        # Day 1 again as if another rating champion had made day 0's set (so everyone is ranked)
        # and day 1's searches had not been stored: its users' candidates are day 0's, outdated.
        db.execute("UPDATE serving_sets SET model_version = 'rating-before' WHERE as_of_batch = 0")
        db.execute("DELETE FROM retrieval_candidates WHERE as_of_batch = 1")
        reordered = build_recommendations(db, settings, 1, CALENDAR)
        assert reordered.carried_from is None and reordered.users_carried == 0
        assert reordered.users_searched == len(rated_on_day) > 0
        assert reordered.candidates_reused == reordered.users_ranked - len(rated_on_day) > 0
        from_stored = db.query(lists)
        db.execute("DELETE FROM retrieval_candidates")
        searched = build_recommendations(db, settings, 1, CALENDAR)
        assert searched.users_searched == searched.users_ranked == reordered.users_ranked and searched.candidates_reused == 0
        assert db.query(lists).equals(from_stored)
        stored = serving_store.read_candidates(db, retriever, 1, 50)[0]
        assert len(stored) == searched.users_ranked
        # A new retrieval champion's set leaves no set using the old version: its candidates go.
        db.execute("UPDATE serving_sets SET retrieval_version = 'retrieval-after'")
        serving_store.record_serving_set(db, serving_store.serving_set_before(db, 2))
        assert db.scalar("SELECT count(*) FROM retrieval_candidates") == 0


def test_without_a_promotion_only_the_users_who_rated_are_ranked_again(archive, tmp_path, monkeypatch):
    """A day with the same champions as the day before embeds and ranks the users who rated that
    day and carries the others' vectors and lists over unchanged; the ranked users' lists are those a full ranking
    gives (computed again with the earlier set out of the way). And the catalog protocol ranks
    a sample of a day's users when they are more than its limit."""
    monkeypatch.setattr(daily, "CATALOG_USERS", 10)
    replay = AssetReplay(str(tmp_path / "stores"), archive, tmp_path / "models", serve=True)
    modeling = replay.resources["modeling"]
    replay.resources["modeling"] = ModelingResource(artifact_dir=modeling.artifact_dir, seed=modeling.seed, promotion_margin=10.0)  # never promote
    # On this small archive a day moves the global mean by more than the default allows.
    replay.resources["serving"] = ServingResource(carry_mean_shift=1.0)
    replay.run(BOOTSTRAP_ASSETS)
    replay.day(0)
    materialized = metadata_of(replay.day(1))
    second, embedded = materialized["batch_recommendations"], materialized["user_embeddings"]
    lists = "SELECT user_id, rank, movie_id, score FROM recommendation_rows WHERE as_of_batch = $a ORDER BY user_id, rank"
    with replay.features_db() as db:
        rated_on_day = set(db.query("SELECT DISTINCT user_id FROM training_examples WHERE batch = 1")["user_id"])
        before, after = db.query(lists, {"a": 0}), db.query(lists, {"a": 1})
        # The embeddings too: only the day's users embedded again, the others' vectors copied.
        version = registry.champion(db).version
        ids_before, vectors_before = serving_store.read_embeddings(db, "user", version, 0)
        ids_after, vectors_after = serving_store.read_embeddings(db, "user", version, 1)
        assert embedded["users_embedded"].value == len(rated_on_day)
        assert embedded["users_carried"].value == len(set(ids_before) - rated_on_day) > 0
        assert embedded["dagster/row_count"].value == len(ids_after) == len(set(ids_before) | rated_on_day)
        kept = ~np.isin(ids_before, list(rated_on_day))
        assert np.array_equal(vectors_after[np.isin(ids_after, ids_before[kept])], vectors_before[kept])
        assert second["carried_from"].text == CALENDAR.partition_of(0)
        assert second["users_ranked"].value == len(rated_on_day) > 0
        assert second["users_carried"].value == before["user_id"].n_unique() - len(rated_on_day & set(before["user_id"])) > 0
        assert after.filter(~pl.col("user_id").is_in(list(rated_on_day))).equals(before.filter(~pl.col("user_id").is_in(list(rated_on_day))))
        users = db.query(
            "SELECT protocol, max(users) AS users FROM ranking_metrics WHERE segment = 'all' AND batch = 1 GROUP BY protocol"
        )
        users = dict(users.iter_rows())
        assert users["catalog"] <= 10 < users["rated"]
        db.execute("DELETE FROM serving_sets WHERE as_of_batch = 0")
        # Everyone embedded again: the day's users get the vectors they got. The others' copied
        # vectors miss only the global mean's move over the day (a user tower input): with the
        # day before's mean, their state and ratings as of the day give exactly those vectors.
        everyone = build_embeddings(db, replay.resources["serving"].settings(), 1, CALENDAR)
        assert everyone["carried_from"] is None and everyone["users_embedded"] == len(ids_after)
        ids_full, vectors_full = serving_store.read_embeddings(db, "user", version, 1)
        assert np.array_equal(ids_full, ids_after)
        today = np.isin(ids_after, list(rated_on_day))
        assert np.allclose(vectors_full[today], vectors_after[today], atol=1e-6)
        champion = registry.champion(db)
        config, movie_factors = config_of(champion), load_factors(champion)
        users_now, _, _ = state_as_of(db, 1, CALENDAR)
        _, _, mean_before = state_as_of(db, 0, CALENDAR, users=False)
        carried = user_features(users_now.filter(pl.col("user_id").is_in(ids_after[~today].tolist())).sort("user_id"), mean_before)
        folded = factors.fold_in_latest(movie_factors, config.factor_settings(), rating_history(db, 1), carried["user_id"].to_numpy())
        carried = factors.with_user_factors(carried, folded, config.factor_settings())
        assert np.allclose(network.embed_users(load_version(champion), carried, config), vectors_after[~today], atol=1e-6)
        full = build_recommendations(db, replay.resources["serving"].settings(), 1, CALENDAR)
        assert full.carried_from is None and full.users_ranked == after["user_id"].n_unique()
        recomputed = db.query(lists, {"a": 1}).filter(pl.col("user_id").is_in(list(rated_on_day)))
        assert recomputed.equals(after.filter(pl.col("user_id").is_in(list(rated_on_day))))
