"""Great Expectations suites for the feature store: training examples, user profiles, movie features.

Feature frames are wide (19 genre columns of each kind), and GX pays a fixed cost per
expectation. So the views below add per-row summaries computed in Polars (the smallest and
largest genre mean, how many values are null, NaN or infinite, how many genre flags are set)
and the suites check those per row alongside the key columns: every row is still checked, at
a fraction of the cost of ~100 single-column expectations per batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from recsys.genres import GENRE_SLUGS
from recsys.lake.suites import HALF_STAR_RATINGS
from recsys.quality.gx import expectations
from recsys.quality.results import SuiteSpec, suites_for

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

def _non_finite(schema: pl.Schema, columns: list[str]) -> pl.Expr:
    """Per row: how many of `columns` are null, or NaN or infinite for float columns."""
    return pl.sum_horizontal(
        (~pl.col(c).is_finite()).fill_null(True) if schema[c].is_float() else pl.col(c).is_null()
        for c in columns
    )


def examples_view(examples: pl.DataFrame) -> pl.DataFrame:
    """Training examples plus the per-row summaries `training_examples_values` checks."""
    features = [c for c in examples.columns if c not in ("batch", "seq", "user_id", "movie_id", "timestamp")]
    flags = [f"mg_{s}" for s in GENRE_SLUGS]
    means = [f"ug_mean_{s}" for s in GENRE_SLUGS]
    counts = ["u_count", "m_count", *[f"ug_count_{s}" for s in GENRE_SLUGS]]
    return examples.select(
        "seq",
        "rating",
        "global_mean",
        "u_mean",
        "m_mean",
        "m_year_z",
        pl.min_horizontal(means).alias("ug_mean_min"),
        pl.max_horizontal(means).alias("ug_mean_max"),
        pl.min_horizontal(counts).alias("count_min"),
        *_flag_summaries(flags),
        _non_finite(examples.schema, features).cast(pl.Int64).alias("non_finite"),
    )


def profiles_view(users: pl.DataFrame) -> pl.DataFrame:
    """User state rows as genre profiles (means), with the summaries `user_genre_profiles_values` checks."""
    means = [
        pl.when(pl.col(f"ug_count_{s}") > 0).then(pl.col(f"ug_sum_{s}") / pl.col(f"ug_count_{s}")).otherwise(0.0)
        for s in GENRE_SLUGS
    ]
    return users.select(
        "user_id",
        "u_count",
        (pl.col("u_sum") / pl.col("u_count")).alias("u_mean"),
        pl.min_horizontal(means).alias("ug_mean_min"),
        pl.max_horizontal(means).alias("ug_mean_max"),
        (pl.max_horizontal([f"ug_count_{s}" for s in GENRE_SLUGS]) - pl.col("u_count")).alias("genre_count_excess"),
    )


def movie_features_view(features: pl.DataFrame) -> pl.DataFrame:
    flags = [f"mg_{s}" for s in GENRE_SLUGS]
    return features.select("movie_id", "m_year_z", *_flag_summaries(flags))


def _flag_summaries(flags: list[str]) -> list[pl.Expr]:
    """Per row: the largest and smallest genre flag and how many genres (or no-genre) are set.

    As Int64: GX vectorizes a between-check only for int64 and float64 columns and calls a
    Python function per value for any other dtype (the flags are Int8 or Int16), which cost
    about 7 s of a 100-day backfill's validation.
    """
    return [
        pl.max_horizontal(flags).cast(pl.Int64).alias("flag_max"),
        pl.min_horizontal(flags).cast(pl.Int64).alias("flag_min"),
        (pl.sum_horizontal(flags) + pl.col("m_no_genre")).cast(pl.Int64).alias("genre_flags"),
    ]


def feature_suites() -> list[SuiteSpec]:
    """Suites on the feature store: training examples, the day's user profiles, movie features."""

    def examples() -> list[Expectation]:
        gxe = expectations()
        return [
            gxe.ExpectColumnValuesToBeUnique(column="seq"),
            gxe.ExpectColumnValuesToBeInSet(column="non_finite", value_set=[0]),
            gxe.ExpectColumnValuesToBeInSet(column="rating", value_set=HALF_STAR_RATINGS),
            gxe.ExpectColumnValuesToBeBetween(column="global_mean", min_value=0.5, max_value=5.0),
            gxe.ExpectColumnValuesToBeBetween(column="m_mean", min_value=0.5, max_value=5.0),
            gxe.ExpectColumnValuesToBeBetween(column="u_mean", min_value=0.0, max_value=5.0),
            gxe.ExpectColumnValuesToBeBetween(column="ug_mean_min", min_value=0.0),
            gxe.ExpectColumnValuesToBeBetween(column="ug_mean_max", max_value=5.0),
            gxe.ExpectColumnValuesToBeBetween(column="count_min", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="flag_min", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="flag_max", max_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="genre_flags", min_value=1),
        ]

    def profiles() -> list[Expectation]:
        gxe = expectations()
        return [
            gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
            gxe.ExpectColumnValuesToBeUnique(column="user_id"),
            gxe.ExpectColumnValuesToBeBetween(column="u_count", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="u_mean", min_value=0.5, max_value=5.0),
            gxe.ExpectColumnValuesToBeBetween(column="ug_mean_min", min_value=0.0),
            gxe.ExpectColumnValuesToBeBetween(column="ug_mean_max", max_value=5.0),
            gxe.ExpectColumnValuesToBeBetween(column="genre_count_excess", max_value=0),
        ]

    def movies() -> list[Expectation]:
        gxe = expectations()
        return [
            gxe.ExpectColumnValuesToNotBeNull(column="movie_id"),
            gxe.ExpectColumnValuesToBeUnique(column="movie_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="m_year_z"),
            gxe.ExpectColumnValuesToBeBetween(column="flag_min", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="flag_max", max_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="genre_flags", min_value=1),
        ]

    return [
        SuiteSpec(
            name="training_examples_values",
            frame="examples",
            severity="error",
            description="One row per rating; no null, NaN or infinite feature; means within 0-5 "
            "(movie and global means 0.5-5); counts >= 0; one-hot flags 0/1 with at least one "
            "genre or the no-genre flag per row.",
            build_expectations=examples,
        ),
        SuiteSpec(
            name="user_genre_profiles_values",
            frame="profiles",
            severity="error",
            description="One row per user; every user has ratings; genre means within 0-5; no "
            "genre count above the user's total.",
            build_expectations=profiles,
        ),
        SuiteSpec(
            name="movie_features_values",
            frame="movie_features",
            severity="error",
            description="One row per movie; a standardized year for every movie; one-hot flags 0/1 "
            "with at least one genre or the no-genre flag.",
            build_expectations=movies,
        ),
    ]




SUITES = feature_suites()
EXAMPLES_SUITES = suites_for("examples", SUITES)
PROFILES_SUITES = suites_for("profiles", SUITES)
MOVIE_SUITES = suites_for("movie_features", SUITES)
