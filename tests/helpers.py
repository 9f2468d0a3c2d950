"""Plain helpers the test folders share: a free loopback port and the `recsys` command in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(*args: str, home: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`recsys ARGS` in a subprocess from the repository root, with DAGSTER_HOME=home when given."""
    env = {**os.environ, "DAGSTER_HOME": str(home)} if home is not None else None
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "recsys.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )
