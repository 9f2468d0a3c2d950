"""The store interface behaves the same on DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal
import pytest

from recsys.errors import RecsysError
from recsys.serving.store import _list_column
from recsys.settings import Settings, store_urls
from recsys.stores import _split_for_binary_copy, open_store, redact


def test_store_urls_for_a_directory_and_a_server(tmp_path):
    urls = store_urls(str(tmp_path))
    assert urls == {name: str(tmp_path / f"{name}.duckdb") for name in ("raw", "lake", "features")}
    server = store_urls("postgresql://u:secret@db:5432")
    assert server["lake"] == "postgresql://u:secret@db:5432/recsys_lake"
    assert store_urls("postgresql://u@db/prod")["raw"] == "postgresql://u@db/prod_raw"


def test_settings_come_from_the_environment(tmp_path):
    settings = Settings.from_env({"RECSYS_STORE": str(tmp_path), "RECSYS_LAKE_URL": "postgresql://x/lake"})
    assert settings.raw_url == str(tmp_path / "raw.duckdb")
    assert settings.lake_url == "postgresql://x/lake"
    with pytest.raises(RecsysError, match="not a date"):
        Settings.from_env({"RECSYS_START_DATE": "yesterday"})


def test_each_store_has_its_own_artifact_folder_recorded_as_an_absolute_path(tmp_path, monkeypatch):
    from recsys.models.versions import ModelingSettings

    a = Settings.for_store("postgresql://u:secret@db.example:5433/shop").model_dir
    b = Settings.for_store("postgresql://u:secret@db.example:5433/lab").model_dir
    assert a == ".recsys/models/db.example-5433-shop" and b == ".recsys/models/db.example-5433-lab"
    assert Settings.for_store(str(tmp_path / "stores")).model_dir == str(tmp_path / "stores" / "models")
    assert Settings.from_env({"RECSYS_STORE": "postgresql://u@h/x"}).model_dir == ".recsys/models/h-5432-x"
    monkeypatch.chdir(tmp_path)
    assert ModelingSettings(artifact_dir=a).directory == tmp_path / a


def test_password_is_redacted():
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"


def test_unsupported_url_is_one_sentence():
    with pytest.raises(RecsysError, match="is not supported"):
        open_store("mysql://root@localhost/db")


def test_unreachable_postgres_is_one_sentence():
    with pytest.raises(RecsysError) as error:
        open_store("postgresql://postgres@127.0.0.1:1/nowhere")
    message = str(error.value)
    assert message.startswith("Cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/nowhere")
    assert "\n" not in message


FRAME = pl.DataFrame(
    {
        "seq": [1, 2, 3],
        "name": ["a", "", None],
        "score": [0.1 + 0.2, None, 1e-9],
        "flag": [True, None, False],
        "seen_at": [dt.datetime(2024, 1, 2, 3, 4, 5), None, dt.datetime(1999, 12, 31)],
    }
)


def test_round_trip_keeps_types_nulls_and_empty_strings(store_base):
    with open_store(store_urls(store_base)["lake"]) as store:
        store.execute(
            "CREATE TABLE t (seq BIGINT, name TEXT, score DOUBLE PRECISION, flag BOOLEAN, seen_at TIMESTAMP)"
        )
        assert store.insert("t", FRAME) == 3
        back = store.query("SELECT * FROM t WHERE seq >= $low ORDER BY seq", {"low": 1})
        assert back.to_dicts() == FRAME.to_dicts()
        assert back.schema["seq"] == pl.Int64 and back.schema["flag"] == pl.Boolean
        assert store.query("SELECT * FROM t WHERE seq > $low", {"low": 99}).height == 0


def test_numeric_reads_keep_types_values_and_nulls(store_base):
    frame = pl.DataFrame(
        {"a": [1, -(2**62), 3], "b": [7, 0, -7], "c": [1, 2, 3], "d": [0.1, float("inf"), -2.5], "e": [0.1 + 0.2, float("nan"), 1e300]},
        schema={"a": pl.Int64, "b": pl.Int32, "c": pl.Int16, "d": pl.Float32, "e": pl.Float64},
    )
    with open_store(store_urls(store_base)["lake"]) as store:
        store.execute("CREATE TABLE n (a BIGINT, b INTEGER, c SMALLINT, d REAL, e DOUBLE PRECISION)")
        store.insert("n", frame)
        read = "SELECT a, b, c, d, e FROM n ORDER BY c"
        assert_frame_equal(store.query(read), frame)
        assert_frame_equal(store.query("SELECT a FROM n WHERE a > $big", {"big": 2**62}), frame.clear().select("a"))
        store.execute("INSERT INTO n VALUES (4, NULL, 4, NULL, 2.0)")
        with_null = pl.concat([frame, pl.DataFrame({"a": [4], "b": [None], "c": [4], "d": [None], "e": [2.0]}, schema=frame.schema)])
        assert_frame_equal(store.query(read), with_null)


def test_replace_is_idempotent_and_atomic(store_base):
    with open_store(store_urls(store_base)["lake"]) as store:
        store.execute("CREATE TABLE t (batch INTEGER, value BIGINT)")
        rows = pl.DataFrame({"batch": [7, 7], "value": [1, 2]}, schema={"batch": pl.Int32, "value": pl.Int64})
        store.replace("t", "batch = $batch", {"batch": 7}, rows)
        store.replace("t", "batch = $batch", {"batch": 7}, rows)
        assert store.scalar("SELECT count(*) FROM t") == 2
        # A failing insert rolls the delete back: the batch is still whole.
        bad = pl.DataFrame({"batch": [7], "nope": [1]})
        with pytest.raises(Exception):
            store.replace("t", "batch = $batch", {"batch": 7}, bad)
        assert store.scalar("SELECT count(*) FROM t") == 2


def test_schema_files_apply_twice(store_base):
    with open_store(store_urls(store_base)["raw"]) as store:
        store.apply_schema("raw")
        store.apply_schema("raw")
        assert store.table_exists("raw_ratings")


def test_missing_postgres_database_is_created(pg_base):
    url = store_urls(pg_base)["features"]
    with open_store(url) as store:
        assert store.scalar("SELECT current_database()") == url.rsplit("/", 1)[1]


def test_bulk_insert_mixes_complete_numeric_rows_and_rows_with_text_or_nulls(store_base):
    # On PostgreSQL the first kind goes through binary COPY and the rest through CSV COPY.
    frame = pl.DataFrame(
        {
            "seq": list(range(6)),
            "batch": [0, 0, 1, 1, 2, 2],
            "rating": [4.5, 0.5, None, 3.0, 5.0, 1.5],
            "raw_line": [None, None, None, "x,1", None, "1,2,3"],
        },
        schema={"seq": pl.Int64, "batch": pl.Int32, "rating": pl.Float64, "raw_line": pl.String},
    )
    with open_store(store_urls(store_base)["raw"]) as store:
        store.execute("CREATE TABLE mixed (seq BIGINT, batch INTEGER, rating DOUBLE PRECISION, raw_line TEXT)")
        assert store.insert("mixed", frame) == 6
        assert store.query("SELECT * FROM mixed ORDER BY seq").equals(frame)


def test_bulk_insert_of_vectors_lists_and_a_set_key_keeps_every_value(store_base):
    # On PostgreSQL, lists of one length and a text column of one value go through binary COPY with
    # the numbers (a day's vectors and lists under their set's version); lists of several lengths
    # send their frame through CSV COPY.
    vectors = np.array([[0.1, -2e-8], [3.4028235e38, 1.5], [np.inf, -0.0]], dtype=np.float32)
    schema = {"version": pl.String, "id": pl.Int64, "embedding": pl.List(pl.Float32), "movie_ids": pl.List(pl.Int64)}
    uniform = pl.DataFrame(
        {"version": ["warm-1"] * 3, "id": [1, 2, 3], "embedding": vectors.tolist(), "movie_ids": [[1, 2**62], [3, -4], [5, 6]]},
        schema=schema,
    )
    ragged = pl.DataFrame({"version": ["warm-2"] * 2, "id": [4, 5], "embedding": [[1.0, 2.0], [3.0, 4.0]], "movie_ids": [[7], [8, 9]]}, schema=schema)
    assert list(_split_for_binary_copy(uniform)[2]) == ["version", "id", "embedding", "movie_ids"]
    assert list(_split_for_binary_copy(ragged)[2]) == ["version", "id", "embedding"]
    with open_store(store_urls(store_base)["features"]) as store:
        store.execute("CREATE TABLE vectors (version TEXT, id BIGINT, embedding REAL[], movie_ids BIGINT[])")
        assert store.insert("vectors", uniform) + store.insert("vectors", ragged) == 5
        back = store.query("SELECT * FROM vectors ORDER BY id")
        lists = {name: _list_column(back[name], inner).to_list() for name, inner in (("embedding", pl.Float32), ("movie_ids", pl.Int64))}
        expected = pl.concat([uniform, ragged])
        assert back["version"].to_list() == expected["version"].to_list() and back["id"].to_list() == [1, 2, 3, 4, 5]
        assert lists == {"embedding": expected["embedding"].to_list(), "movie_ids": expected["movie_ids"].to_list()}


def test_a_stream_of_frames_is_inserted_whole_or_not_at_all(store_base):
    frames = [
        pl.DataFrame({"seq": [0, 1], "raw_line": [None, "x,1"]}, schema={"seq": pl.Int64, "raw_line": pl.String}),
        pl.DataFrame({"seq": [2], "raw_line": [None]}, schema={"seq": pl.Int64, "raw_line": pl.String}),
    ]
    with open_store(store_urls(store_base)["raw"]) as store:
        store.execute("CREATE TABLE streamed (seq BIGINT, raw_line TEXT)")
        assert store.insert_batches("streamed", iter(frames)) == 3
        assert store.query("SELECT * FROM streamed ORDER BY seq").equals(pl.concat(frames))

        def failing():
            yield frames[1]
            raise RuntimeError("the source broke")

        with pytest.raises(RuntimeError, match="the source broke"):
            with store.transaction():
                store.clear("streamed")
                store.insert_batches("streamed", failing())
        assert store.scalar("SELECT count(*) FROM streamed") == 3
