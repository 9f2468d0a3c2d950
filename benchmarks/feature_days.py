"""Feature update + training-example build: one 50k partition, and a 100-partition range run.

Setup (not timed) loads an archive of a 1M-row bootstrap and 102 daily batches and cleans it
into the lake. Each measurement then runs in its own process, so its peak memory is its own:
the first day, a single-run backfill of the next 100 days, and one more day after those 100, whose
peak memory is compared with the first day's (state grows with users and movies, not with days).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks.common import current_rss_mib, dataset, peak_rss_mib, store_base, timed, write_result
from recsys.calendar import Calendar
from recsys.settings import DEFAULT_START_DATE, store_urls
from recsys.stores import open_store

BATCH = 50_000
CALENDAR = Calendar.starting(DEFAULT_START_DATE)
BOOTSTRAP = 1_000_000
DAYS = 102


def setup(kind: str) -> str:
    from recsys.features.build import build_bootstrap, build_movie_features
    from recsys.lake.cleaning import clean_movies
    from recsys.lake.tables import archive_info, clean_batch
    from recsys.raw.load import load_archive, load_movies

    data = dataset(BOOTSTRAP + DAYS * BATCH)
    base = store_base(kind, "features")
    urls = store_urls(base)
    with open_store(urls["raw"]) as raw, open_store(urls["lake"]) as lake, open_store(urls["features"]) as features:
        for store, schema in ((raw, "raw"), (lake, "lake"), (features, "features")):
            store.apply_schema(schema)
        load_movies(data, raw)
        load_archive(data, raw, batch_size=BATCH, bootstrap_rows=BOOTSTRAP)
        lake.insert("lake_movies", clean_movies(raw.query("SELECT movie_id, title, year, genres FROM raw_movies")).clean)
        info = archive_info(raw)
        for batch in range(-1, DAYS):
            clean_batch(batch, raw, lake, info, CALENDAR)
        build_movie_features(lake, features)
        build_bootstrap(lake, features, BATCH)
    return base


def measure(base: str, first: int, last: int) -> dict:
    """Run in a child process: build days first..last in one pass and report time and memory."""
    from recsys.features.build import build_days
    from recsys.lake import suites
    from recsys.quality.gx import validate_all

    validate_all(suites.batch_summary(0, 1, 1, 0), suites.lake_ratings_suites(batch_size=1, max_timestamp=1)[2:])
    urls = store_urls(base)
    with open_store(urls["lake"]) as lake, open_store(urls["features"]) as features:
        before = current_rss_mib()  # imports, GX and the open stores: what the days add comes on top
        with timed() as took:
            outcome = build_days(list(range(first, last + 1)), lake, features, CALENDAR)
    rows = outcome.examples
    assert all(c.success for c in outcome.example_checks + outcome.profile_checks)
    return {
        "days": last - first + 1, "rows": rows, **took, "rows_per_s": round(rows / took["wall_s"]),
        "rss_before_mib": round(before), "peak_rss_mib": round(peak_rss_mib()),
        "peak_increase_mib": round(peak_rss_mib() - before),
    }  # fmt: skip


def child(base: str, first: int, last: int) -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.feature_days", "--measure", base, str(first), str(last)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["duckdb", "postgres"])
    parser.add_argument("--measure", nargs=3)
    args = parser.parse_args()
    if args.measure:
        base, first, last = args.measure
        print(json.dumps(measure(base, int(first), int(last))))
        return
    base = setup(args.store)
    first_day = child(base, 0, 0)
    backfill = child(base, 1, 100)
    day_after = child(base, 101, 101)
    write_result(
        f"feature_days_{args.store}",
        {
            "store": args.store,
            "batch_size": BATCH,
            "bootstrap_rows": BOOTSTRAP,
            "first_day": first_day,
            "backfill_100_days": backfill,
            "day_after_100_days": day_after,
            # What one day adds to its process's memory, on the first day and after 100 days built.
            "day_memory_growth_mib": day_after["peak_increase_mib"] - first_day["peak_increase_mib"],
            "method": "recsys.features.build.build_days in a fresh process per measurement: read the lake "
            "batches, stage ids, read the state rows they touch, build examples in one vectorized pass, "
            "replace state rows, deltas and examples in one transaction, then run the GX suites per day. "
            "GX's one-off import is paid before timing.",
        },
    )


if __name__ == "__main__":
    main()
