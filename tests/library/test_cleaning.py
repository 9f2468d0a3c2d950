"""The pure cleaning transforms: every bad row gets its reason, no row disappears."""

from __future__ import annotations

import polars as pl
import pytest

from recsys.lake.cleaning import MIN_TIMESTAMP, clean_movies, clean_ratings
from recsys.raw.archive import type_fields

MAX_TS = 1_700_000_000
GOOD_TS = "900000000"


def raw_rows(*rows: tuple) -> pl.DataFrame:
    """Rows of text (user_id, movie_id, rating, timestamp[, raw_line]) typed as the raw store holds them."""
    padded = [row + (None,) * (5 - len(row)) for row in rows]
    text = pl.DataFrame(
        {
            "line_no": list(range(2, len(rows) + 2)),
            "user_id": [r[0] for r in padded],
            "movie_id": [r[1] for r in padded],
            "rating": [r[2] for r in padded],
            "timestamp": [r[3] for r in padded],
            "raw_line": [r[4] for r in padded],
        },
        schema={"line_no": pl.Int64, **{c: pl.String for c in ("user_id", "movie_id", "rating", "timestamp", "raw_line")}},
    )
    typed = type_fields(text.lazy()).collect()
    return typed.with_columns(seq=pl.int_range(pl.len(), dtype=pl.Int64), batch=pl.lit(3, dtype=pl.Int32))


def clean(*rows: tuple):
    return clean_ratings(raw_rows(*rows), pl.Series([10, 11]), max_timestamp=MAX_TS)


def test_good_rows_are_typed():
    result = clean(("1", "10", "4.5", GOOD_TS), (" 2 ", "11", "3", GOOD_TS))
    assert result.rejects.height == 0
    assert result.clean.to_dicts() == [
        {"batch": 3, "seq": 0, "user_id": 1, "movie_id": 10, "rating": 4.5, "timestamp": 900000000},
        {"batch": 3, "seq": 1, "user_id": 2, "movie_id": 11, "rating": 3.0, "timestamp": 900000000},
    ]


@pytest.mark.parametrize(
    ("row", "reason", "detail"),
    [
        (("1", "10", "4.0", None, "1,10,4.0"), "malformed_line", "does not split into 4 fields: 1,10,4.0"),
        (("1", "10", "4.0", "9,extra", "1,10,4.0,9,extra"), "malformed_line", "does not split"),
        ((None, None, None, None, ""), "malformed_line", "does not split"),
        (("1", "", "4.0", GOOD_TS), "missing_value", "has no movie_id"),
        (("abc", "10", "4.0", GOOD_TS), "not_a_number", "user_id abc is not an integer"),
        (("1", "10", "4.0", "yesterday"), "not_a_number", "timestamp yesterday is not an integer"),
        (("1", "10", "NaN", GOOD_TS), "not_a_number", "rating NaN is not a number"),
        (("1", "10", "inf", GOOD_TS), "not_a_number", "rating inf is not a number"),
        (("1", "10.0", "4", GOOD_TS), "not_a_number", "movie_id 10.0 is not an integer"),
        (("1", "10", "good", GOOD_TS), "not_a_number", "rating good is not a number"),
        (("-4", "10", "4.0", GOOD_TS), "out_of_range", "ids must be positive"),
        (("1", "10", "7", GOOD_TS), "out_of_range", "rating 7.0 is outside 0.5-5"),
        (("1", "10", "0", GOOD_TS), "out_of_range", "rating 0.0 is outside"),
        (("1", "10", "3.3", GOOD_TS), "off_grid", "rating 3.3 is not a half star"),
        (("1", "10", "4.0", str(MIN_TIMESTAMP - 1)), "impossible_timestamp", "before 1995"),
        (("1", "10", "4.0", str(MAX_TS + 1)), "impossible_timestamp", "after the archive was loaded"),
        (("1", "99", "4.0", GOOD_TS), "unknown_movie", "movie_id 99 is not in movies"),
    ],
)
def test_each_bad_row_is_rejected_with_its_reason(row, reason, detail):
    result = clean(("1", "11", "4.0", GOOD_TS), row)
    assert result.clean.height == 1
    assert result.rejects["reason"].to_list() == [reason]
    assert detail in result.rejects["detail"][0]
    # The reject keeps the raw text so the row can be found and fixed.
    assert result.rejects["line_no"].to_list() == [3]


def test_duplicates_keep_the_first_row_in_replay_order():
    result = clean(
        ("1", "10", "4.0", GOOD_TS),
        ("1", "10", "4.0", GOOD_TS),
        ("1", "10", "2.0", GOOD_TS),
        ("1", "10", "2.0", "900000001"),
    )
    assert result.clean["seq"].to_list() == [0, 3]
    assert result.rejects["reason"].to_list() == ["duplicate", "conflicting_duplicate"]


