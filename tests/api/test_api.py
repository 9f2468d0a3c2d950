"""The HTTP API over real HTTP on loopback: `recsys serve` runs as its own process on stores a
replay wrote (DuckDB, and PostgreSQL in one test), and every bad input gets a 4xx with a sentence.

What an answer should hold is computed here from the lake as of the serving set in use and from the
champion's own Keras model (see Expected), not read back from the state the API answers from; the
OpenAPI schema as a whole is held to the server in test_api_contract.py."""

from __future__ import annotations

import re
import time
from functools import cached_property

import httpx
import numpy as np
import polars as pl
import pytest
from asset_replay import BOOTSTRAP_ASSETS, AssetReplay
from helpers import run_cli

from recsys.genres import GENRE_SLUGS, GENRES
from recsys.models import registry, training
from recsys.models.factors import movie_factor_columns, user_factor_columns
from recsys.models.versions import config_of, load_factors, load_version
from recsys.serving import store as serving_store
from recsys.stores import open_store
from recsys_api.app import Recommendations

COLD_USER = 987654321  # no ratings: the cold-start path


class Expected:
    """The serving set in use, the lake's ratings and catalog as of it, and the champion's model:
    what the API's figures, profiles and predictions are defined from."""

    def __init__(self, replay) -> None:
        with replay.features_db() as db, open_store(replay.urls["lake"]) as lake:
            self.serving = serving_store.latest_serving_set(db)
            self.champion = registry.get(db, self.serving.model_version)
            # The release-year standardization, fitted on the bootstrap slice: read, not refitted.
            self.year_params = dict(db.query("SELECT name, value FROM feature_params").iter_rows())
            self.ratings = lake.query(
                "SELECT user_id, movie_id, rating FROM lake_ratings WHERE batch <= $as_of", {"as_of": self.serving.as_of_batch}
            )
            # Each rating with the global mean its example was made with: the factor model is relative to it.
            self.examples = db.query(
                "SELECT user_id, movie_id, rating, global_mean FROM training_examples WHERE batch <= $as_of",
                {"as_of": self.serving.as_of_batch},
            )
            catalog = lake.query("SELECT movie_id, title, year, genres FROM lake_movies")
        # The lake writes a movie without genres as ''.
        self.movies = {
            row["movie_id"]: {**row, "genres": [g for g in row["genres"].split("|") if g]} for row in catalog.iter_rows(named=True)
        }
        self.global_mean = float(self.ratings["rating"].mean())

    @cached_property
    def model(self):
        """The champion's Keras model, loaded on first use."""
        return load_version(self.champion)

    def movie_ratings(self, movie_id: int) -> list[float]:
        return self.ratings.filter(pl.col("movie_id") == movie_id)["rating"].to_list()

    def user_history(self, user_id: int) -> tuple[list[float], dict[str, list[float]]]:
        """A user's ratings, and the ratings of each genre's movies (a movie counts toward each of
        its genres; only the vocabulary's genres have features)."""
        rated = self.ratings.filter(pl.col("user_id") == user_id)
        by_genre: dict[str, list[float]] = {}
        for movie_id, rating in rated.select("movie_id", "rating").iter_rows():
            for genre in self.movies[movie_id]["genres"]:
                if genre in GENRES:
                    by_genre.setdefault(genre, []).append(rating)
        return rated["rating"].to_list(), by_genre

    def genre_profile(self, user_id: int) -> list[dict]:
        """/users' genres: count and mean per genre rated, most rated first, then by name."""
        _, by_genre = self.user_history(user_id)
        profile = [{"genre": g, "ratings": len(r), "mean_rating": pytest.approx(np.mean(r))} for g, r in by_genre.items()]
        return sorted(profile, key=lambda g: (-g["ratings"], g["genre"]))

    def user_features(self, user_id: int) -> dict:
        """The user columns of a training example: counts and means over all ratings and per genre (0 without)."""
        ratings, by_genre = self.user_history(user_id)
        features = {"u_count": len(ratings), "u_mean": float(np.mean(ratings)) if ratings else 0.0}
        for genre, slug in zip(GENRES, GENRE_SLUGS):
            features[f"ug_count_{slug}"] = len(by_genre.get(genre, []))
            features[f"ug_mean_{slug}"] = float(np.mean(by_genre[genre])) if genre in by_genre else 0.0
        return features

    def movie_features(self, genres: list[str], year: int | None, ratings: list[float]) -> dict:
        """The movie columns of a training example: genre flags, standardized year, count and mean
        (the global mean for a movie without ratings)."""
        features = {f"mg_{slug}": int(genre in genres) for genre, slug in zip(GENRES, GENRE_SLUGS)}
        features["m_no_genre"] = int(not set(genres) & set(GENRES))
        features["m_year_known"] = int(year is not None)
        features["m_year_z"] = 0.0 if year is None else (year - self.year_params["year_mean"]) / self.year_params["year_std"]
        features["m_count"] = len(ratings)
        features["m_mean"] = float(np.mean(ratings)) if ratings else self.global_mean
        return features

    def catalog_movie_features(self, movie_id: int) -> dict:
        movie = self.movies[movie_id]
        return self.movie_features(movie["genres"], movie["year"], self.movie_ratings(movie_id))

    def user_factors(self, user_id: int) -> dict:
        """The user's factor slots: the ridge regression of all their ratings (less the global mean
        and each movie's bias) on their movies' factors, solved here one user at a time; [x, 1]."""
        config = config_of(self.champion)
        settings, movie_factors = config.factor_settings(), load_factors(self.champion)
        rated = self.examples.filter(pl.col("user_id") == user_id)
        rows = movie_factors.lookup(rated["movie_id"].to_numpy()).astype(np.float64)
        z = rows[:, : settings.factors + 1]
        y = rated["rating"].to_numpy() - rated["global_mean"].to_numpy() - rows[:, -1]
        ridge = np.diag([settings.fold_in_reg] * settings.factors + [settings.fold_in_bias_reg])
        x = np.linalg.solve(z.T @ z + ridge, z.T @ y)
        return dict(zip(user_factor_columns(settings), [*x, 1.0]))

    def movie_factors(self, movie_id: int | None) -> dict:
        """The movie's factor row from the champion's artifact (zeros for a movie it has none for)."""
        config = config_of(self.champion)
        row = load_factors(self.champion).lookup(np.array([-1 if movie_id is None else movie_id]))[0]
        return dict(zip(movie_factor_columns(config.factor_settings()), row.tolist()))

    def rating(self, user_id: int, user_features: dict, movie_id: int | None, movie_features: dict) -> float:
        """The whole champion model's prediction (both towers, the dot product, the global mean,
        clipped to the rating scale), as in training: no stored vector is used."""
        slots = {**self.user_factors(user_id), **self.movie_factors(movie_id)} if config_of(self.champion).factors else {}
        example = pl.DataFrame([{"global_mean": self.global_mean, **user_features, **movie_features, **slots}])
        return float(training.predict(self.model, example, config_of(self.champion))[0])


