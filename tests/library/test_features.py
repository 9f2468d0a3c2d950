"""Point-in-time features: no leakage, incremental equals one pass, rewinding undoes exactly."""

from __future__ import annotations

import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys.features.point_in_time import (
    PRIOR_RATING,
    YearScaler,
    build_examples,
    empty_movie_state,
    empty_user_state,
    movie_features,
    subtract,
)
from recsys.genres import GENRE_SLUGS, GENRES
from recsys.sources.blocks import read_blocks

BLOCK = 1_500


@pytest.fixture(scope="module")
def data(make_archive):
    ratings, movies = read_blocks(make_archive(15_000, 11), BLOCK)
    features = movie_features(movies, YearScaler.fit(ratings.filter(pl.col("block") == 0), movies))
    return ratings, movies, features


def merge_state(state: pl.DataFrame, updated: pl.DataFrame, key: str) -> pl.DataFrame:
    return pl.concat([state.join(updated.select(key), on=key, how="anti"), updated]).sort(key)


def test_movie_features_are_one_hot_with_a_no_genre_flag(data):
    _, movies, features = data
    assert features.height == movies.height
    flags = features.select([f"mg_{s}" for s in GENRE_SLUGS]).sum_horizontal() + features["m_no_genre"]
    assert flags.min() >= 1
    row = features.join(movies, on="movie_id").filter(pl.col("genres") == "").head(1)
    if row.height:
        assert row["m_no_genre"][0] == 1


def test_features_use_only_ratings_from_earlier_blocks(data):
    ratings, _, features = data
    built = build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0)
    examples = built.examples
    assert examples.height == ratings.height
    genre_of = features.select("movie_id", *[f"mg_{s}" for s in GENRE_SLUGS])
    history = ratings.join(genre_of, on="movie_id")
    for index in random.Random(3).sample(range(examples.height), 150):
        example = examples.row(index, named=True)
        past = history.filter(pl.col("block") < example["seq"] // BLOCK)
        mine = past.filter(pl.col("user_id") == example["user_id"])
        movie = past.filter(pl.col("movie_id") == example["movie_id"])
        global_mean = past["rating"].mean() if past.height else PRIOR_RATING
        assert example["u_count"] == mine.height
        assert example["u_mean"] == pytest.approx(mine["rating"].mean() if mine.height else 0.0)
        assert example["m_count"] == movie.height
        assert example["m_mean"] == pytest.approx(movie["rating"].mean() if movie.height else global_mean)
        assert example["global_mean"] == pytest.approx(global_mean)
        for genre in GENRE_SLUGS:
            in_genre = mine.filter(pl.col(f"mg_{genre}") == 1)
            assert example[f"ug_count_{genre}"] == in_genre.height
            assert example[f"ug_mean_{genre}"] == pytest.approx(in_genre["rating"].mean() if in_genre.height else 0.0)


def test_block_by_block_equals_one_pass(data):
    ratings, _, features = data
    one_pass = build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0)
    users, movies, total, count, parts = empty_user_state(), empty_movie_state(), 0.0, 0, []
    for block in range(ratings["block"].max() + 1):
        day = build_examples(ratings.filter(pl.col("block") == block), features, users, movies, total, count)
        users = merge_state(users, day.users_after, "user_id")
        movies = merge_state(movies, day.movies_after, "movie_id")
        total, count = day.global_sum, day.global_count
        parts.append(day.examples)
    assert_frame_equal(pl.concat(parts), one_pass.examples)
    assert_frame_equal(users, one_pass.users_after)
    assert_frame_equal(movies, one_pass.movies_after)
    assert (total, count) == (one_pass.global_sum, one_pass.global_count)


def test_subtracting_the_last_blocks_rewinds_the_state(data):
    ratings, _, features = data
    early = ratings.filter(pl.col("block") < 6)
    everything = build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0)
    first_six = build_examples(early, features, empty_user_state(), empty_movie_state(), 0.0, 0)
    late_deltas = everything.user_deltas.filter(pl.col("block") >= 6).drop("block")
    rewound = subtract(everything.users_after, late_deltas, "user_id")
    assert_frame_equal(rewound, first_six.users_after)


def test_genre_order_is_the_shared_vocabulary():
    assert len(GENRE_SLUGS) == len(GENRES) == 19
