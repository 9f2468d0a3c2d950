"""Data-quality suites for the lake, defined in code and run with Great Expectations 1.x.

Why this module exists: every daily ratings batch written to the lake (and its one-row batch
summary), and the cleaned movies table, must be checked before anything downstream trusts them.
The suites live here, in code, so they are reviewed and versioned with the pipeline; GX runs
them through one ephemeral context (no `gx/` folder, nothing written to disk). Each suite has a
severity: "error" suites block the pipeline, "warn" suites only flag. Other code turns each
`SuiteResult` into one Dagster asset check (`to_metadata()` is its metadata); this module does
not import Dagster.

GX has no Polars data source, so a frame is validated through a pandas view of it, made so that
every column keeps its Polars type: the default `to_pandas()` turns an Int32 column holding a
null into float64, which would make type expectations depend on whether a column has nulls
(see `_pandas_view`). A float NaN counts as a null: a NaN rating is missing data.

Importing this module, and listing its suites (to declare Dagster checks when definitions load),
is cheap: great_expectations (several seconds to import) and pandas are imported on the first
validation, which also creates the one GX context every later validation reuses.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

import polars as pl

from recsys_assets.genres import GENRE_SLUGS, GENRES

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.expectations import Expectation

Severity = Literal["error", "warn"]
# Which frame a suite is written for: a lake ratings batch, that batch's one-row summary
# (see `batch_summary`), or the lake movies table.
FrameKind = Literal["ratings", "summary", "movies", "examples", "profiles", "movie_features"]

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

MIN_MOVIE_YEAR = 1874  # the oldest surviving motion picture
MAX_MOVIE_YEAR = 2100
SAMPLE_SIZE = 5  # unexpected values kept per expectation


@dataclass(frozen=True)
class SuiteSpec:
    """A named GX suite: what it checks, on which frame, and how bad a failure is.

    The expectations come from a function, called at validation time, so that listing the
    suites (e.g. to declare Dagster checks when definitions load) does not import GX.
    """

    name: str
    frame: FrameKind
    severity: Severity
    description: str
    build_expectations: Callable[[], list[Expectation]]


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, reduced to JSON-able values."""

    expectation: str  # e.g. "expect_column_values_to_be_between"
    column: str | None  # the column, or "a,b,c" for a multi-column one, None for table-level
    success: bool
    unexpected_count: int | None
    unexpected_percent: float | None
    sample_values: list[Any]  # up to SAMPLE_SIZE unexpected values
    observed_value: Any  # for aggregate expectations, e.g. a column's type or list of columns
    kwargs: dict[str, Any]  # the expectation's configuration
    error: str | None = None  # set when GX could not evaluate it (e.g. its column is missing)

    @property
    def label(self) -> str:
        """`expectation(column)`, the name used in summaries and metadata keys."""
        return f"{self.expectation}({self.column})" if self.column else self.expectation

    def describe_failure(self) -> str:
        if self.error is not None:
            return f"{self.label} error: {self.error}"
        if self.unexpected_count is not None:
            samples = ", ".join(repr(value) for value in self.sample_values[:3])
            more = ", ..." if self.unexpected_count > 3 else ""
            return f"{self.label} {self.unexpected_count} unexpected [{samples}{more}]"
        return f"{self.label} observed {self.observed_value!r}"


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    severity: Severity
    description: str
    success: bool
    outcomes: list[ExpectationOutcome]

    def failed(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.success]

    def to_metadata(self) -> dict[str, Any]:
        """Counts, then one entry per expectation keyed by its label; all plain JSON."""
        failed = len(self.failed())
        metadata: dict[str, Any] = {
            "evaluated": len(self.outcomes),
            "passed": len(self.outcomes) - failed,
            "failed": failed,
        }
        for outcome in self.outcomes:
            key = outcome.label
            # Two expectations can share a label (same type, same column): keep both.
            suffix = 2
            while key in metadata:
                key = f"{outcome.label} #{suffix}"
                suffix += 1
            metadata[key] = {
                "success": outcome.success,
                "unexpected_count": outcome.unexpected_count,
                "unexpected_percent": outcome.unexpected_percent,
                "sample_values": outcome.sample_values,
                "observed_value": outcome.observed_value,
                "kwargs": outcome.kwargs,
                "error": outcome.error,
            }
        return metadata

    def summary(self) -> str:
        passed = len(self.outcomes) - len(self.failed())
        line = f"{self.suite}: {passed}/{len(self.outcomes)} passed"
        if self.failed():
            line += "; failed: " + "; ".join(o.describe_failure() for o in self.failed())
        return line


