"""What a data-quality suite is and what running it gives, with no Great Expectations in sight.

A suite has a name, the kind of frame it is written for, a severity ("error" suites block the
pipeline, "warn" suites only flag) and a function that builds its GX expectations. Its result
keeps every expectation's outcome (unexpected count, sample values); the Dagster layer turns each
`SuiteResult` into one asset check, with `to_metadata()` as its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

Severity = Literal["error", "warn"]
# Which frame a suite is written for: a lake ratings batch, that batch's one-row summary
# (see `batch_summary`), or the lake movies table.
FrameKind = Literal["ratings", "summary", "movies", "examples", "profiles", "movie_features"]

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

    def outcome_table(self) -> list[dict[str, Any]]:
        """One row per expectation, as a person reads it: what, on which column, and what failed."""
        return [
            {
                "expectation": outcome.expectation,
                "column": outcome.column or "",
                "success": "yes" if outcome.success else "NO",
                "unexpected": "" if outcome.unexpected_count is None else outcome.unexpected_count,
                "sample": ", ".join(repr(v) for v in outcome.sample_values[:3]) or (outcome.error or ""),
            }
            for outcome in self.outcomes
        ]

    def summary(self) -> str:
        passed = len(self.outcomes) - len(self.failed())
        line = f"{self.suite}: {passed}/{len(self.outcomes)} passed"
        if self.failed():
            line += "; failed: " + "; ".join(o.describe_failure() for o in self.failed())
        return line



def suites_for(frame: FrameKind, suites: list[SuiteSpec]) -> list[SuiteSpec]:
    """The suites written for one kind of frame."""
    return [suite for suite in suites if suite.frame == frame]