def test_a_row_the_lake_kept_from_an_earlier_batch_makes_its_repeat_a_duplicate():
    earlier = pl.DataFrame(
        {"user_id": [1, 1], "movie_id": [10, 11], "timestamp": [900000000, 900000000], "rating": [4.0, 3.0]}
    )
    result = clean_ratings(
        raw_rows(("1", "10", "4.0", GOOD_TS), ("1", "11", "5.0", GOOD_TS), ("2", "10", "4.0", GOOD_TS)),
        pl.Series([10, 11]), max_timestamp=MAX_TS, earlier=earlier,
    )  # fmt: skip
    assert result.clean["seq"].to_list() == [2]  # user 2's rating is new
    assert result.rejects.select("seq", "reason").rows() == [(0, "duplicate"), (1, "conflicting_duplicate")]
    assert result.clean.height + result.rejects.height == 3


def test_a_bad_row_never_displaces_a_good_duplicate():
    result = clean(("1", "10", "9", GOOD_TS), ("1", "10", "4.0", GOOD_TS))
    assert result.clean["seq"].to_list() == [1]
    assert result.rejects["reason"].to_list() == ["out_of_range"]


def test_every_row_is_accounted_for():
    rows = [("1", "10", "4.0", GOOD_TS)] * 5 + [("x", "10", "4.0", GOOD_TS)] * 3 + [("2", "10", "5", GOOD_TS)]
    result = clean(*rows)
    assert result.clean.height + result.rejects.height == len(rows)
    assert set(result.clean["seq"]).isdisjoint(result.rejects["seq"])
    assert result.reject_counts == {"duplicate": 4, "not_a_number": 3}


def test_movies_are_parsed_and_bad_ones_quarantined():
    raw = pl.DataFrame(
        {
            "movie_id": ["1", "2", "x", "1", "3", "4"],
            "title": ["Toy Story (1995)", "Babylon 5 (1993-1998)", "A", "Again (2000)", "No Year", "  "],
            "year": [None, None, None, None, "2001", None],
            "genres": ["Adventure|Animation", "(no genres listed)", "Drama", "Drama", None, "Drama"],
        }
    )
    result = clean_movies(raw)
    assert result.clean.to_dicts() == [
        {"movie_id": 1, "title": "Toy Story", "year": 1995, "genres": "Adventure|Animation"},
        {"movie_id": 2, "title": "Babylon 5", "year": 1993, "genres": ""},
        {"movie_id": 3, "title": "No Year", "year": 2001, "genres": ""},
    ]
    assert result.rejects["reason"].to_list() == ["not_a_number", "duplicate", "missing_value"]
    assert result.clean.height + result.rejects.height == raw.height


def test_a_blank_movies_line_is_quarantined_with_a_sentence():
    raw = pl.DataFrame(
        {"movie_id": ["1", None], "title": ["Toy Story (1995)", None], "year": [None, None], "genres": ["Comedy", None]},
        schema={"movie_id": pl.String, "title": pl.String, "year": pl.String, "genres": pl.String},
    )
    result = clean_movies(raw)
    assert result.clean["movie_id"].to_list() == [1]
    assert result.rejects.select("reason", "detail").rows() == [("malformed_line", "the line is empty")]


def test_a_huge_bad_field_is_quoted_short_in_the_sentence_and_kept_whole_in_the_line():
    huge = "x" * 1_000_000
    lines = [f"{huge},10,4.0,{GOOD_TS}", f"1,10,4.0,1,2,{huge}"]
    result = clean((huge, "10", "4.0", GOOD_TS, lines[0]), ("1", "10", "4.0", "1,2", lines[1]))
    details = result.rejects["detail"].to_list()
    assert details[0] == f"user_id {'x' * 60}... (1000000 characters) is not an integer"
    assert details[1].startswith("line 3 does not split into 4 fields: 1,10,4.0,1,2,xxx")
    assert details[1].endswith(f"... ({len(lines[1])} characters)")
    assert all(len(detail) < 300 for detail in details)
    assert result.rejects["raw_line"].to_list() == lines  # the line itself is kept whole


def test_a_movie_year_no_film_can_have_is_quarantined():
    raw = pl.DataFrame(
        {"movie_id": ["1", "2", "3"], "title": ["Future (2999)", "Old (1800)", "Fine (1999)"], "year": [None] * 3, "genres": ["Drama"] * 3},
        schema={"movie_id": pl.String, "title": pl.String, "year": pl.String, "genres": pl.String},
    )
    result = clean_movies(raw)
    assert result.clean["movie_id"].to_list() == [3]
    assert result.rejects.select("movie_id", "reason", "detail").rows() == [
        ("1", "out_of_range", "movie 1 has year 2999, outside 1874-2100"),
        ("2", "out_of_range", "movie 2 has year 1800, outside 1874-2100"),
    ]