def expect_error(response: httpx.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_recommendations_for_a_known_user_are_the_precomputed_unrated_movies(served):
    server, replay = served
    with replay.features_db() as db, open_store(replay.urls["lake"]) as lake:
        current = serving_store.latest_serving_set(db)
        user = int(db.scalar("SELECT min(user_id) FROM recommendation_rows WHERE as_of_batch = $a", {"a": current.as_of_batch}))
        stored = db.query(
            "SELECT movie_id, score FROM recommendation_rows WHERE model_version = $v AND as_of_batch = $a AND user_id = $u ORDER BY rank",
            {"v": current.model_version, "a": current.as_of_batch, "u": user},
        )
        rated = set(lake.query("SELECT movie_id FROM lake_ratings WHERE user_id = $u", {"u": user})["movie_id"])
        titles = dict(lake.query("SELECT movie_id, title FROM lake_movies").iter_rows())
    body = server.client.get(f"/recommendations/{user}", params={"n": 7}).json()
    Recommendations.model_validate(body)  # the answer matches the schema the OpenAPI document shows
    assert body["source"] == "model" and body["score_kind"] == "predicted_rating"
    assert body["model_version"] == current.model_version and body["as_of"] == current.partition_key
    movies = [item["movie_id"] for item in body["items"]]
    assert movies == stored["movie_id"].to_list()[:7] and not set(movies) & rated
    assert [item["rank"] for item in body["items"]] == list(range(1, 8))
    assert [item["score"] for item in body["items"]] == pytest.approx(stored["score"].to_list()[:7], abs=1e-4)
    assert [item["title"] for item in body["items"]] == [titles[m] for m in movies]
    assert len(server.client.get(f"/recommendations/{user}").json()["items"]) == 10  # the default n


def test_an_unknown_user_gets_the_cold_start_list_and_says_so(served):
    server, replay = served
    body = server.client.get(f"/recommendations/{COLD_USER}", params={"n": 5}).json()
    Recommendations.model_validate(body)
    assert body["source"] == "cold_start" and body["score_kind"] == "predicted_rating" and "no ratings" in body["reason"]
    expected = Expected(replay)
    with replay.features_db() as db:
        cold = db.query(
            "SELECT movie_id, score FROM cold_start_recommendations WHERE model_version = $v AND as_of_batch = $a ORDER BY rank LIMIT 5",
            {"v": expected.serving.model_version, "a": expected.serving.as_of_batch},
        )
    assert cold.height == 5 and [item["movie_id"] for item in body["items"]] == cold["movie_id"].to_list()
    assert [item["score"] for item in body["items"]] == pytest.approx(cold["score"].to_list(), abs=1e-4)


def test_a_users_profile_is_their_ratings_per_genre_in_the_lake(served):
    server, replay = served
    expected = Expected(replay)
    counts = expected.ratings.group_by("user_id").len().sort(["len", "user_id"], descending=[True, False])
    with replay.features_db() as db:
        recommended = set(db.query("SELECT user_id FROM recommendation_rows WHERE as_of_batch = $a", {"a": expected.serving.as_of_batch})["user_id"])
    # The most active user (many genres, so ties in counts, ordered by name) and the least active one.
    for user_id in (counts["user_id"][0], counts["user_id"][-1]):
        ratings, _ = expected.user_history(user_id)
        user = server.client.get(f"/users/{user_id}").json()
        assert user["ratings"] == len(ratings) and user["mean_rating"] == pytest.approx(np.mean(ratings))
        assert user["genres"] == expected.genre_profile(user_id)
        assert user["as_of"] == expected.serving.partition_key
        assert user["has_recommendations"] == (user_id in recommended)
    expect_error(server.client.get(f"/users/{COLD_USER}"), 404, f"User {COLD_USER} has no ratings", "cold-start list")


def test_a_movie_is_its_catalog_row_and_its_ratings_in_the_lake(served):
    server, replay = served
    expected = Expected(replay)
    with replay.features_db() as db:
        ranks = dict(db.query("SELECT movie_id, rank FROM popular_movies").iter_rows())
    without_genres = min(m for m, movie in expected.movies.items() if not movie["genres"])
    for movie_id in (1, without_genres, max(ranks, key=ranks.get)):
        ratings = expected.movie_ratings(movie_id)
        catalog = expected.movies[movie_id]
        assert server.client.get(f"/movies/{movie_id}").json() == {
            "movie_id": movie_id, "title": catalog["title"], "genres": catalog["genres"], "year": catalog["year"],
            "ratings": len(ratings), "mean_rating": pytest.approx(np.mean(ratings)) if ratings else None,
            "popularity_rank": ranks.get(movie_id),
        }  # fmt: skip
    expect_error(server.client.get("/movies/987654321"), 404, "Movie 987654321 is not in the catalog")


def test_predictions_are_the_champions_for_known_and_cold_start_users_and_new_movies(served):
    server, replay = served
    expected = Expected(replay)
    user = int(expected.examples["user_id"].min())  # a user with ratings
    movie = server.client.get(f"/recommendations/{user}", params={"n": 1}).json()["items"][0]
    known, cold = expected.user_features(user), expected.user_features(COLD_USER)
    assert known["u_count"] > 0 and cold["u_count"] == 0

    by_id = server.client.post("/predict", json={"user_id": user, "movie_id": movie["movie_id"]}).json()
    assert by_id["user_known"] and by_id["movie_id"] == movie["movie_id"]
    assert by_id["predicted_rating"] == pytest.approx(movie["score"], abs=1e-3)  # the score it is recommended with
    assert by_id["predicted_rating"] == pytest.approx(
        expected.rating(user, known, movie["movie_id"], expected.catalog_movie_features(movie["movie_id"])), abs=2e-4
    )

    # A user without ratings is predicted from the user tower's vector for no history.
    for movie_id in (movie["movie_id"], int(expected.examples["movie_id"].min())):
        stranger = server.client.post("/predict", json={"user_id": COLD_USER, "movie_id": movie_id}).json()
        assert not stranger["user_known"]
        assert stranger["predicted_rating"] == pytest.approx(
            expected.rating(COLD_USER, cold, movie_id, expected.catalog_movie_features(movie_id)), abs=2e-4
        )

    # A movie known only by its features: no ratings, so its mean is the global mean. Genre names
    # are matched ignoring case.
    new = {"user_id": user, "movie": {"genres": ["comedy", "Sci-Fi"], "year": 2024}}
    first = server.client.post("/predict", json=new).json()
    assert first["movie_id"] is None and first["user_known"]
    assert first["predicted_rating"] == pytest.approx(
        expected.rating(user, known, None, expected.movie_features(["Comedy", "Sci-Fi"], 2024, [])), abs=2e-4
    )
    # The same movie in canonical spelling, its year as the JSON number 2024.0 (an integer to the schema).
    same = {"user_id": user, "movie": {"genres": ["Comedy", "Sci-Fi"], "year": 2024.0}}
    assert server.client.post("/predict", json=same).json()["predicted_rating"] == first["predicted_rating"]
    nothing_known = server.client.post("/predict", json={"user_id": COLD_USER, "movie": {"genres": []}}).json()
    assert nothing_known["predicted_rating"] == pytest.approx(
        expected.rating(COLD_USER, cold, None, expected.movie_features([], None, [])), abs=2e-4
    )


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "fragments"),
    [
        ("get", "/recommendations/1?n=0", None, 422, ["query parameter n", "greater than or equal to 1"]),
        ("get", "/recommendations/1?n=21", None, 422, ["query parameter n", "less than or equal to 20"]),
        ("get", "/recommendations/1?n=1000", None, 422, ["query parameter n"]),
        ("get", "/recommendations/1?n=ten", None, 422, ["query parameter n", "valid integer"]),
        ("get", "/recommendations/abc", None, 422, ["path parameter user_id", "valid integer"]),
        ("get", "/users/1.5", None, 422, ["path parameter user_id"]),
        # Texts that are no integer, though pydantic's lax mode alone would read them as 1, 1 and 10.
        ("get", "/users/1.0", None, 422, ["path parameter user_id", "valid integer"]),
        ("get", "/movies/%201", None, 422, ["path parameter movie_id", "valid integer"]),
        ("get", "/recommendations/1?n=1_0", None, 422, ["query parameter n", "valid integer"]),
        ("post", "/predict", b"{not json", 422, ["the request body is not valid JSON (Expecting property name enclosed in double quotes at character 1)"]),
        ("post", "/predict", b"\x80 not UTF-8", 400, ["error parsing the body"]),
        ("post", "/predict", {"user_id": 1}, 422, ["exactly one of movie_id or movie"]),
        ("post", "/predict", {"user_id": 1, "movie_id": 1, "movie": {"genres": []}}, 422, ["exactly one"]),
        ("post", "/predict", {"movie_id": 1}, 422, ["body field user_id", "Field required"]),
        # JSON that is no integer, though pydantic's lax mode alone would read it as 1.
        ("post", "/predict", {"user_id": True, "movie_id": 1}, 422, ["body field user_id", "valid integer"]),
        ("post", "/predict", {"user_id": 1, "movie_id": "1"}, 422, ["body field movie_id", "valid integer"]),
        ("post", "/predict", {"user_id": 1, "movie": {"genres": ["Space Opera"]}}, 422, ["unknown genre 'Space Opera'"]),
        ("post", "/predict", {"user_id": 1, "movie": {"genres": [7]}}, 422, ["body field movie.genres.0", "'Action'"]),
        ("post", "/predict", {"user_id": 1, "movie": {"genres": [], "year": 3000}}, 422, ["body field movie.year"]),
        ("post", "/predict", {"user_id": 1, "movie_id": 987654321}, 404, ["Movie 987654321 is not in the catalog"]),
        ("get", "/nowhere", None, 404, ["Not Found"]),
    ],
)
def test_bad_input_gets_a_4xx_with_a_clear_message(served, method, path, payload, status, fragments):
    server, _ = served
    if isinstance(payload, bytes):
        response = server.client.post(path, content=payload, headers={"content-type": "application/json"})
    elif method == "post":
        response = server.client.post(path, json=payload)
    else:
        response = server.client.get(path)
    expect_error(response, status, *fragments)


