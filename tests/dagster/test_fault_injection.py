"""A replay killed with SIGKILL, then resumed, ends with the same stores as one never interrupted.

`benchmarks/fault_injection.py` sweeps kill points over a longer replay; this is its short version:
one kill, after the first day's run has finished and while the next is under way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, run_cli

from benchmarks.fault_injection import differences, stores_content

DAYS = 3
ARGS = ["--days", str(DAYS), "--batch-size", "2000", "--bootstrap-rows", "6000"]


def replay(archive: Path, stores: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("replay", "--data", str(archive), "--store", str(stores), "--report", str(stores.parent / "r.json"),
                   *ARGS, *extra, home=stores.parent / "home")  # fmt: skip


def test_a_replay_killed_mid_day_and_resumed_equals_one_never_interrupted(make_archive, tmp_path):
    archive = make_archive(6_000 + (DAYS + 1) * 2_000, 8)
    straight = tmp_path / "straight" / "stores"
    assert replay(archive, straight).returncode == 0

    killed = tmp_path / "killed" / "stores"
    (killed.parent / "home").mkdir(parents=True)
    command = [sys.executable, "-m", "recsys.cli", "replay", "--data", str(archive), "--store", str(killed),
               "--report", str(killed.parent / "r.json"), *ARGS]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "DAGSTER_HOME": str(killed.parent / "home")}
    )
    for line in process.stdout:
        if line.startswith(f"[   1/{DAYS}]"):  # day 0 is done; day 1's run starts now
            break
    else:
        pytest.fail(f"the replay ended before its first day: exit {process.wait()}")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    resumed = replay(archive, killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected = stores_content(straight)
    assert len(expected) > 20 and differences(stores_content(killed), expected) == []
