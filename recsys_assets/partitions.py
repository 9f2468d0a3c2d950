"""The replay calendar: daily partition D holds archive batch k = (D - start_date).days.

Every partitioned asset uses this one start date (mixed start dates split single-run backfills,
dagster issue 19625). It comes from RECSYS_START_DATE so a deployment can line the calendar up
with the day it starts replaying.
"""

from __future__ import annotations

import datetime as dt
import warnings

from dagster import BetaWarning, DailyPartitionsDefinition

# Single-run backfill policies, which every partitioned layer uses, are beta in dagster 1.13; we
# rely on them knowingly, so say it once here (imported before any such asset is defined).
warnings.filterwarnings("ignore", category=BetaWarning)

from recsys_resources import RecsysError, Settings

START_DATE: dt.date = Settings.from_env().start_date

daily_partitions = DailyPartitionsDefinition(start_date=START_DATE.isoformat())


def batch_of(partition_key: str, start_date: dt.date = START_DATE) -> int:
    """The archive batch a daily partition key holds."""
    try:
        day = dt.date.fromisoformat(partition_key)
    except ValueError:
        raise RecsysError(f"Partition key {partition_key!r} is not a date in YYYY-MM-DD form.") from None
    batch = (day - start_date).days
    if batch < 0:
        raise RecsysError(f"Partition {partition_key} is before the replay start date {start_date}.")
    return batch


def partition_of(batch: int, start_date: dt.date = START_DATE) -> str:
    """The daily partition key of an archive batch."""
    return (start_date + dt.timedelta(days=batch)).isoformat()
