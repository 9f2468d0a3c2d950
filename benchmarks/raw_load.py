"""Loading a ratings.csv archive into the raw store: rows/s and peak memory.

Run one store per process (`--store duckdb|postgres`) so the peak memory is that load's own.
DuckDB's own CSV import of the same file is timed too, as the reference for the DuckDB target.
"""

from __future__ import annotations

import argparse

from benchmarks.common import dataset, peak_rss_mib, store_base, timed, write_result
from recsys.raw.load import load_archive, load_movies
from recsys.settings import store_urls
from recsys.stores import open_store


def duckdb_reference(path) -> dict:
    import duckdb

    with timed() as took:
        con = duckdb.connect()
        rows = con.execute(
            f"CREATE TABLE r AS SELECT * FROM read_csv('{path / 'ratings.csv'}', header = true)"
        ).fetchall()[0][0]
    return {"rows": rows, **took, "rows_per_s": round(rows / took["wall_s"])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["duckdb", "postgres"], required=True)
    parser.add_argument("--rows", type=int, default=32_000_000)
    args = parser.parse_args()

    data = dataset(args.rows)
    base = store_base(args.store, "raw_load")
    with open_store(store_urls(base)["raw"]) as store:
        store.apply_schema("raw")
        load_movies(data, store)
        with timed() as took:
            summary = load_archive(data, store, batch_size=50_000, bootstrap_rows=None)
    result = {
        "store": args.store,
        "rows": summary.rows,
        **took,
        "rows_per_s": round(summary.rows / took["wall_s"]),
        "peak_rss_mib": round(peak_rss_mib()),
        "method": "recsys.raw.load.load_archive: Polars reads and splits the lines, types them (keeping the "
        "text of lines that are not four numbers), sorts into replay order and tags batches; DuckDB ingests "
        "the Arrow buffers, PostgreSQL gets binary COPY (CSV COPY for lines with text), then BRIN summary "
        "and ANALYZE.",
    }
    if args.store == "duckdb":
        result["reference_duckdb_read_csv"] = duckdb_reference(data)
    write_result(f"raw_load_{args.store}", result)


if __name__ == "__main__":
    main()
