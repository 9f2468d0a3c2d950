"""The lake's GX suites catch each kind of bad data in the suite and expectation meant for it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from recsys.lake.cleaning import CLEAN_RATINGS_SCHEMA
from recsys.lake.suites import (
    batch_summary,
    lake_movies_suites,
    lake_ratings_suite_specs,
    lake_ratings_suites,
    validate_lake_batch,
)
from recsys.quality.gx import validate, validate_all
from recsys.quality.results import ExpectationOutcome, SuiteResult, SuiteSpec

BATCH_SIZE = 100
MAX_TIMESTAMP = 2_000_000_000


@pytest.fixture(scope="module")
def ratings_suites() -> dict[str, SuiteSpec]:
    suites = lake_ratings_suites(batch_size=BATCH_SIZE, max_timestamp=MAX_TIMESTAMP)
    return {suite.name: suite for suite in suites}


@pytest.fixture(scope="module")
def movies_suites() -> dict[str, SuiteSpec]:
    return {suite.name: suite for suite in lake_movies_suites()}


def ratings_batch(rows: int = 6, **columns: list) -> pl.DataFrame:
    """A clean ratings batch; keyword arguments replace whole columns (same length)."""
    data = {
        "batch": [3] * rows,
        "seq": list(range(100, 100 + rows)),
        "user_id": [1 + i % 3 for i in range(rows)],
        "movie_id": [10 + i for i in range(rows)],
        "rating": [0.5 + (i % 10) / 2 for i in range(rows)],
        "timestamp": [1_000_000_000 + i for i in range(rows)],
    }
    data.update(columns)
    return pl.DataFrame(data, schema=CLEAN_RATINGS_SCHEMA)


def movies_table(**columns: list) -> pl.DataFrame:
    data = {
        "movie_id": [1, 2, 3, 4],
        "title": ["Toy Story", "Jumanji", "Heat", "Unknown Year"],
        "year": [1995, 1995, 1995, None],
        "genres": ["Adventure|Animation|Children|Comedy|Fantasy", "Adventure", "", "Film-Noir"],
    }
    data.update(columns)
    schema = {"movie_id": pl.Int64, "title": pl.String, "year": pl.Int32, "genres": pl.String}
    return pl.DataFrame(data, schema=schema)


def failed_by_label(result: SuiteResult) -> dict[str, ExpectationOutcome]:
    return {outcome.label: outcome for outcome in result.failed()}


def run_by_name(frame: pl.DataFrame, suites: dict[str, SuiteSpec]) -> dict[str, SuiteResult]:
    return {result.suite: result for result in validate_all(frame, list(suites.values()))}


def ratings_frame_suites(suites: dict[str, SuiteSpec]) -> dict[str, SuiteSpec]:
    return {name: suite for name, suite in suites.items() if suite.frame == "ratings"}


# --- the suites themselves ------------------------------------------------------------------


def test_suite_names_frames_and_severities(ratings_suites, movies_suites) -> None:
    assert {name: (s.frame, s.severity) for name, s in ratings_suites.items()} == {
        "lake_ratings_schema": ("ratings", "error"),
        "lake_ratings_values": ("ratings", "error"),
        "lake_ratings_volume": ("summary", "warn"),
    }
    assert {name: (s.frame, s.severity) for name, s in movies_suites.items()} == {
        "lake_movies_schema": ("movies", "error"),
        "lake_movies_values": ("movies", "error"),
        "lake_movies_quality": ("movies", "warn"),
    }


def test_listing_suites_does_not_import_great_expectations() -> None:
    code = (
        "import sys\n"
        "from recsys.lake import suites as v\n"
        "v.lake_movies_suites(); v.lake_ratings_suite_specs()\n"
        "v.lake_ratings_suites(batch_size=10, max_timestamp=10)\n"
        "sys.exit('great_expectations' in sys.modules or 'pandas' in sys.modules)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_suite_specs_name_the_same_checks_but_cannot_validate(ratings_suites) -> None:
    specs = lake_ratings_suite_specs()

    def identity(suite: SuiteSpec) -> tuple:
        return suite.name, suite.frame, suite.severity, suite.description

    assert [identity(spec) for spec in specs] == [identity(s) for s in ratings_suites.values()]
    values_spec = next(spec for spec in specs if spec.name == "lake_ratings_values")
    with pytest.raises(ValueError, match="lake_ratings_suites"):
        validate(ratings_batch(), values_spec)


def test_suites_for_different_frames_are_not_run_together(ratings_suites) -> None:
    with pytest.raises(ValueError, match="different frames"):
        validate_all(ratings_batch(), list(ratings_suites.values()))


# --- ratings batch ----------------------------------------------------------------------------


def test_clean_batch_passes_every_ratings_suite(ratings_suites) -> None:
    results = run_by_name(ratings_batch(), ratings_frame_suites(ratings_suites))
    summary = batch_summary(batch=3, rows_raw=6, rows_clean=6, rows_rejected=0)
    results["lake_ratings_volume"] = validate(summary, ratings_suites["lake_ratings_volume"])

    for result in results.values():
        assert result.success, result.summary()
        assert result.failed() == []
    assert results["lake_ratings_schema"].severity == "error"
    assert results["lake_ratings_volume"].severity == "warn"


def test_outcomes_follow_the_suite_order(ratings_suites) -> None:
    suite = ratings_suites["lake_ratings_values"]
    result = validate(ratings_batch(), suite)

    expected = [e.configuration.type for e in suite.build_expectations()]
    assert [outcome.expectation for outcome in result.outcomes] == expected
    assert result.outcomes[0].column == "batch"
    assert result.outcomes[-1].column == "user_id,movie_id,timestamp"


def test_rating_out_of_range_fails_values(ratings_suites) -> None:
    frame = ratings_batch(rating=[4.0, 7.0, 3.5, 7.0, 1.0, 2.0])
    results = run_by_name(frame, ratings_frame_suites(ratings_suites))

    assert results["lake_ratings_schema"].success
    values = results["lake_ratings_values"]
    assert not values.success
    failed = failed_by_label(values)
    assert set(failed) == {
        "expect_column_values_to_be_between(rating)",
        "expect_column_values_to_be_in_set(rating)",
    }
    between = failed["expect_column_values_to_be_between(rating)"]
    assert between.unexpected_count == 2
    assert between.sample_values == [7.0, 7.0]
    assert between.unexpected_percent == pytest.approx(100 * 2 / 6)


@pytest.mark.parametrize("missing", [None, float("nan")], ids=["null", "nan"])
def test_missing_rating_fails_not_null(ratings_suites, missing) -> None:
    frame = ratings_batch(rating=[4.0, missing, 3.5, 4.5, 1.0, 2.0])
    result = validate(frame, ratings_suites["lake_ratings_values"])

    failed = failed_by_label(result)
    assert set(failed) == {"expect_column_values_to_not_be_null(rating)"}
    assert failed["expect_column_values_to_not_be_null(rating)"].unexpected_count == 1


def test_off_grid_rating_fails_the_value_set_only(ratings_suites) -> None:
    frame = ratings_batch(rating=[4.0, 3.3, 3.5, 4.5, 1.0, 2.0])
    result = validate(frame, ratings_suites["lake_ratings_values"])

    failed = failed_by_label(result)
    assert set(failed) == {"expect_column_values_to_be_in_set(rating)"}
    assert failed["expect_column_values_to_be_in_set(rating)"].sample_values == [3.3]


def test_duplicate_rating_event_fails_compound_uniqueness(ratings_suites) -> None:
    frame = ratings_batch(
        user_id=[1, 2, 2, 3, 4, 5],
        movie_id=[10, 11, 11, 12, 13, 14],
        timestamp=[100, 200, 200, 300, 400, 500],
    )
    result = validate(frame, ratings_suites["lake_ratings_values"])

    failed = failed_by_label(result)
    assert set(failed) == {"expect_compound_columns_to_be_unique(user_id,movie_id,timestamp)"}
    duplicate = failed["expect_compound_columns_to_be_unique(user_id,movie_id,timestamp)"]
    assert duplicate.unexpected_count == 2  # both rows of the pair
    assert duplicate.sample_values[0] == {"user_id": 2, "movie_id": 11, "timestamp": 200}


def test_repeated_seq_fails_seq_uniqueness(ratings_suites) -> None:
    result = validate(ratings_batch(seq=[1, 2, 3, 3, 4, 5]), ratings_suites["lake_ratings_values"])

    failed = failed_by_label(result)
    assert set(failed) == {"expect_column_values_to_be_unique(seq)"}
    assert failed["expect_column_values_to_be_unique(seq)"].sample_values == [3, 3]


def test_non_positive_ids_and_late_timestamps_fail_their_ranges(ratings_suites) -> None:
    frame = ratings_batch(
        user_id=[1, -4, 2, 3, 1, 2],
        movie_id=[10, 11, 0, 13, 14, 15],
        timestamp=[1, 2, 3, 4, 5, MAX_TIMESTAMP + 1],
    )
    result = validate(frame, ratings_suites["lake_ratings_values"])

    failed = failed_by_label(result)
    assert set(failed) == {
        "expect_column_values_to_be_between(user_id)",
        "expect_column_values_to_be_between(movie_id)",
        "expect_column_values_to_be_between(timestamp)",
    }
    assert failed["expect_column_values_to_be_between(user_id)"].sample_values == [-4]
    assert failed["expect_column_values_to_be_between(movie_id)"].sample_values == [0]
    assert failed["expect_column_values_to_be_between(timestamp)"].unexpected_count == 1


def test_wrong_column_type_fails_schema(ratings_suites) -> None:
    frame = ratings_batch().with_columns(pl.col("user_id").cast(pl.Int32))
    results = run_by_name(frame, ratings_frame_suites(ratings_suites))

    failed = failed_by_label(results["lake_ratings_schema"])
    assert set(failed) == {"expect_column_values_to_be_of_type(user_id)"}
    assert failed["expect_column_values_to_be_of_type(user_id)"].observed_value == "int32"
    assert results["lake_ratings_values"].success


def test_rating_as_string_fails_schema(ratings_suites) -> None:
    frame = ratings_batch().with_columns(pl.col("rating").cast(pl.String))
    result = validate(frame, ratings_suites["lake_ratings_schema"])

    failed = failed_by_label(result)
    assert set(failed) == {"expect_column_values_to_be_of_type(rating)"}
    assert failed["expect_column_values_to_be_of_type(rating)"].observed_value == "str"


def test_missing_column_fails_schema_with_a_readable_error(ratings_suites) -> None:
    frame = ratings_batch().drop("timestamp")
    result = validate(frame, ratings_suites["lake_ratings_schema"])

    failed = failed_by_label(result)
    assert set(failed) == {
        "expect_table_columns_to_match_ordered_list",
        "expect_column_values_to_be_of_type(timestamp)",
    }
    assert failed["expect_table_columns_to_match_ordered_list"].observed_value == [
        "batch", "seq", "user_id", "movie_id", "rating",
    ]  # fmt: skip
    assert failed["expect_column_values_to_be_of_type(timestamp)"].error == (
        "missing column 'timestamp'"
    )


def test_reordered_columns_fail_schema(ratings_suites) -> None:
    frame = ratings_batch().select("seq", "batch", "user_id", "movie_id", "rating", "timestamp")
    result = validate(frame, ratings_suites["lake_ratings_schema"])

    assert set(failed_by_label(result)) == {"expect_table_columns_to_match_ordered_list"}


def test_validate_lake_batch_runs_each_suite_on_its_frame() -> None:
    summary = batch_summary(batch=3, rows_raw=6, rows_clean=5, rows_rejected=1)
    results = validate_lake_batch(
        ratings_batch(rating=[4.0, 7.0, 3.5, 4.5, 1.0, 2.0]),
        summary,
        batch_size=BATCH_SIZE,
        max_timestamp=MAX_TIMESTAMP,
        max_reject_rate=0.5,
    )

    assert [(r.suite, r.success) for r in results] == [
        ("lake_ratings_schema", True),
        ("lake_ratings_values", False),
        ("lake_ratings_volume", True),
    ]


# --- batch summary ------------------------------------------------------------------------------


def test_batch_summary_derives_reject_rate_and_unaccounted() -> None:
    summary = batch_summary(batch=3, rows_raw=10, rows_clean=7, rows_rejected=2)

    assert summary.row(0, named=True) == {
        "batch": 3,
        "rows_raw": 10,
        "rows_clean": 7,
        "rows_rejected": 2,
        "reject_rate": 0.2,
        "unaccounted": 1,
    }
    assert summary.schema["batch"] == pl.Int32


def test_high_reject_rate_fails_only_the_warn_suite(ratings_suites) -> None:
    summary = batch_summary(batch=3, rows_raw=12, rows_clean=6, rows_rejected=6)
    volume = validate(summary, ratings_suites["lake_ratings_volume"])
    batch_suites = list(ratings_frame_suites(ratings_suites).values())
    batch_results = validate_all(ratings_batch(), batch_suites)

    assert all(result.success for result in batch_results)
    assert not volume.success
    assert volume.severity == "warn"
    failed = failed_by_label(volume)
    assert set(failed) == {"expect_column_values_to_be_between(reject_rate)"}
    assert failed["expect_column_values_to_be_between(reject_rate)"].sample_values == [0.5]


def test_unaccounted_rows_fail_volume(ratings_suites) -> None:
    summary = batch_summary(batch=3, rows_raw=10, rows_clean=6, rows_rejected=0)
    result = validate(summary, ratings_suites["lake_ratings_volume"])

    failed = failed_by_label(result)
    assert "expect_column_values_to_be_in_set(unaccounted)" in failed
    assert failed["expect_column_values_to_be_in_set(unaccounted)"].sample_values == [4]


def test_empty_or_oversized_batch_fails_volume(ratings_suites) -> None:
    suite = ratings_suites["lake_ratings_volume"]
    empty = validate(batch_summary(3, rows_raw=0, rows_clean=0, rows_rejected=0), suite)
    oversized = validate(batch_summary(3, BATCH_SIZE + 1, BATCH_SIZE + 1, 0), suite)

    for result in (empty, oversized):
        assert set(failed_by_label(result)) == {"expect_column_values_to_be_between(rows_clean)"}


# --- movies -----------------------------------------------------------------------------------


def test_clean_movies_pass_every_movies_suite(movies_suites) -> None:
    for result in run_by_name(movies_table(), movies_suites).values():
        assert result.success, result.summary()


def test_nullable_year_keeps_its_integer_type(movies_suites) -> None:
    # Converted naively, an Int32 column with a null becomes float64 in pandas.
    result = validate(movies_table(), movies_suites["lake_movies_schema"])

    year_type = next(o for o in result.outcomes if o.label.endswith("_of_type(year)"))
    assert year_type.success
    assert year_type.observed_value == "int32"


def test_duplicate_movie_id_and_missing_title_fail_values(movies_suites) -> None:
    frame = movies_table(movie_id=[1, 2, 2, 4], title=["Toy Story", None, "Heat", "X"])
    results = run_by_name(frame, movies_suites)

    failed = failed_by_label(results["lake_movies_values"])
    assert set(failed) == {
        "expect_column_values_to_be_unique(movie_id)",
        "expect_column_values_to_not_be_null(title)",
    }
    assert failed["expect_column_values_to_be_unique(movie_id)"].sample_values == [2, 2]
    assert failed["expect_column_values_to_not_be_null(title)"].unexpected_count == 1
    assert results["lake_movies_quality"].success


def test_unknown_genre_and_old_year_only_warn(movies_suites) -> None:
    frame = movies_table(
        year=[1500, 1995, 1995, None],
        genres=["Comedy|Cartoon", "Adventure", "Action|", "Sci-Fi|IMAX"],
    )
    results = run_by_name(frame, movies_suites)

    assert results["lake_movies_schema"].success
    assert results["lake_movies_values"].success
    quality = results["lake_movies_quality"]
    assert not quality.success
    assert quality.severity == "warn"
    failed = failed_by_label(quality)
    assert failed["expect_column_values_to_match_regex(genres)"].sample_values == [
        "Comedy|Cartoon",
        "Action|",
    ]
    assert failed["expect_column_values_to_be_between(year)"].sample_values == [1500]


def test_float_year_fails_movies_schema(movies_suites) -> None:
    frame = movies_table().with_columns(pl.col("year").cast(pl.Float64))
    result = validate(frame, movies_suites["lake_movies_schema"])

    failed = failed_by_label(result)
    assert set(failed) == {"expect_column_values_to_be_of_type(year)"}
    assert failed["expect_column_values_to_be_of_type(year)"].observed_value == "float64"


# --- reporting ----------------------------------------------------------------------------------


def test_metadata_is_plain_json_and_summary_names_failures(ratings_suites) -> None:
    frame = ratings_batch(
        rating=[7.0, None, 3.3, 4.0, 4.0, 4.0],
        user_id=[1, 1, 1, 1, 1, 1],
        movie_id=[10, 10, 10, 10, 10, 10],
        timestamp=[5, 5, 5, 5, 5, 5],
    )
    result = validate(frame, ratings_suites["lake_ratings_values"])
    metadata = result.to_metadata()

    assert json.loads(json.dumps(metadata, allow_nan=False)) == metadata
    assert metadata["evaluated"] == len(result.outcomes) == 13
    assert metadata["failed"] == 4
    assert metadata["passed"] == 9
    rating_range = metadata["expect_column_values_to_be_between(rating)"]
    assert rating_range["success"] is False
    assert rating_range["unexpected_count"] == 1
    assert rating_range["sample_values"] == [7.0]
    assert rating_range["kwargs"] == {"column": "rating", "min_value": 0.5, "max_value": 5.0}

    summary = result.summary()
    assert summary.startswith("lake_ratings_values: 9/13 passed; failed: ")
    assert "expect_column_values_to_be_between(rating) 1 unexpected [7.0]" in summary
    assert "expect_compound_columns_to_be_unique(user_id,movie_id,timestamp)" in summary
    assert "\n" not in summary


def test_schema_metadata_with_a_missing_column_is_plain_json(ratings_suites) -> None:
    result = validate(ratings_batch().drop("rating"), ratings_suites["lake_ratings_schema"])

    json.dumps(result.to_metadata(), allow_nan=False)
    assert "expect_column_values_to_be_of_type(rating) error: missing column 'rating'" in (
        result.summary()
    )


def test_validating_50k_rows_twice_gives_the_same_results(ratings_suites) -> None:
    rows = 50_000
    rng = np.random.default_rng(7)
    frame = ratings_batch(
        rows,
        user_id=rng.integers(1, 2_000, rows).tolist(),
        movie_id=rng.integers(1, 10_000, rows).tolist(),
        rating=(rng.integers(1, 11, rows) / 2).tolist(),
    ).with_columns(
        # A few bad values so the samples must come out in the same order too.
        rating=pl.when(pl.col("seq") % 7_000 == 0).then(9.0).otherwise(pl.col("rating"))
    )
    suites = list(ratings_frame_suites(ratings_suites).values())

    first = validate_all(frame, suites)
    second = validate_all(frame, suites)

    assert first == second
    assert [result.to_metadata() for result in first] == [r.to_metadata() for r in second]
    bad_ratings = failed_by_label(first[1])["expect_column_values_to_be_between(rating)"]
    assert bad_ratings.unexpected_count == 7  # seq 7000, 14000, ..., 49000
    assert bad_ratings.sample_values == [9.0] * 5