def test_a_method_a_path_does_not_take_gets_405_with_the_methods_it_does(served):
    server, _ = served
    for method, path, allowed in [("DELETE", "/users/1", "GET"), ("PUT", "/recommendations/1", "GET"), ("GET", "/predict", "POST")]:
        response = server.client.request(method, path)
        expect_error(response, 405, "Method Not Allowed")
        assert response.headers.get("allow") == allowed, (method, path)


def test_health_and_stats_are_the_stores_figures(served):
    server, replay = served
    expected = Expected(replay)
    current = expected.serving
    health = server.client.get("/health").json()
    assert (health["status"], health["model_version"], health["as_of"], health["embedding_backend"]) == (
        "ok", current.model_version, current.partition_key, "array"
    )  # fmt: skip
    with replay.features_db() as db:
        recommendations = db.query(
            "SELECT user_id, count(*) AS n FROM recommendation_rows WHERE model_version = $v AND as_of_batch = $a GROUP BY user_id",
            {"v": current.model_version, "a": current.as_of_batch},
        )
        popular = db.scalar("SELECT count(*) FROM popular_movies")
        _, vectors = serving_store.read_embeddings(db, "movie", current.model_version, current.as_of_batch)
        day = db.scalar("SELECT max(batch) FROM model_metrics")
        mse = dict(db.query("SELECT model, mse FROM model_metrics WHERE batch = $b AND segment = 'all'", {"b": day}).iter_rows())
        ranking = db.query(
            "SELECT model, ndcg_at_10, recall_at_10 FROM ranking_metrics WHERE batch = $b AND segment = 'all' AND protocol = 'catalog'",
            {"b": day},
        )
    stats = server.client.get("/stats").json()
    assert stats == {
        "model_version": current.model_version,
        "as_of": current.partition_key,
        "users": expected.ratings["user_id"].n_unique(),
        "movies": len(expected.movies),
        "ratings": expected.ratings.height,
        "global_mean_rating": pytest.approx(expected.global_mean),
        "users_with_recommendations": recommendations.height,
        "recommendations_per_user": recommendations["n"].max(),
        "popular_movies": popular,
        "embedding_backend": "array",
        "embedding_dim": vectors.shape[1],
        "latest_day": {
            "partition": current.partition_key,  # the figures of the day the set was built on
            "mse": pytest.approx(mse),
            "ndcg_at_10": pytest.approx(dict(ranking.select("model", "ndcg_at_10").iter_rows())),
            "recall_at_10": pytest.approx(dict(ranking.select("model", "recall_at_10").iter_rows())),
        },
    }
    assert {"champion", "bias"} <= set(mse) and "popularity" in stats["latest_day"]["ndcg_at_10"]


