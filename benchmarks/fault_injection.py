"""Kill a replay with SIGKILL at several points, resume it, and compare its stores with a replay
never interrupted, table by table. `tests/dagster/test_fault_injection.py` is its short version.

The kill points are spread over the uninterrupted replay's wall time, so they land in the raw
load, the lake, the features, training (initial, warm, weekly full), artifact saves and serving.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from benchmarks.common import ROOT, WORK, dataset, write_result
from recsys.stores import open_store

DAYS, BATCH, BOOTSTRAP = 8, 5_000, 20_000
KILL_AT = (0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9)  # fractions of the uninterrupted replay's wall time
# Columns that say when or how long, where a file went, or which bytes it holds (a .keras file
# records its save time), and raw_archive.max_timestamp (the load time): they differ between any
# two runs, killed or not.
VOLATILE = {
    "cleaned_at", "processed_at", "loaded_at", "created_at", "decided_at", "updated_at", "max_timestamp",
    "artifact", "checksum", "metrics",
}  # fmt: skip


def stores_content(stores: Path) -> dict[str, pl.DataFrame]:
    """Every table of the three DuckDB stores, volatile columns dropped, rows in a fixed order."""
    content = {}
    for name in ("raw", "lake", "features"):
        with open_store(str(stores / f"{name}.duckdb"), read_only=True) as db:
            tables = db.query("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'")["table_name"]
            for table in tables:
                frame = db.query(f"SELECT * FROM {table}")
                frame = frame.drop([c for c in frame.columns if c in VOLATILE])
                sortable = [c for c, t in frame.schema.items() if not isinstance(t, (pl.List, pl.Array))]
                content[f"{name}.{table}"] = frame.sort(sortable)
    return content


def differences(actual: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> list[str]:
    """The tables that differ, to float rounding (Polars' parallel aggregations may add in another order)."""
    found = sorted(set(actual) ^ set(expected))
    for table in sorted(set(actual) & set(expected)):
        try:
            assert_frame_equal(actual[table], expected[table])
        except AssertionError:
            found.append(table)
    return found


def replay_command(archive: Path, stores: Path, days: int, batch: int, bootstrap: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "recsys.cli", "replay", "--data", str(archive), "--store", str(stores),
        "--report", str(stores.parent / "report.json"), "--days", str(days), "--batch-size", str(batch),
        "--bootstrap-rows", str(bootstrap), *extra,
    ]  # fmt: skip


def run(command: list[str], home: Path, kill_after: float | None = None) -> float:
    """Run a replay; with kill_after, SIGKILL it after that many seconds. Returns its wall seconds."""
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT.parent, env={**os.environ, "DAGSTER_HOME": str(home)}, stdout=subprocess.DEVNULL)
    try:
        process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    if kill_after is None and process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}")
    return time.perf_counter() - started


def main() -> None:
    archive = dataset(BOOTSTRAP + (DAYS + 1) * BATCH)
    root = WORK / "fault_injection"
    shutil.rmtree(root, ignore_errors=True)
    straight = root / "straight" / "stores"
    wall = run(replay_command(archive, straight, DAYS, BATCH, BOOTSTRAP), straight.parent / "home")
    expected = stores_content(straight)
    kills = []
    for fraction in KILL_AT:
        stores = root / f"killed-{fraction}" / "stores"
        home = stores.parent / "home"
        killed_after = run(replay_command(archive, stores, DAYS, BATCH, BOOTSTRAP), home, kill_after=wall * fraction)
        run(replay_command(archive, stores, DAYS, BATCH, BOOTSTRAP, "--resume"), home)
        differing = differences(stores_content(stores), expected)
        kills.append({"kill_after_s": round(killed_after, 1), "fraction": fraction, "tables_differing": differing})
        print(json.dumps(kills[-1]), flush=True)
    write_result(
        "fault_injection",
        {
            "days": DAYS, "batch_size": BATCH, "bootstrap_rows": BOOTSTRAP, "tables": len(expected),
            "uninterrupted_wall_s": round(wall, 1), "kills": kills,
            "all_equal": all(not k["tables_differing"] for k in kills),
            "method": "recsys replay on DuckDB, SIGKILL after a fraction of the uninterrupted wall time, then "
            "`recsys replay --resume` with the same arguments; every table of the three stores compared with "
            "the uninterrupted run's, volatile columns (times, artifact paths and checksums) dropped.",
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
