"""Loading a ratings.csv archive into the raw store: rows/s and peak memory, against DuckDB's own.

Each measurement runs in a fresh process, so its peak memory is its own. For the DuckDB store the
reference is DuckDB's own `CREATE TABLE AS` from `read_csv` to a disk file, sorted into replay
order and tagged with the batch (no memory limit, its defaults); the two run in turn, load then
reference, `--pairs` times, and the ratio is taken pair by pair so that drift in the machine's
speed cancels. For a PostgreSQL store the reference is the server's own ingest of the same rows
(`server_copy`: COPY from a binary file on its disk, so the server must run on this machine),
timed the same way; the target there is also an absolute rows/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import dataset, peak_rss_mib, store_base, timed, write_result

BOOTSTRAP, BATCH = 5_000_000, 50_000


def load(data, store_kind: str) -> dict:
    from recsys.raw.load import load_archive, load_movies
    from recsys.settings import store_urls
    from recsys.stores import open_store

    base = store_base(store_kind, "raw_load")
    with open_store(store_urls(base)["raw"]) as store:
        store.apply_schema("raw")
        load_movies(data, store)
        with timed() as took:
            summary = load_archive(data, store, batch_size=BATCH, bootstrap_rows=BOOTSTRAP)
    return {"rows": summary.rows, **took, "peak_rss_mib": round(peak_rss_mib())}


def reference(data) -> dict:
    import duckdb

    path = Path(store_base("duckdb", "raw_load_reference"))
    path.mkdir(parents=True, exist_ok=True)
    with timed() as took, duckdb.connect(f"{path}/reference.duckdb") as con:
        con.execute(
            "CREATE TABLE r AS SELECT seq, CAST(CASE WHEN seq < $b THEN -1 ELSE (seq - $b) // $n END AS INTEGER) AS batch, * "
            "FROM (SELECT row_number() OVER (ORDER BY timestamp, userId, movieId) - 1 AS seq, * "
            f"FROM read_csv('{data / 'ratings.csv'}', header = true))",
            {"b": BOOTSTRAP, "n": BATCH},
        )
        rows = con.execute("SELECT count(*) FROM r").fetchone()[0]
    return {"rows": rows, **took, "peak_rss_mib": round(peak_rss_mib())}


def server_copy(data) -> dict:
    """PostgreSQL's own ingest of the load's rows: the same rows, already typed, ordered, tagged and
    encoded as the load sends them (binary COPY), read by the server from a file on its own disk
    into the raw schema, then the load's BRIN summary and ANALYZE. No client, no network: what
    the server alone needs for the rows, against which the load is compared."""
    import tempfile

    import duckdb
    import polars as pl

    from recsys.raw.archive import SORT_MEMORY, order_typed, replay_rows, sink_typed
    from recsys.settings import store_urls
    from recsys.stores import _BINARY_HEADER, _BINARY_TRAILER, _binary_tuples, _split_for_binary_copy, open_store

    with tempfile.TemporaryDirectory(prefix="raw-load-reference-") as scratch:
        folder = Path(scratch)
        folder.chmod(0o755)  # the server's own user reads the file
        typed, ordered, encoded = folder / "typed.parquet", folder / "ordered.parquet", folder / "rows.bin"
        sink_typed(data, typed)
        order_typed(typed, ordered, folder)
        with encoded.open("wb") as out, duckdb.connect(config={"memory_limit": SORT_MEMORY}) as reader:
            out.write(_BINARY_HEADER)
            for frame in reader.sql(replay_rows(ordered, BOOTSTRAP, BATCH)).to_arrow_reader(1_000_000):
                binary_rows, _, columns = _split_for_binary_copy(pl.from_arrow(frame))
                out.write(_binary_tuples(binary_rows.select(columns)))
            out.write(_BINARY_TRAILER)
        encoded.chmod(0o644)
        with open_store(store_urls(store_base("postgres", "raw_load_reference"))["raw"]) as store:
            store.apply_schema("raw")
            with timed() as took:
                store.execute(f"COPY raw_ratings ({', '.join(columns)}) FROM '{encoded}' (FORMAT binary)")
                store.apply_schema("raw_loaded")
            rows = store.scalar("SELECT count(*) FROM raw_ratings")
    return {"rows": rows, **took}


def child(what: str, rows: int) -> dict:
    """One measurement in a fresh interpreter (its imports are not timed)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.raw_load", "--child", what, "--rows", str(rows)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["duckdb", "postgres"])
    parser.add_argument("--rows", type=int, default=32_000_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--child", choices=["duckdb", "postgres", "reference", "server_copy"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    data = dataset(args.rows)
    if args.child:
        measure = {"reference": reference, "server_copy": server_copy}.get(args.child)
        print(json.dumps(measure(data) if measure else load(data, args.child)))
        return
    runs, references = [], []
    for _ in range(args.pairs):
        runs.append(child(args.store, args.rows))
        references.append(child("reference" if args.store == "duckdb" else "server_copy", args.rows))
    median = lambda values: round(statistics.median(values), 3)  # noqa: E731
    result = {
        "store": args.store,
        "rows": runs[0]["rows"],
        "runs": runs,
        "wall_s": median([r["wall_s"] for r in runs]),
        "rows_per_s": round(runs[0]["rows"] / statistics.median([r["wall_s"] for r in runs])),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "method": "recsys.raw.load.load_archive in a fresh process per run: Polars types the ratings (its strict CSV "
        "reader for a clean ratings.csv, else the line reader) and streams them to Parquet, DuckDB sorts them into "
        "replay order out of core (1.5 GB memory limit) to a second Parquet file, whose row numbers are the rows' seq; "
        "a DuckDB store inserts from it, a PostgreSQL one gets binary COPY a million rows at a time; then BRIN "
        "summary and ANALYZE. Medians over the runs.",
    }
    ratios = [ref["wall_s"] / run["wall_s"] for run, ref in zip(runs, references)]
    if args.store == "postgres":
        result["reference_server_copy"] = {
            "runs": references,
            "wall_s": median([r["wall_s"] for r in references]),
            "rows_per_s": round(references[0]["rows"] / statistics.median([r["wall_s"] for r in references])),
            "method": "the same rows typed, ordered, tagged and binary-encoded beforehand (untimed), then COPY from a "
            "file on the server's disk into the raw schema, BRIN summary and ANALYZE: the server's own ingest",
        }
        result["speed_vs_server_copy"] = {"pairs": [round(r, 3) for r in ratios], "median": median(ratios)}
    else:
        result["reference_duckdb_sorted_ctas"] = {
            "runs": references,
            "wall_s": median([r["wall_s"] for r in references]),
            "rows_per_s": round(references[0]["rows"] / statistics.median([r["wall_s"] for r in references])),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in references),
            "query": "CREATE TABLE AS SELECT seq, batch, * FROM (SELECT row_number() OVER (ORDER BY timestamp, userId, "
            "movieId) - 1 AS seq, * FROM read_csv(ratings.csv)) into a DuckDB file, DuckDB's default settings",
        }
        result["speed_vs_reference"] = {"pairs": [round(r, 3) for r in ratios], "median": median(ratios), "target": 0.9}
    write_result(f"raw_load_{args.store}", result)


if __name__ == "__main__":
    main()
