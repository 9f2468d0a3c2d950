"""Run every benchmark, each in its own process (so peak memory is its own)."""

from __future__ import annotations

import subprocess
import sys

RUNS = [
    ["benchmarks.demo"],
    ["benchmarks.lake_batches", "--store", "duckdb"],
    ["benchmarks.lake_batches", "--store", "postgres"],
    ["benchmarks.feature_days", "--store", "duckdb"],
    ["benchmarks.feature_days", "--store", "postgres"],
    ["benchmarks.model_training"],
    ["benchmarks.replay"],
    ["benchmarks.movielens_100k"],
    ["benchmarks.drift"],
    ["benchmarks.fault_injection"],
    ["benchmarks.batch_recommendations", "--store", "duckdb"],
    ["benchmarks.batch_recommendations", "--store", "postgres"],
    ["benchmarks.api_latency"],
    ["benchmarks.full_shape", "--store", "duckdb"],
    ["benchmarks.full_shape", "--store", "postgres"],
    ["benchmarks.raw_load", "--store", "duckdb"],
    ["benchmarks.raw_load", "--store", "postgres"],
]


def main() -> int:
    failed = 0
    for run in RUNS:
        print(f"== {' '.join(run)}", flush=True)
        failed += subprocess.call([sys.executable, "-m", *run]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
