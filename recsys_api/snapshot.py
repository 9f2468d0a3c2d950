"""What the API answers from: one serving set, read from the stores into memory.

Why in memory: the embedded default is DuckDB, whose files one process at a time may hold while
the pipeline writes, so the service reads a set once (the stores are open only while it loads)
and answers every request from memory, which is also what keeps GET /recommendations in the
low milliseconds. A refresher loads the next set when the pipeline records one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from recsys.calendar import Calendar
from recsys.errors import RecsysError
from recsys.features.point_in_time import (
    YearScaler,
    catalog_features,
    empty_movie_state,
    movie_features,
    user_features,
)
from recsys.features.state import state_as_of
from recsys.genres import GENRE_SLUGS, GENRES, NO_GENRES
from recsys.lake.cleaning import MAX_RATING, MIN_RATING
from recsys.models import factors, network, registry
from recsys.models.config import ModelConfig
from recsys.models.versions import cold_rating_user, config_of, load_version
from recsys.serving import store as serving_store
from recsys.settings import Settings
from recsys.stores import Store, open_store, redact

log = logging.getLogger("recsys.api")


@dataclass(frozen=True)
class Snapshot:
    serving: serving_store.ServingSet
    store: str  # the features store, password redacted
    loaded_at: dt.datetime
    # Precomputed recommendations: user i of rec_users has rec_movies/rec_scores[rec_start[i]:rec_start[i+1]].
    rec_users: np.ndarray
    rec_start: np.ndarray
    rec_movies: np.ndarray
    rec_scores: np.ndarray
    user_ids: np.ndarray  # sorted; row i of user_vectors and of users
    user_vectors: np.ndarray
    users: pl.DataFrame  # user_features rows (counts and means per genre), row i for user_ids[i]
    movies: dict[int, dict[str, Any]]  # movie_id -> title, genres, year, ratings, mean_rating, popularity_rank
    movie_ids: np.ndarray  # sorted; row i of movie_vectors
    movie_vectors: np.ndarray
    popular: pl.DataFrame  # movie_id, rank, mean_rating, ratings
    cold_start: pl.DataFrame  # movie_id, score: the list for users without one (empty in sets from before it existed)
    cold_user_vector: np.ndarray  # the user tower's output for a user with no ratings
    model: Any  # the champion (Keras), for movies described by features
    config: ModelConfig
    year_scaler: YearScaler
    rating_count: int
    monitoring: dict[str, Any]

    @property
    def version(self) -> str:
        return self.serving.model_version

    @property
    def as_of(self) -> str:
        return self.serving.partition_key

    def recommendations(self, user_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        i = int(np.searchsorted(self.rec_users, user_id))
        if i == len(self.rec_users) or self.rec_users[i] != user_id:
            return None
        return self.rec_movies[self.rec_start[i] : self.rec_start[i + 1]], self.rec_scores[self.rec_start[i] : self.rec_start[i + 1]]

    def user_row(self, user_id: int) -> int | None:
        i = int(np.searchsorted(self.user_ids, user_id))
        return i if i < len(self.user_ids) and self.user_ids[i] == user_id else None

    def movie_row(self, movie_id: int) -> int | None:
        i = int(np.searchsorted(self.movie_ids, movie_id))
        return i if i < len(self.movie_ids) and self.movie_ids[i] == movie_id else None

    def predict(self, user_vector: np.ndarray, movie_vector: np.ndarray) -> float:
        raw = self.serving.global_mean + float(np.dot(user_vector, movie_vector))
        return float(np.clip(raw, MIN_RATING, MAX_RATING))

    def new_movie_vector(self, genres: list[str], year: int | None) -> np.ndarray:
        """The movie tower's vector for a movie known only by its genres and year (no ratings)."""
        described = pl.DataFrame(
            {"movie_id": [0], "genres": ["|".join(genres) or NO_GENRES], "year": [year]},
            schema={"movie_id": pl.Int64, "genres": pl.String, "year": pl.Int32},
        )
        row = catalog_features(movie_features(described, self.year_scaler), empty_movie_state(), self.serving.global_mean)
        if self.config.factors:  # a movie nobody rated has no factors: its row is zeros
            settings = self.config.factor_settings()
            row = factors.with_movie_factors(row, factors.MovieFactors.empty(settings), settings)
        return network.embed_movies(self.model, row, self.config)[0]


def _genre_profile(row: dict[str, Any]) -> list[dict[str, Any]]:
    genres = [
        {"genre": name, "ratings": int(row[f"ug_count_{slug}"]), "mean_rating": float(row[f"ug_mean_{slug}"])}
        for name, slug in zip(GENRES, GENRE_SLUGS)
        if row[f"ug_count_{slug}"] > 0
    ]
    return sorted(genres, key=lambda g: (-g["ratings"], g["genre"]))


def user_profile(snapshot: Snapshot, row: int) -> dict[str, Any]:
    values = snapshot.users.row(row, named=True)
    return {"ratings": int(values["u_count"]), "mean_rating": float(values["u_mean"]), "genres": _genre_profile(values)}


