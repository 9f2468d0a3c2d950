"""Point-in-time features at event and at batch time: no leakage (same-second ties included),
incremental equals one pass, rewinding undoes exactly."""

from __future__ import annotations

import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recsys.features.point_in_time import (
    GENRE_FLAGS,
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


def assert_features_from(example: dict, past: pl.DataFrame, global_past: pl.DataFrame) -> None:
    """The example's features are exactly those of `past` (its user's and movie's earlier ratings)."""
    mine = past.filter(pl.col("user_id") == example["user_id"])
    movie = past.filter(pl.col("movie_id") == example["movie_id"])
    global_mean = global_past["rating"].mean() if global_past.height else PRIOR_RATING
    assert example["u_count"] == mine.height
    assert example["u_mean"] == pytest.approx(mine["rating"].mean() if mine.height else 0.0)
    assert example["m_count"] == movie.height
    assert example["m_mean"] == pytest.approx(movie["rating"].mean() if movie.height else global_mean)
    assert example["global_mean"] == pytest.approx(global_mean)
    for genre in GENRE_SLUGS:
        in_genre = mine.filter(pl.col(f"mg_{genre}") == 1)
        assert example[f"ug_count_{genre}"] == in_genre.height
        assert example[f"ug_mean_{genre}"] == pytest.approx(in_genre["rating"].mean() if in_genre.height else 0.0)


@pytest.mark.parametrize("feature_time", ["event", "batch"])
def test_features_use_only_earlier_ratings(data, feature_time):
    ratings, _, features = data
    built = build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0, feature_time=feature_time)
    examples = built.examples
    assert examples.height == ratings.height
    history = ratings.join(features.select("movie_id", *[f"mg_{s}" for s in GENRE_SLUGS]), on="movie_id")
    for index in random.Random(3).sample(range(examples.height), 150):
        example = examples.row(index, named=True)
        earlier_blocks = history.filter(pl.col("block") < example["seq"] // BLOCK)
        # Event time: every rating of a strictly earlier second, from any block, the same one included.
        past = history.filter(pl.col("timestamp") < example["timestamp"]) if feature_time == "event" else earlier_blocks
        assert_features_from(example, past, earlier_blocks)


def tied(ratings: pl.DataFrame, seconds: int) -> pl.DataFrame:
    """The ratings with timestamps coarsened to `seconds`, so many share a second, blocks included."""
    return ratings.with_columns((pl.col("timestamp") // seconds * seconds).alias("timestamp"))


def test_event_time_never_sees_a_rating_of_the_same_second(data):
    ratings, _, features = data
    ratings = tied(ratings, 86_400 * 20)
    # Ties within blocks and across block boundaries, and users who rate twice in one second.
    assert ratings.group_by("user_id", "timestamp").len()["len"].max() > 1
    boundary = ratings.group_by("block").agg(pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last"))
    assert (boundary["first"].shift(-1) == boundary["last"]).sum() > 0
    examples = build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0).examples
    history = ratings.join(features.select("movie_id", *[f"mg_{s}" for s in GENRE_SLUGS]), on="movie_id")
    same_second = examples.join(ratings.group_by("user_id", "timestamp").len(), on=["user_id", "timestamp"]).filter(pl.col("len") > 1)
    for example in same_second.sample(60, seed=1).iter_rows(named=True):
        earlier_blocks = history.filter(pl.col("block") < example["seq"] // BLOCK)
        assert_features_from(example, history.filter(pl.col("timestamp") < example["timestamp"]), earlier_blocks)


def test_event_time_features_of_a_hand_made_session():
    # One user's session across a day boundary: two ratings at second 100 end day 0, two more at
    # second 100 and one at 160 start day 1. A rating sees only earlier seconds, whichever day.
    features = pl.DataFrame({"movie_id": [1, 2, 3, 4, 5], **{f: [0] * 5 for f in GENRE_FLAGS}, "m_no_genre": [1] * 5, "m_year_z": [0.0] * 5, "m_year_known": [0] * 5})
    session = pl.DataFrame({
        "block": [0, 0, 0, 1, 1, 1], "batch": [0, 0, 0, 1, 1, 1], "seq": [1, 2, 3, 4, 5, 6], "user_id": [7] * 6,
        "movie_id": [1, 2, 3, 4, 5, 1], "rating": [1.0, 4.0, 5.0, 2.0, 3.0, 5.0], "timestamp": [40, 100, 100, 100, 100, 160],
    })  # fmt: skip
    one_pass = build_examples(session, features, empty_user_state(), empty_movie_state(), 0.0, 0)
    # Day by day: day 1 starts from day 0's state, and day 0's ratings of second 100 are carried.
    day0 = build_examples(session.filter(pl.col("block") == 0), features, empty_user_state(), empty_movie_state(), 0.0, 0)
    carried = session.filter((pl.col("block") == 0) & (pl.col("timestamp") >= 100)).select("user_id", "movie_id", "rating", "timestamp")
    day1 = build_examples(session.filter(pl.col("block") == 1), features, day0.users_after, day0.movies_after, day0.global_sum, day0.global_count, carried=carried)
    for examples in (one_pass.examples, pl.concat([day0.examples, day1.examples])):
        assert examples["u_count"].to_list() == [0, 1, 1, 1, 1, 5]
        assert examples["u_mean"].to_list() == pytest.approx([0.0, 1.0, 1.0, 1.0, 1.0, 3.0])
        assert examples["m_count"].to_list() == [0, 0, 0, 0, 0, 1]  # movie 1 again at 160: its rating at 40


def test_block_by_block_equals_one_pass(data):
    ratings, _, features = data
    ratings = tied(ratings, 86_400 * 20)
    one_pass = build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0)
    users, movies, total, count, parts = empty_user_state(), empty_movie_state(), 0.0, 0, []
    for block in range(ratings["block"].max() + 1):
        day = ratings.filter(pl.col("block") == block)
        carried = ratings.filter((pl.col("block") < block) & (pl.col("timestamp") >= day["timestamp"].min()))
        built = build_examples(day, features, users, movies, total, count, carried=carried.select("user_id", "movie_id", "rating", "timestamp"))
        users = merge_state(users, built.users_after, "user_id")
        movies = merge_state(movies, built.movies_after, "movie_id")
        total, count = built.global_sum, built.global_count
        parts.append(built.examples)
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


def test_deltas_are_each_blocks_own_sums(data):
    """What a rewind takes back out: per (block, key), exactly that block's ratings of the key."""
    ratings, _, features = data
    ratings = tied(ratings, 86_400 * 20)
    built = build_examples(ratings, features, empty_user_state(), empty_movie_state(), 0.0, 0)
    movies = ratings.group_by("block", "movie_id").agg(m_sum=pl.col("rating").sum(), m_count=pl.len().cast(pl.Int64))
    assert_frame_equal(built.movie_deltas, movies.sort("block", "movie_id"))
    users = (
        ratings.join(features, on="movie_id")
        .group_by("block", "user_id")
        .agg(u_count=pl.len().cast(pl.Int64), ug_sum_drama=(pl.col("rating") * pl.col("mg_drama")).sum())
    )
    assert_frame_equal(built.user_deltas.select(users.columns), users.sort("block", "user_id"), check_dtypes=False)


def test_genre_order_is_the_shared_vocabulary():
    assert len(GENRE_SLUGS) == len(GENRES) == 19
