"""The replay calendar as Dagster partitions: daily partition D holds archive batch (D - start).days.

Every partitioned asset uses the one calendar the definitions are built with (mixed start dates
split single-run backfills, dagster issue 19625); weeks start on the start date's weekday, so
replay week w holds batches 7w..7w+6.
"""

from __future__ import annotations

import warnings

from dagster import BetaWarning, DailyPartitionsDefinition, WeeklyPartitionsDefinition

from recsys.calendar import Calendar

# Single-run backfill policies, which every partitioned layer uses, are beta in dagster 1.13; we
# rely on them knowingly, so say it once here (imported before any such asset is defined).
warnings.filterwarnings("ignore", category=BetaWarning)


def daily_partitions(calendar: Calendar) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=calendar.start_date.isoformat())


def weekly_partitions(calendar: Calendar) -> WeeklyPartitionsDefinition:
    # dagster numbers weekdays from 0 = Sunday.
    return WeeklyPartitionsDefinition(
        start_date=calendar.start_date.isoformat(), day_offset=calendar.start_date.isoweekday() % 7
    )
