"""Materialize the real raw and lake assets on DuckDB and PostgreSQL and account for every row."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from asset_replay import AssetReplay, partition_of

from recsys.stores import open_store

BATCH = 5_000
BOOTSTRAP = 10_000

# Bad lines appended to a generated archive, with the reason each must be quarantined for.
BAD_LINES = {
    "1,1,4.0": "malformed_line",  # truncated
    "1,1,4.0,1000000000,extra": "malformed_line",
    "abc,1,4.0,1000000000": "not_a_number",
    "2,1,NaN,1000000001": "not_a_number",
    "3,1,7,1000000002": "out_of_range",
    "-4,1,4.0,1000000003": "out_of_range",
    "5,1,3.3,1000000004": "off_grid",
    "6,999999,4.0,1000000005": "unknown_movie",
    "7,1,4.0,-5": "impossible_timestamp",
}


@pytest.fixture(scope="module")
def archive(make_archive, tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("archive") / "bad-lines"
    shutil.copytree(make_archive(30_000, 7), data)
    ratings = data / "ratings.csv"
    lines = ratings.read_text().splitlines()
    extra = list(BAD_LINES) + [lines[5_000], lines[20_000], ""]  # two exact duplicates, an empty line
    ratings.write_text("\n".join(lines + extra) + "\n")
    return data


def lake_replay(base: str, data: Path) -> AssetReplay:
    return AssetReplay(base, data, batch=BATCH, bootstrap=BOOTSTRAP)


def test_every_raw_row_lands_in_the_lake_or_the_rejects(archive, store_base):
    replay = lake_replay(store_base, archive)
    replay.run(["raw_movies", "raw_ratings", "lake_movies", "lake_bootstrap"])
    total_lines = 30_000 + len(BAD_LINES) + 3
    batches = -(-(total_lines - BOOTSTRAP) // BATCH)
    for batch in range(batches):
        result = replay.run(["lake_ratings"], partition_of(batch))
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == {
            "lake_ratings_schema",
            "lake_ratings_values",
            "lake_ratings_volume",
        }
        assert all(e.passed for e in evaluations if e.check_name != "lake_ratings_volume")

    urls = replay.urls
    with open_store(urls["raw"]) as raw_db, open_store(urls["lake"]) as lake_db:
        assert raw_db.scalar("SELECT count(*) FROM raw_ratings") == total_lines
        assert raw_db.scalar("SELECT count(*) FROM raw_ratings_status WHERE processed_at IS NULL") == 0
        per_batch = lake_db.query("SELECT batch, rows_raw, rows_clean, rows_rejected FROM lake_batches ORDER BY batch")
        raw_counts = raw_db.query("SELECT batch, count(*) AS n FROM raw_ratings GROUP BY batch ORDER BY batch")
        assert per_batch["batch"].to_list() == list(range(-1, batches))
        assert per_batch["rows_raw"].to_list() == raw_counts["n"].to_list()
        assert (per_batch["rows_clean"] + per_batch["rows_rejected"] == per_batch["rows_raw"]).all()
        clean = lake_db.scalar("SELECT count(*) FROM lake_ratings")
        rejected = lake_db.scalar("SELECT count(*) FROM lake_rejects")
        assert clean + rejected == total_lines
        reasons = lake_db.query("SELECT reason, count(*) AS n FROM lake_rejects GROUP BY reason")
        counts = dict(zip(reasons["reason"], reasons["n"]))
        expected: dict[str, int] = {}
        for reason in [*BAD_LINES.values(), "duplicate", "duplicate", "malformed_line"]:
            expected[reason] = expected.get(reason, 0) + 1
        assert counts == expected

        # Re-materializing a partition replaces it: same rows, nothing doubled, nothing lost.
        before = lake_db.query("SELECT * FROM lake_ratings WHERE batch = 1 ORDER BY seq")
    replay.run(["lake_ratings"], partition_of(1))
    with open_store(urls["lake"]) as lake_db:
        after = lake_db.query("SELECT * FROM lake_ratings WHERE batch = 1 ORDER BY seq")
        assert after.equals(before)
        assert lake_db.scalar("SELECT count(*) FROM lake_ratings") == clean

    # A partition past the end of the archive fails with one sentence naming the last partition.
    failed = replay.run(["lake_ratings"], partition_of(batches), ok=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert description == (
        f"Partition {partition_of(batches)} would be archive batch {batches}, but the archive holds "
        f"{batches} daily batches (the last partition is {partition_of(batches - 1)})."
    )


def test_a_lake_partition_before_the_archive_is_loaded_says_what_to_do(tmp_path, archive):
    result = lake_replay(str(tmp_path / "stores"), archive).run(["lake_ratings"], partition_of(0), ok=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_failure_data.user_failure_data.description == (
        "The raw store holds no archive yet: materialize raw_movies and raw_ratings first."
    )
