"""`recsys demo`, the README's main command, timed end to end from an empty home (archive generation included)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

from benchmarks.common import ROOT, WORK, write_result


def main() -> None:
    home = WORK / "demo"
    shutil.rmtree(home, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "recsys.cli", "demo", "--home", str(home)], check=True, cwd=ROOT.parent, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    summary = json.loads((home / "report.json").read_text())["summary"]
    write_result(
        "demo",
        {
            "wall_s": round(wall, 1),
            "days": summary["days"],
            "rows_raw": summary["rows_raw"],
            "runs": summary["runs"],
            "mean_mse": summary["mean_mse"],
            "method": "`python -m recsys.cli demo` with its defaults in a fresh home: generate the synthetic archive, "
            "replay it through Dagster on DuckDB, print the table. The interpreter's start-up is included.",
        },
    )


if __name__ == "__main__":
    main()
