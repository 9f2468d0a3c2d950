"""The HTTP API over real HTTP on loopback: `recsys serve` runs as its own process on stores a
replay wrote (DuckDB, and PostgreSQL in one test), and every bad input gets a 4xx with a sentence."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pipeline_helpers import BATCH, BOOTSTRAP, BOOTSTRAP_ASSETS, Replay

from recsys_api.app import Recommendations
from recsys_assets import serving_store, synthetic
from recsys_resources import open_store

DAYS = 2
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`recsys serve` in a subprocess, answering on a free loopback port."""

    def __init__(self, store: str, tmp: Path) -> None:
        self.port = free_port()
        self.log = tmp / f"serve-{self.port}.log"
        command = [sys.executable, "-m", "recsys_assets.cli", "serve", "--store", store, "--port", str(self.port), "--refresh-seconds", "0.5"]
        self.process = subprocess.Popen(command, stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ})
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"recsys serve exited: {self.log.read_text()}")
            try:
                self.client.get("/health")
                return
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError(f"recsys serve did not answer in 90 s: {self.log.read_text()}")

    def stop(self) -> None:
        self.client.close()
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("archive")
    synthetic.generate(data, BOOTSTRAP + (DAYS + 1) * BATCH, seed=5)
    return data


@pytest.fixture(scope="module")
def served(archive, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    replay = Replay(tmp / "stores", archive, tmp / "models", serve=True)
    replay.run(BOOTSTRAP_ASSETS)
    for batch in range(DAYS):
        replay.day(batch)
    server = Server(str(tmp / "stores"), tmp)
    yield server, replay
    server.stop()


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
        user = int(db.scalar("SELECT min(user_id) FROM batch_recommendations WHERE as_of_batch = $a", {"a": current.as_of_batch}))
        stored = db.query(
            "SELECT movie_id FROM batch_recommendations WHERE model_version = $v AND as_of_batch = $a AND user_id = $u ORDER BY rank",
            {"v": current.model_version, "a": current.as_of_batch, "u": user},
        )["movie_id"].to_list()
        rated = set(lake.query("SELECT movie_id FROM lake_ratings WHERE user_id = $u", {"u": user})["movie_id"])
    body = server.client.get(f"/recommendations/{user}", params={"n": 7}).json()
    Recommendations.model_validate(body)  # the answer matches the schema the OpenAPI document shows
    assert body["source"] == "model" and body["score_kind"] == "predicted_rating"
    assert body["model_version"] == current.model_version and body["as_of"] == current.partition_key
    movies = [item["movie_id"] for item in body["items"]]
    assert movies == stored[:7] and not set(movies) & rated
    assert [item["rank"] for item in body["items"]] == list(range(1, 8))
    assert all(item["title"] and 0.5 <= item["score"] <= 5.0 for item in body["items"])
    assert len(server.client.get(f"/recommendations/{user}").json()["items"]) == 10  # the default n


def test_an_unknown_user_gets_the_popularity_fallback_and_says_so(served):
    server, replay = served
    body = server.client.get("/recommendations/987654321", params={"n": 5}).json()
    Recommendations.model_validate(body)
    assert body["source"] == "popularity" and body["score_kind"] == "mean_rating" and "no ratings" in body["reason"]
    with replay.features_db() as db:
        popular = db.query("SELECT movie_id FROM popular_movies ORDER BY rank LIMIT 5")["movie_id"].to_list()
    assert [item["movie_id"] for item in body["items"]] == popular


def test_user_and_movie_lookups(served):
    server, replay = served
    with replay.features_db() as db:
        row = db.query("SELECT user_id, u_count, u_sum FROM user_state ORDER BY u_count DESC LIMIT 1").row(0, named=True)
    user = server.client.get(f"/users/{row['user_id']}").json()
    assert user["ratings"] == row["u_count"] and user["mean_rating"] == pytest.approx(row["u_sum"] / row["u_count"])
    assert user["has_recommendations"] and sum(g["ratings"] for g in user["genres"]) >= user["ratings"]
    movie = server.client.get("/movies/1").json()
    assert movie["movie_id"] == 1 and movie["title"] and movie["ratings"] >= 0
    expect_error(server.client.get("/users/987654321"), 404, "User 987654321 has no ratings", "popularity")
    expect_error(server.client.get("/movies/987654321"), 404, "Movie 987654321 is not in the catalog")


def test_predictions_by_id_and_for_a_movie_known_only_by_its_features(served):
    server, _ = served
    rec = server.client.get("/recommendations/1", params={"n": 1}).json()
    movie = rec["items"][0]["movie_id"]
    by_id = server.client.post("/predict", json={"user_id": 1, "movie_id": movie}).json()
    assert by_id["user_known"] and by_id["predicted_rating"] == pytest.approx(rec["items"][0]["score"], abs=1e-3)
    new = {"user_id": 1, "movie": {"genres": ["comedy", "Sci-Fi"], "year": 2024}}
    first = server.client.post("/predict", json=new).json()
    assert 0.5 <= first["predicted_rating"] <= 5.0 and first["movie_id"] is None
    assert server.client.post("/predict", json=new).json()["predicted_rating"] == first["predicted_rating"]
    stranger = server.client.post("/predict", json={"user_id": 987654321, "movie_id": movie}).json()
    assert not stranger["user_known"] and 0.5 <= stranger["predicted_rating"] <= 5.0


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "fragments"),
    [
        ("get", "/recommendations/1?n=0", None, 422, ["query parameter n", "greater than or equal to 1"]),
        ("get", "/recommendations/1?n=21", None, 422, ["query parameter n", "at most 20"]),
        ("get", "/recommendations/1?n=1000", None, 422, ["query parameter n"]),
        ("get", "/recommendations/1?n=ten", None, 422, ["query parameter n", "valid integer"]),
        ("get", "/recommendations/abc", None, 422, ["path parameter user_id", "valid integer"]),
        ("get", "/users/1.5", None, 422, ["path parameter user_id"]),
        ("post", "/predict", b"{not json", 422, ["JSON decode error"]),
        ("post", "/predict", {"user_id": 1}, 422, ["exactly one of movie_id or movie"]),
        ("post", "/predict", {"user_id": 1, "movie_id": 1, "movie": {"genres": []}}, 422, ["exactly one"]),
        ("post", "/predict", {"movie_id": 1}, 422, ["body field user_id", "Field required"]),
        ("post", "/predict", {"user_id": 1, "movie": {"genres": ["Space Opera"]}}, 422, ["unknown genre 'Space Opera'"]),
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


def test_health_stats_and_the_openapi_schema(served):
    server, replay = served
    health = server.client.get("/health").json()
    assert health["status"] == "ok" and health["embedding_backend"] == "array"
    stats = server.client.get("/stats").json()
    with replay.features_db() as db:
        assert stats["ratings"] == db.scalar("SELECT count(*) FROM training_examples")
        assert stats["users"] == db.scalar("SELECT count(*) FROM user_state")
    assert {"champion", "bias"} <= set(stats["latest_day"]["mse"]) and "popularity" in stats["latest_day"]["ndcg_at_10"]
    schema = server.client.get("/openapi.json").json()
    assert {"/health", "/stats", "/users/{user_id}", "/movies/{movie_id}", "/recommendations/{user_id}", "/predict"} <= set(schema["paths"])
    assert server.client.get("/docs").status_code == 200


def test_a_new_serving_set_is_picked_up_without_a_restart(served):
    server, replay = served
    before = server.client.get("/health").json()
    replay.day(DAYS)  # the next day: a new serving set as of it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = server.client.get("/health").json()
        if health["as_of"] != before["as_of"]:
            break
        time.sleep(0.5)
    assert health["as_of"] > before["as_of"], server.log.read_text()[-2000:]


@pytest.mark.postgres
def test_the_api_answers_from_postgresql(pg_base, archive, tmp_path):
    replay = Replay(pg_base, archive, tmp_path / "models", serve=True)
    replay.run(BOOTSTRAP_ASSETS)
    replay.day(0)
    server = Server(pg_base, tmp_path)
    try:
        assert server.client.get("/health").json()["store"].startswith("postgresql://")
        with replay.features_db() as db:
            user = int(db.scalar("SELECT min(user_id) FROM batch_recommendations"))
        assert server.client.get(f"/recommendations/{user}").json()["source"] == "model"
        assert server.client.get("/recommendations/987654321").json()["source"] == "popularity"
        expect_error(server.client.get("/recommendations/1?n=0"), 422, "query parameter n")
    finally:
        server.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recsys_assets.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_serve_without_a_serving_set_or_store_ends_with_one_sentence(tmp_path):
    missing = run_cli("serve", "--store", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"recsys: There is no DuckDB store at {tmp_path / 'nowhere' / 'features.duckdb'}: run the pipeline on this store first."
    with open_store(str(tmp_path / "empty" / "features.duckdb")) as db:
        db.apply_schema("features")
    empty = run_cli("serve", "--store", str(tmp_path / "empty"))
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1
    assert "has no serving set yet: run the daily pipeline through batch_recommendations first" in empty.stderr
    bad_url = run_cli("serve", "--store", "mysql://somewhere/db")
    assert bad_url.returncode == 2 and "neither a directory nor a postgresql:// URL" in bad_url.stderr