def test_the_openapi_schema_states_the_limits_and_status_codes_the_api_uses(served):
    server, replay = served
    with replay.features_db() as db:
        per_user = serving_store.latest_serving_set(db).recommendations_per_user
    schema = server.client.get("/openapi.json").json()
    operations = {(path, method): operation for path, methods in schema["paths"].items() for method, operation in methods.items()}
    assert {key: set(operation["responses"]) for key, operation in operations.items()} == {
        ("/health", "get"): {"200"},
        ("/stats", "get"): {"200"},
        ("/users/{user_id}", "get"): {"200", "404", "422"},
        ("/movies/{movie_id}", "get"): {"200", "404", "422"},
        ("/recommendations/{user_id}", "get"): {"200", "422"},
        ("/predict", "post"): {"200", "400", "404", "422"},
    }
    for operation in operations.values():
        for status, response in operation["responses"].items():
            if status != "200":  # every error answers with the {"error": ...} body
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    (n,) = [p for p in operations["/recommendations/{user_id}", "get"]["parameters"] if p["name"] == "n"]
    assert (n["schema"]["minimum"], n["schema"]["maximum"]) == (1, per_user)
    assert schema["components"]["schemas"]["Genre"]["enum"] == list(GENRES)
    # The interactive docs load nothing from the internet: every script and style is served here.
    docs = server.client.get("/docs")
    assert docs.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for asset in assets:
        assert server.client.get(asset).status_code == 200, asset


