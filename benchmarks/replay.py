"""A 30-day replay of 50k-row days after a 1,000,000-row bootstrap on DuckDB, end to end.

Runs `recsys replay` twice on the same archive: one Dagster run per daily partition (as the
schedule does) and one run per week of days (the single-run backfill policy). Dagster's per-run
overhead is the run time not spent inside the steps' own work.
"""

from __future__ import annotations

import resource

from benchmarks.common import WORK, dataset, run_replay, write_result

BOOTSTRAP, BATCH, DAYS = 1_000_000, 50_000, 30


def replay(mode: str, data) -> dict:
    options = ["--range-runs"] if mode == "range" else []
    report, wall = run_replay(data, WORK / "replay" / mode, DAYS, BATCH, BOOTSTRAP, *options)
    summary = report["summary"]
    step_seconds = sum(summary["seconds_per_layer"].values())
    rows = summary["rows_raw"]
    return {
        "runs": summary["runs"],
        "wall_s": round(wall, 1),
        "replay_wall_s": summary["wall_seconds"],
        "seconds_per_layer": summary["seconds_per_layer"],
        "rows_per_s_per_layer": {layer: round(rows / s) for layer, s in summary["seconds_per_layer"].items() if s and layer != "raw"},
        "end_to_end_rows_per_s": round((rows + BOOTSTRAP) / wall),
        "dagster_overhead_s": round(summary["run_seconds"] - step_seconds, 1),
        "overhead_per_run_s": round((summary["run_seconds"] - step_seconds) / summary["runs"], 2),
        "mean_mse": summary["mean_mse"],
        "mean_ranking": summary["mean_ranking"],
        "checks": summary["checks"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def main() -> None:
    data = dataset(BOOTSTRAP + DAYS * BATCH + BATCH)
    results = {mode: replay(mode, data) for mode in ("per_day", "range")}
    write_result(
        "replay_30_days_duckdb",
        {
            "bootstrap_rows": BOOTSTRAP,
            "batch_size": BATCH,
            "days": DAYS,
            **results,
            "method": "`recsys replay` in a subprocess (fresh stores and Dagster instance each time): bootstrap job, "
            "30 daily partitions (lake, features, test-then-train monitoring, warm start, serving: embeddings and "
            "batch recommendations) and the 4 weekly retrains "
            "they complete. Overhead = time inside Dagster runs minus the steps' own durations. Peak RSS is the "
            "largest child process so far (the second figure includes the first run).",
        },
    )


if __name__ == "__main__":
    main()
