"""What every benchmark shares: datasets, stores, timing and peak memory, JSON results."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from recsys.sources import synthetic

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
WORK = Path(os.environ.get("RECSYS_BENCH_DIR", ROOT.parent / ".recsys" / "bench"))
PG_SERVER = os.environ.get("RECSYS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def dataset(rows: int, seed: int = 0) -> Path:
    """A synthetic archive of `rows` ratings, generated once and reused."""
    path = WORK / f"synthetic-{rows}-{seed}"
    if not (path / "truth.json").exists():
        synthetic.generate(path, rows, seed=seed)
    return path


def store_base(kind: str, name: str) -> str:
    """A fresh base for the three stores: a DuckDB directory or PostgreSQL databases."""
    if kind == "duckdb":
        directory = WORK / "stores" / name
        for file in directory.glob("*.duckdb*"):
            file.unlink()
        return str(directory)
    import psycopg

    prefix = f"recsys_bench_{name}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        for (db,) in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)).fetchall():
            admin.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
    return PG_SERVER.rsplit("/", 1)[0] + "/" + prefix


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """This process's resident memory now (VmRSS), the baseline a peak is compared with."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmRSS line")


def commit() -> dict:
    """The commit measured, and whether the code differed from it (results files aside)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT.parent).stdout.strip()

    changed = git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    return {"commit": git("rev-parse", "HEAD"), "tree_clean": changed == ""}


@contextmanager
def timed() -> Iterator[dict]:
    """Wall and CPU seconds of the block, into the yielded dict."""
    result: dict = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield result
    result["wall_s"] = round(time.perf_counter() - wall, 3)
    result["cpu_s"] = round(time.process_time() - cpu, 3)


def cpu_model() -> str:
    """The CPU's model name and its widest vector extension: machines of one kind differ in both,
    and faiss and TensorFlow run several times faster with AVX-512."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vector = next((v for v in ("avx512f", "avx2", "avx") if v in flags), "no AVX")
    return f"{name} ({vector})"


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "matmul_gflops": matmul_gflops(),
    }


def matmul_gflops(seconds: float = 1.0) -> float:
    """A speed probe of the host, taken when a result is written: float32 matrix products on all
    cores. Hosts of one name differ (a replay ran 2 to 3 times slower on one than on another),
    so a result's seconds are compared with another's only where this figure is alike."""
    import numpy as np

    matrix = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    products, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        matrix @ matrix
        products += 1
    return round(products * 2 * 1024**3 / (time.perf_counter() - started) / 1e9, 1)


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **commit(),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return path


def run_replay(
    data: Path, store: Path | str, days: int, batch: int, bootstrap: int, *options: str, home: Path | None = None
) -> tuple[dict, float]:
    """`recsys replay` of `data` in a subprocess with its own stores (a directory, or a PostgreSQL
    base URL) and Dagster home (`home`, else under the store directory); returns (the report,
    wall seconds)."""
    home = home or Path(store) / "dagster_home"
    report_path = home.parent / "report.json"
    args = [
        sys.executable, "-m", "recsys.cli", "replay", "--data", str(data), "--days", str(days),
        "--batch-size", str(batch), "--bootstrap-rows", str(bootstrap), "--store", str(store),
        "--report", str(report_path), *options,
    ]  # fmt: skip
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    started = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(report_path.read_text()), time.perf_counter() - started
