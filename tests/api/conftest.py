"""The API's fixtures: `recsys serve` as its own process on stores a replay wrote, over loopback.

One replay and one server serve both test files of this folder (session scope: the replay is the
slow part). The served set moves on once, in test_api.py's refresh test, so a test that compares
answers with the stores reads the serving set in use from the stores rather than assuming one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from asset_replay import BATCH, BOOTSTRAP, BOOTSTRAP_ASSETS, AssetReplay
from helpers import ROOT, free_port

DAYS = 2  # days replayed before the server starts; the archive holds one more for the refresh test


class Server:
    """`recsys serve` in a subprocess, answering on a free loopback port."""

    def __init__(self, store: str, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"serve-{self.port}.log"
        command = [sys.executable, "-m", "recsys.cli", "serve", "--store", store, "--port", str(self.port), "--refresh-seconds", "0.5"]
        self.process = subprocess.Popen(command, stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ})
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"recsys serve exited: {self.log.read_text()}")
            try:
                self.client.get("/health")
                return
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError(f"recsys serve did not answer in 90 s: {self.log.read_text()}")

    def stop(self) -> None:
        self.client.close()
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="session")
def archive(make_archive) -> Path:
    return make_archive(BOOTSTRAP + (DAYS + 1) * BATCH, 5)


@pytest.fixture(scope="session")
def served(archive, tmp_path_factory):
    """(server, replay): `recsys serve` on DuckDB stores with DAYS days replayed."""
    tmp = tmp_path_factory.mktemp("api")
    replay = AssetReplay(tmp / "stores", archive, tmp / "models", serve=True)
    replay.run(BOOTSTRAP_ASSETS)
    for batch in range(DAYS):
        replay.day(batch)
    server = Server(str(tmp / "stores"), tmp)
    yield server, replay
    server.stop()


@pytest.fixture
def start_server(tmp_path):
    """start_server(store): `recsys serve` on another store, stopped when the test ends."""
    servers: list[Server] = []

    def start(store: str) -> Server:
        servers.append(Server(store, tmp_path))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
