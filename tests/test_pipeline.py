"""Materialize the real raw and lake assets on DuckDB and PostgreSQL and account for every row."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from recsys_assets import lake, raw, synthetic
from recsys_assets.definitions import ASSETS, build_resources
from recsys_assets.partitions import partition_of
from recsys_resources import Settings, open_store, store_urls

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
def archive(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("archive")
    synthetic.generate(data, 30_000, seed=7)
    ratings = data / "ratings.csv"
    lines = ratings.read_text().splitlines()
    extra = list(BAD_LINES) + [lines[5_000], lines[20_000], ""]  # two exact duplicates, an empty line
    ratings.write_text("\n".join(lines + extra) + "\n")
    return data


def resources_for(base: str, data: Path) -> dict:
    urls = store_urls(base)
    settings = Settings(
        raw_url=urls["raw"],
        lake_url=urls["lake"],
        features_url=urls["features"],
        data_dir=str(data),
        start_date=Settings.from_env().start_date,
        batch_size=BATCH,
        bootstrap_rows=BOOTSTRAP,
    )
    return build_resources(settings)


def materialize_partition(resources: dict, instance, batch: int, raise_on_error: bool = True):
    return materialize(
        ASSETS,
        selection=[lake.lake_ratings],
        partition_key=partition_of(batch),
        resources=resources,
        instance=instance,
        raise_on_error=raise_on_error,
    )


def test_every_raw_row_lands_in_the_lake_or_the_rejects(archive, store_base):
    resources = resources_for(store_base, archive)
    instance = DagsterInstance.ephemeral()
    loaded = materialize(
        ASSETS,
        selection=[raw.raw_movies, raw.raw_ratings, lake.lake_movies, lake.lake_bootstrap],
        resources=resources,
        instance=instance,
    )
    assert loaded.success
    total_lines = 30_000 + len(BAD_LINES) + 3
    batches = -(-(total_lines - BOOTSTRAP) // BATCH)
    for batch in range(batches):
        result = materialize_partition(resources, instance, batch)
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == {
            "lake_ratings_schema",
            "lake_ratings_values",
            "lake_ratings_volume",
        }
        assert all(e.passed for e in evaluations if e.check_name != "lake_ratings_volume")

    urls = store_urls(store_base)
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
    materialize_partition(resources, instance, 1)
    with open_store(urls["lake"]) as lake_db:
        after = lake_db.query("SELECT * FROM lake_ratings WHERE batch = 1 ORDER BY seq")
        assert after.equals(before)
        assert lake_db.scalar("SELECT count(*) FROM lake_ratings") == clean

    # A partition past the end of the archive fails with one sentence naming the last partition.
    failed = materialize_partition(resources, instance, batches, raise_on_error=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert description == (
        f"Partition {partition_of(batches)} would be archive batch {batches}, but the archive holds "
        f"{batches} daily batches (the last partition is {partition_of(batches - 1)})."
    )


def test_a_lake_partition_before_the_archive_is_loaded_says_what_to_do(tmp_path, archive):
    resources = resources_for(str(tmp_path / "stores"), archive)
    result = materialize_partition(resources, DagsterInstance.ephemeral(), 0, raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_failure_data.user_failure_data.description == (
        "The raw store holds no archive yet: materialize raw_movies and raw_ratings first."
    )
