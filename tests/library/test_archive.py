"""Replay order and batch assignment of the raw archive."""

from __future__ import annotations

import polars as pl
import pytest

from recsys.calendar import Calendar
from recsys.errors import RecsysError
from recsys.raw.archive import (
    _sink_clean_csv,
    batch_count,
    default_bootstrap_rows,
    order_typed,
    replay_rows,
    sink_typed,
    type_fields,
)
from recsys.sources import readers


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


@pytest.fixture
def order_archive(tmp_path):
    """Typed rows through the loader's two steps: sorted by DuckDB to a file, then numbered."""

    def order(typed: pl.DataFrame, bootstrap_rows: int, batch_size: int) -> pl.DataFrame:
        import duckdb

        typed.write_parquet(tmp_path / "typed.parquet")
        assert order_typed(tmp_path / "typed.parquet", tmp_path / "ordered.parquet", tmp_path) == typed.height
        with duckdb.connect() as con:
            return pl.from_arrow(con.sql(replay_rows(tmp_path / "ordered.parquet", bootstrap_rows, batch_size)).to_arrow_table())

    return order


def test_rows_are_ordered_by_timestamp_user_movie_then_line(order_archive):
    rows = [("2", "5", "300"), ("1", "9", "300"), ("1", "2", "300"), ("7", "7", "100"), ("1", "2", "300")]
    ordered = order_archive(lines(rows), bootstrap_rows=0, batch_size=10)
    assert ordered["line_no"].to_list() == [4, 3, 5, 2, 1]
    assert ordered["seq"].to_list() == [0, 1, 2, 3, 4]


def test_unparseable_keys_sort_last_and_still_get_a_batch(order_archive):
    rows = [("x", "1", "200"), ("1", "1", None, "1,1"), ("1", "1", "100")]
    ordered = order_archive(lines(rows), bootstrap_rows=0, batch_size=2)
    assert ordered["line_no"].to_list() == [3, 1, 2]
    assert ordered["batch"].to_list() == [0, 0, 1]


def test_fields_are_typed_and_unparsed_lines_keep_their_text():
    typed = lines([("1", " 2 ", "300"), ("x", "2", "300"), ("1", "2", None, "1,2")])
    assert typed["user_id"].to_list() == [1, None, 1]
    assert typed["raw_line"].to_list() == [None, "x,2,4.0,300", "1,2"]


def test_bootstrap_then_batches_of_fixed_size(order_archive):
    rows = [(str(i), "1", str(1000 + i)) for i in range(11)]
    ordered = order_archive(lines(rows), bootstrap_rows=3, batch_size=4)
    assert ordered["batch"].to_list() == [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1]
    assert batch_count(11, 3, 4) == 2
    assert batch_count(12, 3, 4) == 3  # the last batch may be short


def test_a_batch_size_that_is_not_positive_is_refused(order_archive):
    with pytest.raises(RecsysError, match="positive number of rows"):
        order_archive(lines([("1", "1", "100")]), 0, 0)


HEADER = "userId,movieId,rating,timestamp\n"
# Files the strict CSV reader types: it must give exactly the line reader's rows.
CLEAN = {
    "plain": "1,2,3.5,100\n3,4,5,90\n",
    "signs and zeros": "+1,007,3.5,100\n-1,2,4,100\n",
    "short decimals": "1,2,4.,100\n1,3,.5,100\n",
    "crlf": "1,2,3.5,100\r\n1,3,4,101\r\n",
    "no final newline": "1,2,3.5,100",
}
# Files it must hand to the line reader, which keeps the text of every line that is not four numbers.
UNCLEAN = {
    "not a number": "1,2,3.5,1.5\n",
    "exponent": "1,2,4,1e3\n",
    "blank line": "1,2,3.5,100\n\n1,3,4,101\n",
    "blanks around a field": "1, 2 ,3.5,100\n",
    "nan": "1,2,nan,100\n",
    "quoted": '1,2,"3.5",100\n',
    "missing field": "1,2,3.5\n",
    "extra field": "1,2,3.5,100,7\n",
    "empty field": "1,,3.5,100\n",
    "too large": "99999999999999999999,2,3,4\n",
}


@pytest.mark.parametrize("name", [*CLEAN, *UNCLEAN])
def test_the_fast_typed_read_gives_the_line_readers_rows_or_none(tmp_path, name):
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n2,A (1999),Drama\n")
    (tmp_path / "ratings.csv").write_text(HEADER + {**CLEAN, **UNCLEAN}[name])
    assert _sink_clean_csv(tmp_path / "ratings.csv", tmp_path / "fast.parquet") is (name in CLEAN)
    sink_typed(tmp_path, tmp_path / "typed.parquet")
    by_lines = type_fields(readers.scan_raw_ratings(tmp_path)).collect()
    assert pl.read_parquet(tmp_path / "typed.parquet").equals(by_lines)
    if name in CLEAN:
        assert pl.read_parquet(tmp_path / "fast.parquet").equals(by_lines)
        assert by_lines["raw_line"].null_count() == by_lines.height


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


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_load_stores_every_line_once_in_replay_order(kind, tmp_path, request):
    """The archive through the whole load (typed, sorted to a file, numbered, inserted): every
    line once, in replay order with its batch, and a second load replaces the first."""
    from recsys.raw.load import load_archive, load_movies
    from recsys.settings import store_urls
    from recsys.stores import open_store

    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "movies.csv").write_text("movieId,title,genres\n1,A (1999),Drama\n2,B (2001),Comedy\n")
    body = "".join(f"{u},{1 + u % 2},{1 + u % 5}.0,{1000 - u // 3}\n" for u in range(40)) + "oops\n7,x,4,5\n"
    (archive / "ratings.csv").write_text(HEADER + body)
    # A quote in the store's folder reaches the scratch files' paths in DuckDB's SQL.
    base = str(tmp_path / "the store's folder") if kind == "duckdb" else request.getfixturevalue("pg_base")
    # What a killed load left beside a DuckDB store is removed by the next load.
    leftover = tmp_path / "the store's folder" / ".raw-load-killed"
    leftover.mkdir(parents=True)
    (leftover / "typed.parquet").write_bytes(b"partial")
    with open_store(store_urls(base)["raw"]) as store:
        store.apply_schema("raw")
        load_movies(archive, store)
        for _ in range(2):
            summary = load_archive(archive, store, batch_size=10, bootstrap_rows=12)
        stored = store.query("SELECT seq, batch, line_no, user_id, movie_id, rating, timestamp, raw_line FROM raw_ratings ORDER BY seq")
    assert summary.rows == stored.height == 42 and summary.batches == 3
    assert leftover.exists() == (kind == "postgres")  # beside a DuckDB store only
    assert stored["seq"].to_list() == list(range(42))  # nothing twice, nothing missing
    assert sorted(stored["line_no"].to_list()) == list(range(2, 44))
    assert stored["batch"].to_list() == [-1] * 12 + [0] * 10 + [1] * 10 + [2] * 10
    # Bad lines keep their text: one with no timestamp sorts last, one whose timestamp parsed by it.
    assert stored["raw_line"].to_list()[-1] == "oops" and stored["raw_line"].to_list()[0] == "7,x,4,5"
    assert stored["raw_line"].null_count() == 40
    by_key = stored.slice(1, 40).select("timestamp", "user_id", "movie_id", "line_no")
    assert by_key.equals(by_key.sort("timestamp", "user_id", "movie_id", "line_no"))
