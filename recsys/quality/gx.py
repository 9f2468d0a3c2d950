"""Running data-quality suites with Great Expectations 1.x.

The suites live in code beside the layer they check (`recsys.lake.suites`,
`recsys.features.suites`), so they are reviewed and versioned with the pipeline; GX runs them
through one ephemeral context (no `gx/` folder, nothing written to disk).

GX has no Polars data source, so a frame is validated through a pandas view of it, made so that
every column keeps its Polars type: the default `to_pandas()` turns an Int32 column holding a
null into float64, which would make type expectations depend on whether a column has nulls
(see `_pandas_view`). A float NaN counts as a null: a NaN rating is missing data.

Importing this module, and listing suites (to declare Dagster checks when definitions load),
is cheap: great_expectations (several seconds to import) and pandas are imported on the first
validation, which also creates the one GX context every later validation reuses.
"""

from __future__ import annotations

import json
import math
import os
import threading
from typing import TYPE_CHECKING, Any

import polars as pl

from recsys.quality.results import (
    SAMPLE_SIZE,
    ExpectationOutcome,
    SuiteResult,
    SuiteSpec,
)

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.expectations import Expectation


def validate(frame: pl.DataFrame, suite: SuiteSpec) -> SuiteResult:
    return validate_all(frame, [suite])[0]



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
    anything but int64 and float64, ~25 ms per 50k rows: views built for validation use those).
    The default conversion turns an integer or boolean column with a null into float64/object,
    so those columns, and only those, get pandas' nullable dtypes (Int32, boolean, ...), whose
    scalar type GX compares like numpy's: "int32" matches both int32 and Int32. Float NaN and
    null both become NaN, which GX counts as null.
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


def expectations() -> Any:
    """`great_expectations.expectations`, imported on first use."""
    _import_gx()
    import great_expectations.expectations as gxe

    return gxe


def _import_gx() -> Any:
    # Analytics off before GX's first import (the installed 1.24 has no analytics client, but
    # other 1.x releases read this variable); a caller who set it explicitly wins.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every in-memory frame it is given (an md5 over pandas' hash of every row)
    # for the batch's metadata, which nothing here reads: 2.7 s of the 4.6 s that validating a
    # 5M-row feature backfill took (by hand). Frames over HASH_THRESHOLD bytes go unhashed.
    pandas_execution_engine.HASH_THRESHOLD = 0
    return gx


def column_types(columns: dict[str, str]) -> list[Expectation]:
    gxe = expectations()
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
