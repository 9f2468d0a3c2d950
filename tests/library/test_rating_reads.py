"""What a day of the models layer reads of the rating history, on both engines: the latest N
ratings before the day (the bias baselines' fit), a window of batches counted per movie from the
movies' per-day deltas (the popularity ranking), and the day's users' ratings through the day;
none of them reaches past the day."""

from __future__ import annotations

import polars as pl

from recsys.features.point_in_time import YearScaler, build_examples, empty_movie_state, empty_user_state, movie_features
from recsys.features.state import movie_counts_between
from recsys.models.versions import latest_ratings, rating_history
from recsys.settings import store_urls
from recsys.stores import open_store

# Batch -1 is the bootstrap; seq is replay order across batches.
BATCHES = [-1, -1, -1, 0, 0, 1, 1, 2, 2]
USERS = [1, 2, 3, 1, 4, 2, 5, 1, 6]


def built():
    """Training examples and movie deltas as the feature layer builds them, so every column has its
    stored type."""
    rows = len(BATCHES)
    ratings = pl.DataFrame({
        "block": BATCHES, "batch": pl.Series(BATCHES, dtype=pl.Int32), "seq": list(range(10, 10 + rows)), "user_id": USERS,
        "movie_id": [100 + i for i in range(rows)], "rating": [1.0 + i / 2 for i in range(rows)], "timestamp": [1000 + i for i in range(rows)],
    })  # fmt: skip
    movies = pl.DataFrame({"movie_id": ratings["movie_id"], "title": "t", "year": 1999, "genres": "Drama"})
    features = movie_features(movies, YearScaler(mean=1990.0, std=10.0))
    return build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0)


def test_a_days_reads_stop_before_the_day_and_the_fit_takes_the_latest(store_base):
    with open_store(store_urls(store_base)["features"]) as db:
        db.apply_schema("features")
        examples = built()
        db.insert("training_examples", examples.examples)
        db.insert("movie_deltas", examples.movie_deltas.rename({"block": "batch"}).with_columns(pl.col("batch").cast(pl.Int32)))
        # The latest 3 ratings before day 2: seq 16, 15, 14 (days 1 and 0), none of day 2.
        assert sorted(latest_ratings(db, 2, 3)["seq"].to_list()) == [14, 15, 16]
        assert sorted(latest_ratings(db, 2, 100)["seq"].to_list()) == list(range(10, 17))
        # A window of batches, counted per movie (each rated once here): the bootstrap counts as one.
        window = movie_counts_between(db, -1, 0).sort("movie_id")
        assert window.rows() == [(100 + i, 1.0 + i / 2, 1) for i in range(5)]
        assert movie_counts_between(db, 1, 1).sort("movie_id")["movie_id"].to_list() == [105, 106]
        # Day 1's users (2 and 5): all their ratings through day 1, in replay order; none of day 2.
        day = rating_history(db, 1, rated_after=0)
        assert day.select("seq", "user_id").rows() == [(11, 2), (15, 2), (16, 5)]
        # No user rated after day 2: no rows, with the columns.
        assert rating_history(db, 2, rated_after=2).columns == day.columns
        assert rating_history(db, 2, rated_after=2).is_empty()