def test_a_new_serving_set_is_picked_up_without_a_restart(served):
    server, replay = served
    before = server.client.get("/health").json()
    with replay.features_db() as db:
        next_day = serving_store.latest_serving_set(db).as_of_batch + 1
    replay.day(next_day)  # a new serving set as of it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = server.client.get("/health").json()
        if health["as_of"] != before["as_of"]:
            break
        time.sleep(0.5)
    assert health["as_of"] > before["as_of"], server.log.read_text()[-2000:]


@pytest.mark.postgres
def test_the_api_answers_from_postgresql(pg_base, archive, tmp_path, start_server):
    replay = AssetReplay(pg_base, archive, tmp_path / "models", serve=True)
    replay.run(BOOTSTRAP_ASSETS)
    replay.day(0)
    server = start_server(pg_base)
    assert server.client.get("/health").json()["store"].startswith("postgresql://")
    with replay.features_db() as db:
        user = int(db.scalar("SELECT min(user_id) FROM recommendation_rows"))
    assert server.client.get(f"/recommendations/{user}").json()["source"] == "model"
    assert server.client.get(f"/recommendations/{COLD_USER}").json()["source"] == "cold_start"
    expect_error(server.client.get("/recommendations/1?n=0"), 422, "query parameter n")


def test_serve_without_a_serving_set_or_store_ends_with_one_sentence(tmp_path):
    missing = run_cli("serve", "--store", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"recsys: There is no DuckDB store at {tmp_path / 'nowhere' / 'features.duckdb'}: run the pipeline on this store first."
    with open_store(str(tmp_path / "empty" / "features.duckdb")) as db:
        db.apply_schema("features")
    empty = run_cli("serve", "--store", str(tmp_path / "empty"))
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1
    assert "has no serving set yet: run the daily pipeline through batch_recommendations first" in empty.stderr
    # A store whose lists are still in the row-per-movie table (before recommendation_lists).
    with open_store(str(tmp_path / "older" / "features.duckdb")) as db:
        db.apply_schema("features")
        db.execute(
            "INSERT INTO serving_sets VALUES ('v1', 0, '2025-01-01', 'array', 32, 3.5, 1, 1, 20, TIMESTAMP '2025-01-02 00:00:00', 'r1')"
        )
        db.execute("DROP VIEW recommendation_rows")
        db.execute("DROP TABLE recommendation_lists")
    older = run_cli("serve", "--store", str(tmp_path / "older"))
    assert older.returncode == 2 and older.stderr.count("\n") == 1
    assert "holds recommendations in an older layout: materialize any asset of the feature store" in older.stderr
    bad_url = run_cli("serve", "--store", "mysql://somewhere/db")
    assert bad_url.returncode == 2 and "neither a directory nor a postgresql:// URL" in bad_url.stderr
