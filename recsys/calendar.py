"""The replay calendar: daily partition D holds archive batch k = (D - start_date).days.

Every partitioned asset uses one start date (mixed start dates split single-run backfills,
dagster issue 19625). The calendar is a value built from settings and handed to whatever names
partitions, so a library function never reads the start date from the environment.

An archive's calendar ends with its last batch (`days`), so the partitions a person sees are the
days that exist; a calendar without `days` runs on to today, as a live source would.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from recsys.errors import RecsysError

# The history before the first daily batch is batch -1 in every store.
BOOTSTRAP_BATCH = -1
DAYS_PER_WEEK = 7


def parse_date(text: str, what: str = "Start date") -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise RecsysError(f"{what} {text!r} is not a date in YYYY-MM-DD form.") from None


@dataclass(frozen=True)
class Calendar:
    """Maps archive batches to daily partition keys and back; weeks start on the start weekday."""

    start_date: dt.date
    # Daily batches the archive holds; None: open-ended (to today).
    days: int | None = None

    @classmethod
    def starting(cls, start_date: str, days: int | None = None) -> Calendar:
        return cls(parse_date(start_date), days)

    @property
    def end_date(self) -> dt.date | None:
        """The day after the archive's last batch (exclusive end), or None when open-ended."""
        return None if self.days is None else self.start_date + dt.timedelta(days=self.days)

    @property
    def weeks_end_date(self) -> dt.date | None:
        """The day after the archive's last complete week: a partial week has no retrain to run."""
        if self.days is None:
            return None
        return self.start_date + dt.timedelta(days=self.days // DAYS_PER_WEEK * DAYS_PER_WEEK)

    def batch_of(self, partition_key: str) -> int:
        """The archive batch a daily partition key holds."""
        day = parse_date(partition_key, "Partition key")
        batch = (day - self.start_date).days
        if batch < 0:
            raise RecsysError(f"Partition {partition_key} is before the replay start date {self.start_date}.")
        if self.days is not None and batch >= self.days:
            raise RecsysError(f"Partition {partition_key} is after the archive's last day {self.partition_of(self.days - 1)}.")
        return batch

    def partition_of(self, batch: int) -> str:
        """The daily partition key of an archive batch."""
        return (self.start_date + dt.timedelta(days=batch)).isoformat()

    def label(self, batch: int) -> str:
        """How a person reads a batch: "bootstrap" or its partition key."""
        return "bootstrap" if batch == BOOTSTRAP_BATCH else self.partition_of(batch)

    def span(self, batches: list[int]) -> str:
        """A run of consecutive batches as "first..last", or one key."""
        first, last = self.label(batches[0]), self.label(batches[-1])
        return first if first == last else f"{first}..{last}"

    def week_of(self, batch: int) -> int:
        """The replay week (0, 1, ...) a batch falls in: week w holds batches 7w..7w+6."""
        return batch // DAYS_PER_WEEK

    def week_key(self, week: int) -> str:
        """The weekly partition key (the week's first day) of replay week `week`."""
        return self.partition_of(week * DAYS_PER_WEEK)

    def days_by(self, today: dt.date) -> int:
        """Days of the calendar that exist by `today`: the archive's, or for an open-ended
        calendar every day before today."""
        return self.days if self.days is not None else max(0, (today - self.start_date).days)

    def next_day(self, done: set[str], today: dt.date) -> str | None:
        """The first day not done yet (days build on each other, so they run in order), or None
        when every day is done."""
        return next((key for key in map(self.partition_of, range(self.days_by(today))) if key not in done), None)

    def next_week(self, done: set[str], retrained: set[str], today: dt.date) -> str | None:
        """The first week whose seven days are done and whose retrain is not, or None."""
        for week in range(self.days_by(today) // DAYS_PER_WEEK):
            days = range(week * DAYS_PER_WEEK, (week + 1) * DAYS_PER_WEEK)
            if self.week_key(week) not in retrained and all(self.partition_of(d) in done for d in days):
                return self.week_key(week)
        return None
