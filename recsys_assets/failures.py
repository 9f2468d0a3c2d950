"""User errors as Dagster failures, and a failed run as one sentence."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dagster import DagsterEventType, ExecuteInProcessResult, Failure

from recsys.errors import RecsysError


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a RecsysError into a Dagster Failure: the run fails with the sentence, not a traceback."""
    try:
        yield
    except RecsysError as error:
        raise Failure(description=str(error), allow_retries=False) from None


def failure_sentence(result: ExecuteInProcessResult) -> str:
    """The first step failure of a run as one sentence (a Failure's description, else the error)."""
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description
            return data.error.message.strip().splitlines()[-1] if data.error else "a step failed"
    return "the run failed"
