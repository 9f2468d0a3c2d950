"""The replay calendar as Dagster partitions: daily partition D holds archive batch (D - start).days.

Every partitioned asset uses the one calendar the definitions are built with (mixed start dates
split single-run backfills, dagster issue 19625); weeks start on the start date's weekday, so
replay week w holds batches 7w..7w+6.
"""

from __future__ import annotations

import datetime as dt
import warnings

from dagster import BetaWarning, DailyPartitionsDefinition, PreviewWarning, WeeklyPartitionsDefinition

from recsys.calendar import Calendar

# Single-run backfill policies, which every partitioned layer uses, are beta in dagster 1.13, and
# partitioned asset checks (so a check result names its day) are in preview; we rely on them
# knowingly, so say it once here (imported before any such asset is defined).
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)


def _iso(date: dt.date | None) -> str | None:
    return None if date is None else date.isoformat()


def daily_partitions(calendar: Calendar) -> DailyPartitionsDefinition:
    """One partition per archive day, from the start date to the archive's last batch."""
    return DailyPartitionsDefinition(start_date=calendar.start_date.isoformat(), end_date=_iso(calendar.end_date))


def weekly_partitions(calendar: Calendar) -> WeeklyPartitionsDefinition:
    """One partition per complete replay week of the archive."""
    # dagster numbers weekdays from 0 = Sunday.
    return WeeklyPartitionsDefinition(
        start_date=calendar.start_date.isoformat(),
        end_date=_iso(calendar.weeks_end_date),
        day_offset=calendar.start_date.isoweekday() % 7,
    )
