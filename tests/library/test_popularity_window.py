"""The popularity fallback counts only the ratings of its recent window, on real stores."""

from __future__ import annotations

import polars as pl

from recsys.features.point_in_time import YearScaler, build_examples, empty_movie_state, empty_user_state, movie_features
from recsys.lake.cleaning import CLEAN_RATINGS_SCHEMA
from recsys.models.ranking import PopularityWindow
from recsys.serving import store as serving_store
from recsys.serving.build import ServingSettings, build_popularity
from recsys.settings import store_urls
from recsys.stores import open_store


def movie_deltas(rows: list[tuple[int, int, float]]) -> pl.DataFrame:
    """The feature store's per-batch movie deltas of (batch, movie_id, rating) rows, each by its
    own user, as the feature layer builds them (each batch a block)."""
    ratings = pl.DataFrame(
        {
            "batch": [r[0] for r in rows],
            "seq": list(range(len(rows))),
            "user_id": list(range(1, len(rows) + 1)),
            "movie_id": [r[1] for r in rows],
            "rating": [r[2] for r in rows],
            "timestamp": [1_000_000_000 + i for i in range(len(rows))],
        },
        schema=CLEAN_RATINGS_SCHEMA,
    ).with_columns(block=pl.col("batch"))
    movies = pl.DataFrame({"movie_id": sorted({r[1] for r in rows}), "title": "t", "year": 1999, "genres": "Drama"})
    features = movie_features(movies, YearScaler(mean=1990.0, std=10.0))
    built = build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0)
    return built.movie_deltas.rename({"block": "batch"})


def test_the_window_ends_with_the_day_and_holds_its_days_only(store_base):
    with open_store(store_urls(store_base)["features"]) as features:
        features.apply_schema("features")
        features.insert("movie_deltas", movie_deltas([
            (-1, 1, 5.0), (-1, 1, 5.0), (-1, 1, 5.0),  # the bootstrap: movie 1 loved, but long ago
            (2, 2, 1.0), (2, 2, 1.0),                  # batch 2: just outside a 3-day window ending at 5
            (3, 2, 4.0), (4, 2, 4.0),                  # movie 2 in the window: two ratings of 4
            (4, 3, 3.0), (5, 3, 3.0), (5, 3, 3.0),     # movie 3: three ratings of 3
            (5, 4, 5.0),                               # movie 4: one rating, below the threshold
            (6, 5, 5.0), (6, 5, 5.0),                  # batch 6: after the day, never seen
        ]))  # fmt: skip
        settings = ServingSettings(popularity=PopularityWindow(days=3, min_ratings=2))
        popular = build_popularity(features, settings, as_of=5)
        assert popular.select("movie_id", "rank", "mean_rating", "ratings").rows() == [(3, 1, 3.0, 3), (2, 2, 4.0, 2)]
        as_of, stored = serving_store.read_popularity(features)
        assert as_of == 5 and stored.equals(popular.select(stored.columns))

        # A window of 14 days, the default, reaches back to the bootstrap (which counts as one day).
        popular = build_popularity(features, ServingSettings(popularity=PopularityWindow(min_ratings=2)), as_of=5)
        assert popular["movie_id"].to_list() == [2, 1, 3]  # 4 ratings of movie 2 against 3 and 3: 1's mean breaks the tie
        assert popular.filter(pl.col("movie_id") == 2)["ratings"].item() == 4
