"""Great Expectations suites for the lake: each ratings batch (and its one-row summary) and the
cleaned movies table, checked before anything downstream trusts them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from recsys.genres import GENRES
from recsys.lake.cleaning import MAX_MOVIE_YEAR, MIN_MOVIE_YEAR
from recsys.quality.gx import column_types, expectations, validate_all
from recsys.quality.results import SuiteResult, SuiteSpec

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

RATINGS_COLUMNS: dict[str, str] = {
    "batch": "int32",
    "seq": "int64",
    "user_id": "int64",
    "movie_id": "int64",
    "rating": "float64",
    "timestamp": "int64",
}
MOVIES_COLUMNS: dict[str, str] = {
    "movie_id": "int64",
    "title": "str",
    "year": "int32",
    "genres": "str",
}
KNOWN_GENRES = GENRES
HALF_STAR_RATINGS: list[float] = [step / 2 for step in range(1, 11)]  # 0.5, 1.0, ..., 5.0
# "" (no genres) or known genres joined by "|", with no empty part.
_ONE_GENRE = "(?:" + "|".join(re.escape(genre) for genre in KNOWN_GENRES) + ")"
GENRES_REGEX = rf"^(?:{_ONE_GENRE}(?:\|{_ONE_GENRE})*)?$"



def lake_ratings_suites(
    *, batch_size: int, max_timestamp: int, max_reject_rate: float = 0.05
) -> list[SuiteSpec]:
    """The suites for one lake ratings batch: two on the batch itself, one on its summary.

    Pick the ones for a frame with `suite.frame` ("ratings" or "summary"), or let
    `validate_lake_batch` do it.
    """
    return _ratings_suites(_RatingsLimits(batch_size, max_timestamp, max_reject_rate))


def lake_ratings_suite_specs() -> list[SuiteSpec]:
    """The same suites before the archive's limits are known: to declare checks with.

    Names, frames, severities and descriptions are those of `lake_ratings_suites`; the
    expectations need the limits, so building them from these specs raises ValueError.
    """
    return _ratings_suites(None)


@dataclass(frozen=True)
class _RatingsLimits:
    batch_size: int
    max_timestamp: int
    max_reject_rate: float


def _ratings_suites(limits: _RatingsLimits | None) -> list[SuiteSpec]:
    def known_limits() -> _RatingsLimits:
        if limits is None:
            raise ValueError(
                "these ratings suites come from lake_ratings_suite_specs() and only name the "
                "checks; validate with lake_ratings_suites(batch_size=..., max_timestamp=...)"
            )
        return limits

    def schema() -> list[Expectation]:
        gxe = expectations()
        return [
            gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(RATINGS_COLUMNS)),
            *column_types(RATINGS_COLUMNS),
        ]

    def values() -> list[Expectation]:
        gxe, max_timestamp = expectations(), known_limits().max_timestamp
        return [
            *(gxe.ExpectColumnValuesToNotBeNull(column=column) for column in RATINGS_COLUMNS),
            gxe.ExpectColumnValuesToBeBetween(column="rating", min_value=0.5, max_value=5.0),
            gxe.ExpectColumnValuesToBeInSet(column="rating", value_set=HALF_STAR_RATINGS),
            gxe.ExpectColumnValuesToBeBetween(column="user_id", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="movie_id", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(
                column="timestamp", min_value=1, max_value=max_timestamp
            ),
            gxe.ExpectColumnValuesToBeUnique(column="seq"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "movie_id", "timestamp"]),
        ]

    def volume() -> list[Expectation]:
        gxe, known = expectations(), known_limits()
        return [
            gxe.ExpectColumnValuesToBeBetween(
                column="rows_clean", min_value=1, max_value=known.batch_size
            ),
            # unaccounted = rows_raw - rows_clean - rows_rejected, added by batch_summary().
            gxe.ExpectColumnValuesToBeInSet(column="unaccounted", value_set=[0]),
            gxe.ExpectColumnValuesToBeBetween(
                column="reject_rate", min_value=0.0, max_value=known.max_reject_rate
            ),
        ]

    # Descriptions name no limit values: they describe a Dagster check declared before the
    # limits are known. The values are in each result's kwargs.
    return [
        SuiteSpec(
            name="lake_ratings_schema",
            frame="ratings",
            severity="error",
            description="The ratings batch has exactly the lake columns, in order, and types.",
            build_expectations=schema,
        ),
        SuiteSpec(
            name="lake_ratings_values",
            frame="ratings",
            severity="error",
            description=(
                "No nulls; ratings on the half-star grid 0.5..5.0; ids >= 1; timestamps from 1 "
                "to the archive's last; seq unique; (user_id, movie_id, timestamp) unique."
            ),
            build_expectations=values,
        ),
        SuiteSpec(
            name="lake_ratings_volume",
            frame="summary",
            severity="warn",
            description=(
                "The batch kept between 1 and batch-size clean rows, every raw row is either "
                "clean or rejected, and the reject rate is at most the allowed one."
            ),
            build_expectations=volume,
        ),
    ]


def lake_movies_suites() -> list[SuiteSpec]:
    """The suites for the cleaned lake movies table (all with frame "movies")."""

    def schema() -> list[Expectation]:
        gxe = expectations()
        return [
            gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(MOVIES_COLUMNS)),
            *column_types(MOVIES_COLUMNS),
        ]

    def values() -> list[Expectation]:
        gxe = expectations()
        return [
            gxe.ExpectColumnValuesToNotBeNull(column="movie_id"),
            gxe.ExpectColumnValuesToBeBetween(column="movie_id", min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="movie_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="title"),
        ]

    def quality() -> list[Expectation]:
        gxe = expectations()
        return [
            # Column-map expectations skip nulls, so an unknown year is not a failure.
            gxe.ExpectColumnValuesToBeBetween(
                column="year", min_value=MIN_MOVIE_YEAR, max_value=MAX_MOVIE_YEAR, mostly=0.99
            ),
            gxe.ExpectColumnValuesToMatchRegex(column="genres", regex=GENRES_REGEX),
        ]

    return [
        SuiteSpec(
            name="lake_movies_schema",
            frame="movies",
            severity="error",
            description="The movies table has exactly the lake columns, in order, and types.",
            build_expectations=schema,
        ),
        SuiteSpec(
            name="lake_movies_values",
            frame="movies",
            severity="error",
            description="movie_id is present, >= 1 and unique; every movie has a title.",
            build_expectations=values,
        ),
        SuiteSpec(
            name="lake_movies_quality",
            frame="movies",
            severity="warn",
            description=(
                f"Known years fall in {MIN_MOVIE_YEAR}..{MAX_MOVIE_YEAR} (99% of them); genres "
                "are known genres joined by '|', or empty."
            ),
            build_expectations=quality,
        ),
    ]



def batch_summary(batch: int, rows_raw: int, rows_clean: int, rows_rejected: int) -> pl.DataFrame:
    """The one-row frame `lake_ratings_volume` validates, with reject_rate and unaccounted."""
    return pl.DataFrame(
        {
            "batch": [batch],
            "rows_raw": [rows_raw],
            "rows_clean": [rows_clean],
            "rows_rejected": [rows_rejected],
            "reject_rate": [rows_rejected / rows_raw if rows_raw else 0.0],
            # GX 1.x has no "a == b + c" expectation for pandas; a derived column that must be 0
            # says the same and shows the discrepancy as the unexpected value.
            "unaccounted": [rows_raw - rows_clean - rows_rejected],
        },
        schema={
            "batch": pl.Int32,
            "rows_raw": pl.Int64,
            "rows_clean": pl.Int64,
            "rows_rejected": pl.Int64,
            "reject_rate": pl.Float64,
            "unaccounted": pl.Int64,
        },
    )



def validate_lake_batch(
    ratings: pl.DataFrame,
    summary: pl.DataFrame,
    *,
    batch_size: int,
    max_timestamp: int,
    max_reject_rate: float = 0.05,
) -> list[SuiteResult]:
    """All ratings suites on one batch: schema and values on its rows, volume on its summary."""
    suites = lake_ratings_suites(
        batch_size=batch_size, max_timestamp=max_timestamp, max_reject_rate=max_reject_rate
    )
    on_ratings = [suite for suite in suites if suite.frame == "ratings"]
    on_summary = [suite for suite in suites if suite.frame == "summary"]
    return validate_all(ratings, on_ratings) + validate_all(summary, on_summary)