def _monitoring(features: Store, calendar: Calendar) -> dict[str, Any]:
    """The latest day's test-then-train figures: MSE of champion and baselines, NDCG@10 and recall@10."""
    latest = features.scalar("SELECT max(batch) FROM model_metrics")
    if latest is None:
        return {}
    mse = features.query(
        "SELECT model, mse FROM model_metrics WHERE batch = $batch AND segment = 'all'", {"batch": latest}
    )
    ranks = features.query(
        "SELECT model, ndcg_at_10, recall_at_10 FROM ranking_metrics WHERE batch = $batch AND segment = 'all' "
        "AND protocol = 'catalog'",
        {"batch": latest},
    )
    return {
        "partition": calendar.partition_of(latest),
        "mse": {r["model"]: r["mse"] for r in mse.iter_rows(named=True)},
        "ndcg_at_10": {r["model"]: r["ndcg_at_10"] for r in ranks.iter_rows(named=True)},
        "recall_at_10": {r["model"]: r["recall_at_10"] for r in ranks.iter_rows(named=True)},
    }


def load_snapshot(settings: Settings) -> Snapshot:
    """Read the newest serving set and all the API needs with it; the stores are closed after."""
    with open_store(settings.features_url, read_only=True) as features:
        entry = serving_store.latest_serving_set(features)
        if entry is None:
            raise RecsysError(
                f"The feature store at {redact(settings.features_url)} has no serving set yet: "
                "run the daily pipeline through batch_recommendations first (e.g. `recsys demo`)."
            )
        if not features.table_exists("recommendation_lists"):
            raise RecsysError(
                f"The feature store at {redact(settings.features_url)} holds recommendations in an older layout: "
                "materialize any asset of the feature store (e.g. the next daily partition) to convert it."
            )
        version = registry.get(features, entry.model_version)
        if version is None:
            raise RecsysError(f"Serving set {entry.model_version} names a model the registry does not hold.")
        recs = features.query(
            "SELECT user_id, movie_id, score FROM recommendation_rows WHERE model_version = $version "
            "AND as_of_batch = $as_of ORDER BY user_id, rank",
            {"version": entry.model_version, "as_of": entry.as_of_batch},
        )
        user_ids, user_vectors = serving_store.read_embeddings(features, "user", entry.model_version, entry.as_of_batch)
        movie_ids, movie_vectors = serving_store.read_embeddings(features, "movie", entry.model_version, entry.as_of_batch)
        users_state, movies_state, _ = state_as_of(features, entry.as_of_batch, settings.calendar)
        _, popular = serving_store.read_popularity(features)
        cold_start = serving_store.read_cold_start(features, entry.model_version, entry.as_of_batch)
        params = dict(features.query("SELECT name, value FROM feature_params").iter_rows())
        rating_count = int(users_state["u_count"].sum())
        monitoring = _monitoring(features, settings.calendar)
    with open_store(settings.lake_url, read_only=True) as lake:
        catalog = lake.query("SELECT movie_id, title, year, genres FROM lake_movies")

    model = load_version(version)
    config = config_of(version)
    # Row i describes user_ids[i] by construction, so one searchsorted serves vectors and profiles.
    users = pl.DataFrame({"user_id": user_ids}).join(
        user_features(users_state, entry.global_mean), on="user_id", how="left", maintain_order="left"
    )
    cold = cold_rating_user(entry.global_mean, config)

    rec_users, first = np.unique(recs["user_id"].to_numpy(), return_index=True)
    movies = (
        catalog.join(movies_state.select("movie_id", "m_sum", "m_count"), on="movie_id", how="left")
        .join(popular.select("movie_id", pl.col("rank").alias("popularity_rank")), on="movie_id", how="left")
        .with_columns(pl.col("m_count").fill_null(0))
        .with_columns(mean_rating=pl.when(pl.col("m_count") > 0).then(pl.col("m_sum") / pl.col("m_count")))
    )
    return Snapshot(
        serving=entry,
        store=redact(settings.features_url),
        loaded_at=registry.now(),
        rec_users=rec_users,
        rec_start=np.append(first, recs.height),
        rec_movies=recs["movie_id"].to_numpy(),
        rec_scores=recs["score"].to_numpy(),
        user_ids=user_ids,
        user_vectors=user_vectors,
        users=users,
        movies={
            row["movie_id"]: {
                "title": row["title"],
                # The lake writes a movie without genres as '' (NO_GENRES is the source files' spelling).
                "genres": [] if row["genres"] in (None, "", NO_GENRES) else row["genres"].split("|"),
                "year": row["year"],
                "ratings": int(row["m_count"]),
                "mean_rating": row["mean_rating"],
                "popularity_rank": row["popularity_rank"],
            }
            for row in movies.iter_rows(named=True)
        },
        movie_ids=movie_ids,
        movie_vectors=movie_vectors,
        popular=popular,
        cold_start=cold_start,
        cold_user_vector=network.embed_users(model, cold, config)[0],
        model=model,
        config=config,
        year_scaler=YearScaler(mean=params.get("year_mean", 0.0), std=params.get("year_std", 1.0)),
        rating_count=rating_count,
        monitoring=monitoring,
    )


class SnapshotSource:
    """The snapshot in use, and a thread that swaps in a newer serving set when one is recorded."""

    def __init__(self, settings: Settings, refresh_seconds: float) -> None:
        self.settings = settings
        self.refresh_seconds = refresh_seconds
        self.current = load_snapshot(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load the newest serving set if it is not the one in use; True when it changed."""
        with open_store(self.settings.features_url, read_only=True) as features:
            entry = serving_store.latest_serving_set(features)
        if entry is None or entry == self.current.serving:
            return False
        self.current = load_snapshot(self.settings)  # one assignment: requests see old or new, never half
        log.info("Serving set %s as of %s loaded.", entry.model_version, entry.partition_key)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
            except (RecsysError, OSError) as error:
                log.warning("Keeping serving set %s: %s", self.current.version, error)

    def start(self) -> None:
        if self.refresh_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="serving-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