# --- suites ---------------------------------------------------------------------------------


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
        gxe = _gx_expectations()
        return [
            gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(RATINGS_COLUMNS)),
            *_column_types(RATINGS_COLUMNS),
        ]

    def values() -> list[Expectation]:
        gxe, max_timestamp = _gx_expectations(), known_limits().max_timestamp
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
        gxe, known = _gx_expectations(), known_limits()
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
        gxe = _gx_expectations()
        return [
            gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(MOVIES_COLUMNS)),
            *_column_types(MOVIES_COLUMNS),
        ]

    def values() -> list[Expectation]:
        gxe = _gx_expectations()
        return [
            gxe.ExpectColumnValuesToNotBeNull(column="movie_id"),
            gxe.ExpectColumnValuesToBeBetween(column="movie_id", min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="movie_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="title"),
        ]

    def quality() -> list[Expectation]:
        gxe = _gx_expectations()
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


# --- feature store --------------------------------------------------------------------------
# Feature frames are wide (19 genre columns of each kind), and GX pays a fixed cost per
# expectation. So the views below add per-row summaries computed in Polars (the smallest and
# largest genre mean, how many values are null, NaN or infinite, how many genre flags are set)
# and the suites check those per row alongside the key columns: every row is still checked, at
# a fraction of the cost of ~100 single-column expectations per batch.

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
        pl.max_horizontal(flags).alias("flag_max"),
        pl.min_horizontal(flags).alias("flag_min"),
        (pl.sum_horizontal(flags) + pl.col("m_no_genre")).alias("genre_flags"),
        _non_finite(examples.schema, features).alias("non_finite"),
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
    return features.select(
        "movie_id",
        "m_year_z",
        pl.max_horizontal(flags).alias("flag_max"),
        pl.min_horizontal(flags).alias("flag_min"),
        (pl.sum_horizontal(flags) + pl.col("m_no_genre")).alias("genre_flags"),
    )


def feature_suites() -> list[SuiteSpec]:
    """Suites on the feature store: training examples, the day's user profiles, movie features."""

    def examples() -> list[Expectation]:
        gxe = _gx_expectations()
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
        gxe = _gx_expectations()
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
        gxe = _gx_expectations()
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


def suites_for(frame: FrameKind, suites: list[SuiteSpec]) -> list[SuiteSpec]:
    return [suite for suite in suites if suite.frame == frame]


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


# --- running ----------------------------------------------------------------------------------


def validate(frame: pl.DataFrame, suite: SuiteSpec) -> SuiteResult:
    return validate_all(frame, [suite])[0]


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


def validate_all(frame: pl.DataFrame, suites: list[SuiteSpec]) -> list[SuiteResult]:
    """Run several suites written for the same kind of frame on one pandas view of `frame`."""
    kinds = {suite.frame for suite in suites}
    if len(kinds) > 1:
        raise ValueError(
            f"validate_all got suites for different frames ({', '.join(sorted(kinds))}); "
            "validate each frame with its own suites"
        )
    if not suites:
        return []
    gx = _import_gx()

    batch = _batch_definition().get_batch(batch_parameters={"dataframe": _pandas_view(frame)})
    results = []
    for suite in suites:
        expectations = suite.build_expectations()
        gx_suite = gx.ExpectationSuite(name=suite.name, expectations=expectations)
        validation = batch.validate(
            gx_suite,
            # BASIC gives counts and a few unexpected values without the costlier value counts
            # and row indexes of SUMMARY/COMPLETE.
            result_format={"result_format": "BASIC", "partial_unexpected_count": SAMPLE_SIZE},
        )
        results.append(
            SuiteResult(
                suite=suite.name,
                severity=suite.severity,
                description=suite.description,
                success=bool(validation.success),
                outcomes=_outcomes_in_order(expectations, validation.results, frame.columns),
            )
        )
    return results


def _pandas_view(frame: pl.DataFrame) -> pd.DataFrame:
    """A pandas copy of `frame` in which every column keeps its Polars type.

    Plain numpy dtypes wherever they can hold the data: GX's pandas engine only vectorizes
    some checks for them (expect_column_values_to_be_between runs a Python function per row for
    any other dtype, ~25 ms per 50k rows). The default conversion turns an integer or boolean
    column with a null into float64/object, so those columns, and only those, get pandas'
    nullable dtypes (Int32, boolean, ...), whose scalar type GX compares like numpy's: "int32"
    matches both int32 and Int32. Float NaN and null both become NaN, which GX counts as null.
    """
    import pandas as pd

    view = frame.to_pandas()
    for name, dtype in frame.schema.items():
        nullable_dtype = _NULLABLE_PANDAS_DTYPES.get(dtype)
        if nullable_dtype is not None and frame[name].null_count() > 0:
            values = frame[name].to_arrow()
            pandas_dtype = pd.api.types.pandas_dtype(nullable_dtype)
            view[name] = values.to_pandas(types_mapper=lambda _: pandas_dtype)
    return view


_NULLABLE_PANDAS_DTYPES: dict[pl.DataType, str] = {
    pl.Int8(): "Int8",
    pl.Int16(): "Int16",
    pl.Int32(): "Int32",
    pl.Int64(): "Int64",
    pl.UInt8(): "UInt8",
    pl.UInt16(): "UInt16",
    pl.UInt32(): "UInt32",
    pl.UInt64(): "UInt64",
    pl.Boolean(): "boolean",
}


_context_lock = threading.Lock()
_whole_frame: BatchDefinition | None = None


def _batch_definition() -> BatchDefinition:
    """The one pandas 'whole dataframe' batch definition, in an ephemeral context made once."""
    global _whole_frame
    with _context_lock:
        if _whole_frame is None:
            gx = _import_gx()
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            # tqdm bars ("Calculating Metrics") would print on every validation.
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            asset = context.data_sources.add_pandas("recsys_lake").add_dataframe_asset("frame")
            _whole_frame = asset.add_batch_definition_whole_dataframe("whole_frame")
        return _whole_frame


def _gx_expectations() -> Any:
    """`great_expectations.expectations`, imported on first use."""
    _import_gx()
    import great_expectations.expectations as gxe

    return gxe


def _import_gx() -> Any:
    # Analytics off before GX's first import (the installed 1.24 has no analytics client, but
    # other 1.x releases read this variable); a caller who set it explicitly wins.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _column_types(columns: dict[str, str]) -> list[Expectation]:
    gxe = _gx_expectations()
    # GX's pandas type check compares the dtype's scalar type: "int32" matches numpy int32 and
    # nullable Int32 alike, "str" matches pandas 3's default string dtype.
    return [gxe.ExpectColumnValuesToBeOfType(column=name, type_=t) for name, t in columns.items()]


# --- turning GX results into outcomes ----------------------------------------------------------


def _outcomes_in_order(
    expectations: list[Expectation], gx_results: list[Any], frame_columns: list[str]
) -> list[ExpectationOutcome]:
    """One outcome per expectation, in the suite's order.

    GX returns results grouped by how it computes them, not in suite order, and carries no
    reference to the Expectation object; results are matched back by type and kwargs.
    """
    by_key: dict[str, list[Any]] = {}
    for gx_result in gx_results:
        config = gx_result.expectation_config
        by_key.setdefault(_config_key(config.type, config.kwargs), []).append(gx_result)
    outcomes = []
    for expectation in expectations:
        config = expectation.configuration
        matches = by_key.get(_config_key(config.type, config.kwargs))
        if matches:
            outcomes.append(_outcome(expectation, matches.pop(0), frame_columns))
        else:
            # ExpectationSuite logs and drops an expectation it finds invalid; never let a
            # check vanish silently.
            outcomes.append(_not_evaluated(expectation))
    return outcomes


def _not_evaluated(expectation: Expectation) -> ExpectationOutcome:
    config = expectation.configuration
    kwargs = _jsonable({k: v for k, v in config.kwargs.items() if k != "batch_id"})
    return ExpectationOutcome(
        expectation=config.type,
        column=",".join(_domain_columns(expectation, kwargs)) or None,
        success=False,
        unexpected_count=None,
        unexpected_percent=None,
        sample_values=[],
        observed_value=None,
        kwargs=kwargs,
        error="GX returned no result for this expectation",
    )


def _config_key(expectation_type: str, kwargs: dict[str, Any]) -> str:
    return json.dumps(
        [expectation_type, _jsonable({k: v for k, v in kwargs.items() if k != "batch_id"})],
        sort_keys=True,
    )


def _outcome(
    expectation: Expectation, gx_result: Any, frame_columns: list[str]
) -> ExpectationOutcome:
    config = gx_result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    details = gx_result.result or {}
    columns = _domain_columns(expectation, kwargs)
    error = _error_message(gx_result.exception_info or {})
    missing = [column for column in columns if column not in frame_columns]
    if error is not None and missing:
        # GX's own message here is an internal one (for a type check: "list index out of range").
        error = "missing column " + ", ".join(repr(column) for column in missing)
    unexpected_count = details.get("unexpected_count")
    unexpected_percent = details.get("unexpected_percent")
    return ExpectationOutcome(
        expectation=config.type,
        column=",".join(columns) or None,
        success=bool(gx_result.success),
        unexpected_count=None if unexpected_count is None else int(unexpected_count),
        unexpected_percent=None if unexpected_percent is None else float(unexpected_percent),
        sample_values=_jsonable(list(details.get("partial_unexpected_list") or [])[:SAMPLE_SIZE]),
        observed_value=_jsonable(details.get("observed_value")),
        kwargs=_jsonable(kwargs),
        error=error,
    )


def _error_message(exception_info: dict[str, Any]) -> str | None:
    # GX reports an exception in the expectation itself flat ({"raised_exception": ...}), but
    # one in a metric it needed (e.g. a missing column) keyed by the metric's id.
    reports = [exception_info] if "raised_exception" in exception_info else exception_info.values()
    messages = [
        str(report.get("exception_message"))
        for report in reports
        if isinstance(report, dict) and report.get("raised_exception")
    ]
    return "; ".join(dict.fromkeys(messages)) or None


def _domain_columns(expectation: Expectation, kwargs: dict[str, Any]) -> list[str]:
    # The columns an expectation looks at: its domain, for column and multi-column ones; a
    # table-level `column_list` (the columns a table should have) is not one.
    domain_keys = type(expectation).domain_keys
    if "column" in domain_keys:
        return [str(kwargs["column"])]
    if "column_list" in domain_keys:
        return [str(column) for column in kwargs["column_list"]]
    return []


def _jsonable(value: Any) -> Any:
    """Plain Python for GX values: numpy scalars, pandas NA, tuples and sets included."""
    import numpy as np
    import pandas as pd

    # numpy first: np.float64 is also a float, and would keep its numpy repr in summaries.
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # NaN/inf are not valid JSON
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
