"""Replay order and batch assignment of the raw archive."""

from __future__ import annotations

import polars as pl
import pytest

from recsys.calendar import Calendar
from recsys.errors import RecsysError
from recsys.raw.archive import (
    batch_count,
    default_bootstrap_rows,
    order_archive,
    type_fields,
)


def lines(rows: list[tuple]) -> pl.DataFrame:
    """Text rows (user_id, movie_id, timestamp[, raw_line]) typed as the raw loader types them."""
    text = pl.DataFrame(
        {
            "line_no": list(range(1, len(rows) + 1)),
            "user_id": [r[0] for r in rows],
            "movie_id": [r[1] for r in rows],
            "rating": ["4.0"] * len(rows),
            "timestamp": [r[2] for r in rows],
            "raw_line": [r[3] if len(r) > 3 else None for r in rows],
        },
        schema={"line_no": pl.Int64, **{c: pl.String for c in ("user_id", "movie_id", "rating", "timestamp", "raw_line")}},
    )
    return type_fields(text.lazy()).collect()


def test_rows_are_ordered_by_timestamp_user_movie_then_line():
    rows = [("2", "5", "300"), ("1", "9", "300"), ("1", "2", "300"), ("7", "7", "100"), ("1", "2", "300")]
    ordered = order_archive(lines(rows), bootstrap_rows=0, batch_size=10)
    assert ordered["line_no"].to_list() == [4, 3, 5, 2, 1]
    assert ordered["seq"].to_list() == [0, 1, 2, 3, 4]


def test_unparseable_keys_sort_last_and_still_get_a_batch():
    rows = [("x", "1", "200"), ("1", "1", None, "1,1"), ("1", "1", "100")]
    ordered = order_archive(lines(rows), bootstrap_rows=0, batch_size=2)
    assert ordered["line_no"].to_list() == [3, 1, 2]
    assert ordered["batch"].to_list() == [0, 0, 1]


def test_fields_are_typed_and_unparsed_lines_keep_their_text():
    typed = lines([("1", " 2 ", "300"), ("x", "2", "300"), ("1", "2", None, "1,2")])
    assert typed["user_id"].to_list() == [1, None, 1]
    assert typed["raw_line"].to_list() == [None, "x,2,4.0,300", "1,2"]


def test_bootstrap_then_batches_of_fixed_size():
    rows = [(str(i), "1", str(1000 + i)) for i in range(11)]
    ordered = order_archive(lines(rows), bootstrap_rows=3, batch_size=4)
    assert ordered["batch"].to_list() == [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1]
    assert batch_count(11, 3, 4) == 2
    assert batch_count(12, 3, 4) == 3  # the last batch may be short


def test_default_bootstrap_is_5m_or_a_fifth_of_a_small_archive():
    assert default_bootstrap_rows(32_000_000, None, 50_000) == 5_000_000
    assert default_bootstrap_rows(1_000_000, None, 50_000) == 200_000
    assert default_bootstrap_rows(1_000, 10, 50) == 10
    with pytest.raises(RecsysError, match="does not fit"):
        default_bootstrap_rows(1_000, 1_000, 50)


def test_partition_keys_map_to_batches_and_back():
    import datetime as dt

    calendar = Calendar(dt.date(2025, 1, 1))
    assert calendar.batch_of("2025-01-01") == 0
    assert calendar.batch_of("2025-02-01") == 31
    assert calendar.partition_of(31) == "2025-02-01"
    assert calendar.label(-1) == "bootstrap" and calendar.span([-1, 6]) == "bootstrap..2025-01-07"
    assert calendar.week_key(calendar.week_of(13)) == "2025-01-08"
    with pytest.raises(RecsysError, match="before the replay start date"):
        calendar.batch_of("2024-12-31")
    with pytest.raises(RecsysError, match="not a date"):
        calendar.batch_of("2025-13-01")


def test_an_archives_calendar_ends_with_its_last_batch_and_an_open_one_runs_to_today():
    import datetime as dt

    archive = Calendar(dt.date(2025, 1, 1), days=10)
    assert archive.end_date == dt.date(2025, 1, 11) and archive.weeks_end_date == dt.date(2025, 1, 8)
    assert archive.batch_of("2025-01-10") == 9
    with pytest.raises(RecsysError, match="after the archive's last day 2025-01-10"):
        archive.batch_of("2025-01-11")
    live = Calendar(dt.date(2025, 1, 1))
    assert live.end_date is None and live.days_by(dt.date(2025, 1, 5)) == 4  # every day before today
    assert live.next_day({"2025-01-01", "2025-01-03"}, dt.date(2025, 1, 5)) == "2025-01-02"  # in order, gaps first
    assert live.next_day({f"2025-01-0{d}" for d in range(1, 5)}, dt.date(2025, 1, 5)) is None
