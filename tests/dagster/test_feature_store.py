"""The feature assets on DuckDB and PostgreSQL: incremental equals from scratch (same-second ties
across day boundaries included), a range run equals day-by-day runs, and days out of order or
without their lake batch fail with a sentence."""

from __future__ import annotations

from pathlib import Path

import shutil

import polars as pl
import pytest
from asset_replay import AssetReplay, partition_of
from polars.testing import assert_frame_equal

from recsys.features.point_in_time import (
    build_examples,
    empty_movie_state,
    empty_user_state,
)
from recsys.stores import open_store
from recsys_assets import features

BATCH = 3_000
BOOTSTRAP = 6_000


@pytest.fixture(scope="module")
def archive(make_archive) -> Path:
    return make_archive(BOOTSTRAP + 6 * BATCH, 5)


@pytest.fixture(scope="module")
def tied_archive(archive, tmp_path_factory) -> Path:
    """The archive with timestamps cut to 10 minutes: ~100 ratings share each second, across day
    boundaries too, and users rate several movies in one second."""
    tied = tmp_path_factory.mktemp("tied")
    shutil.copytree(archive, tied, dirs_exist_ok=True)
    ratings = pl.read_csv(archive / "ratings.csv")
    ratings.with_columns(pl.col("timestamp") // 600 * 600).write_csv(tied / "ratings.csv")
    return tied


class Platform(AssetReplay):
    """A replay that runs partitions by batch number, without models."""

    def __init__(self, base: str, data: Path) -> None:
        super().__init__(base, data, batch=BATCH, bootstrap=BOOTSTRAP)

    def run(self, selection, partition: int | None = None, last: int | None = None, ok: bool = True, config: dict | None = None):
        key = partition_of(partition) if partition is not None else None
        return super().run(selection, key, ok, last=partition_of(last) if last is not None else None, config=config)

    def query(self, store: str, sql: str) -> pl.DataFrame:
        with open_store(self.urls[store]) as db:
            return db.query(sql)

    def heap_fetches_of_users_ratings(self) -> int:
        """Rows that an index-only scan of every user's ratings (PostgreSQL's training_examples_user)
        had to fetch from the table, because their page was not yet marked visible to all."""
        with open_store(self.urls["features"]) as db:
            db.execute("SET enable_seqscan = off")
            db.execute("SET enable_bitmapscan = off")
            sql = "EXPLAIN (ANALYZE, FORMAT JSON) SELECT user_id, movie_id, batch FROM training_examples WHERE user_id > 0"
            plan = db.connection.execute(sql).fetchone()[0][0]["Plan"]
        assert (plan["Node Type"], plan["Index Name"]) == ("Index Only Scan", "training_examples_user")
        return plan["Heap Fetches"]

    def load(self, lake_days: int) -> None:
        self.run(["raw_movies", "raw_ratings", "lake_movies", "lake_bootstrap"])
        self.run(["movie_features", "bootstrap_features"])
        for day in range(lake_days):
            self.run(["lake_ratings"], day)


def test_day_by_day_and_range_runs_agree_and_equal_a_from_scratch_pass(tied_archive, store_base, monkeypatch):
    platform = Platform(store_base, tied_archive)
    platform.load(lake_days=5)
    if store_base.startswith("postgresql"):
        # The bootstrap's bulk loads leave the planner statistics of what they loaded (reltuples
        # stays at -1, never counted, until ANALYZE; autovacuum may be off).
        counted = "SELECT relname, reltuples FROM pg_class WHERE relname IN ({})"
        assert platform.query("lake", counted.format("'lake_ratings'"))["reltuples"].min() > 0
        tables = "'training_examples', 'user_state', 'movie_state', 'user_deltas', 'movie_deltas'"
        assert platform.query("features", counted.format(tables))["reltuples"].min() > 0
        # The bootstrap drops the examples' indexes for its load and builds them again after it.
        indexes = platform.query("features", "SELECT indexname FROM pg_indexes WHERE tablename = 'training_examples'")
        assert set(indexes["indexname"]) == {"training_examples_batch_seq", "training_examples_seq", "training_examples_user"}
    seconds = platform.query("lake", "SELECT batch, min(timestamp) AS first, max(timestamp) AS last FROM lake_ratings GROUP BY batch ORDER BY batch")
    assert (seconds["first"].shift(-1) == seconds["last"]).sum() >= 3  # days that begin in the previous day's last second
    for day in range(4):
        result = platform.run(["daily_features"], day)
        assert all(e.passed for e in result.get_asset_check_evaluations())
    if store_base.startswith("postgresql"):
        # Each day's examples are vacuumed as they land: an index-only scan of a user's ratings
        # reads no page of the table (autovacuum may be off, as on this server).
        assert platform.heap_fetches_of_users_ratings() == 0
    one_by_one = platform.query("features", "SELECT * FROM training_examples ORDER BY seq")
    state = platform.query("features", "SELECT * FROM user_state ORDER BY user_id")

    # Incremental equals batch: the state after 4 daily updates is the state computed from
    # scratch on the same lake rows in one pass; so are the event-time features, which only a
    # correct carry of the previous day's last second gives.
    rows = platform.query("lake", "SELECT batch, seq, user_id, movie_id, rating, timestamp FROM lake_ratings WHERE batch <= 3")
    scratch = build_examples(
        rows.with_columns(block=pl.col("batch")),
        platform.query("features", "SELECT * FROM movie_features"),
        empty_user_state(), empty_movie_state(), 0.0, 0,
    )  # fmt: skip
    assert_frame_equal(state, scratch.users_after.select(state.columns), check_exact=False)
    # And the days' examples, value by value (the bootstrap is cut into blocks by the pipeline only).
    days = one_by_one.filter(pl.col("batch") >= 0)
    assert_frame_equal(days, scratch.examples.filter(pl.col("batch") >= 0).select(days.columns), check_exact=False)

    # A single-run backfill of the same range from a fresh start gives exactly the same rows,
    # also when it goes in several passes (as long backfills do, to bound memory).
    monkeypatch.setattr(features, "MAX_DAYS_PER_PASS", 3)
    platform.run(["bootstrap_features"])
    result = platform.run(["daily_features"], 0, last=3)
    checks = {"training_examples_values", "user_genre_profiles_values", "rating_distribution_drift", "genre_drift", "new_arrivals_drift"}
    assert {e.check_name for e in result.get_asset_check_evaluations()} == checks
    assert_frame_equal(platform.query("features", "SELECT * FROM training_examples ORDER BY seq"), one_by_one)
    assert_frame_equal(platform.query("features", "SELECT * FROM user_state ORDER BY user_id"), state)

    # Rebuilding the latest day rewinds it out of the state and in again: nothing changes.
    platform.run(["daily_features"], 3)
    assert_frame_equal(platform.query("features", "SELECT * FROM training_examples ORDER BY seq"), one_by_one)
    assert_frame_equal(platform.query("features", "SELECT * FROM user_state ORDER BY user_id"), state)


def test_days_out_of_order_or_without_their_lake_batch_fail_with_a_sentence(archive, tmp_path):
    platform = Platform(str(tmp_path / "stores"), archive)
    platform.load(lake_days=3)
    skipped = platform.run(["daily_features"], 1, ok=False)
    assert platform.failure(skipped) == (
        f"Features for partition {partition_of(1)} need partition {partition_of(0)} first: "
        "the feature store stands at the bootstrap."
    )
    platform.run(["daily_features"], 0, last=2)
    stale = platform.run(["daily_features"], 1, ok=False)
    assert platform.failure(stale) == (
        f"The feature store already stands at partition {partition_of(2)}; rebuilding {partition_of(1)} alone "
        f"would leave later days built on the old state: materialize {partition_of(1)} to {partition_of(2)} in one run."
    )
    no_lake = platform.run(["daily_features"], 3, ok=False)
    assert platform.failure(no_lake) == (
        f"Lake partition {partition_of(3)} is not materialized: materialize lake_ratings for it first."
    )


def test_the_bootstrap_is_cut_into_blocks_that_see_only_earlier_blocks_and_fits_the_year_scaler(tied_archive, tmp_path):
    platform = Platform(str(tmp_path / "stores"), tied_archive)
    platform.load(lake_days=0)
    bootstrap = platform.query("lake", "SELECT seq, user_id, movie_id, timestamp FROM lake_ratings WHERE batch = -1 ORDER BY seq")
    bootstrap = bootstrap.with_columns(block=pl.int_range(pl.len()) // BATCH)
    assert bootstrap["block"].n_unique() == BOOTSTRAP // BATCH > 1

    # The year is standardized with the mean and deviation of the movies rated in the bootstrap.
    movies = platform.query("lake", "SELECT movie_id, year FROM lake_movies")
    years = movies.join(bootstrap.select("movie_id").unique(), on="movie_id")["year"].drop_nulls()
    params = dict(platform.query("features", "SELECT name, value FROM feature_params").iter_rows())
    assert params["year_mean"] == pytest.approx(years.mean()) and params["year_std"] == pytest.approx(years.std())
    assert years.len() < movies["year"].drop_nulls().len()  # not every movie: only those rated in the slice

    # At event time (the default) each bootstrap example counts exactly the ratings of its user and
    # movie in strictly earlier seconds, the same block included (by brute force, on a sample).
    examples = platform.query("features", "SELECT seq, u_count, m_count FROM training_examples WHERE batch = -1 ORDER BY seq")
    assert examples.height == bootstrap.height
    compared = examples.join(bootstrap, on="seq")
    for row in compared.sample(200, seed=2).iter_rows(named=True):
        earlier = bootstrap.filter(pl.col("timestamp") < row["timestamp"])
        assert row["u_count"] == earlier.filter(pl.col("user_id") == row["user_id"]).height
        assert row["m_count"] == earlier.filter(pl.col("movie_id") == row["movie_id"]).height
    # Not vacuous: many ratings have earlier ones (with timestamps cut to 10 minutes a whole session
    # shares its second, so its ratings see none of each other: the strictness at work).
    assert (compared["u_count"] > 0).mean() > 0.3

    # At batch time each counts exactly the ratings of its user and movie in earlier blocks.
    platform.run(["bootstrap_features"], config={"bootstrap_features": {"feature_time": "batch"}})
    examples = platform.query("features", "SELECT seq, u_count, m_count FROM training_examples WHERE batch = -1")
    expected = bootstrap
    for key, column in (("user_id", "u_count"), ("movie_id", "m_count")):
        per_block = (
            bootstrap.group_by(key, "block").len()
            .sort(key, "block")
            .with_columns((pl.col("len").cum_sum().over(key) - pl.col("len")).alias(f"expected_{column}"))
        )  # fmt: skip
        expected = expected.join(per_block.drop("len"), on=[key, "block"])
    compared = examples.join(expected, on="seq")
    assert compared.height == bootstrap.height
    assert (compared["u_count"] == compared["expected_u_count"]).all()
    assert (compared["m_count"] == compared["expected_m_count"]).all()
    # The store remembers it: the next day is built at batch time too, seeing only earlier days.
    platform.run(["lake_ratings"], 0)
    platform.run(["daily_features"], 0)
    day = platform.query("features", "SELECT user_id, u_count FROM training_examples WHERE batch = 0")
    before = bootstrap.group_by("user_id").len()
    joined = day.join(before, on="user_id", how="left").with_columns(pl.col("len").fill_null(0))
    assert (joined["u_count"] == joined["len"]).all()
