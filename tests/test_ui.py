"""The Dagster UI as a person sees it: headless Chromium opens the lineage, launches one partition's
materialization from the asset page, watches the run succeed and finds its checks.

Needs Debian's chromium (/usr/bin/chromium; `.ci/run` installs it). Without it the test skips and
says so, except in CI, where it fails. The lineage screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from recsys_assets import synthetic

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ENV = {"RECSYS_BATCH_SIZE": "2000", "RECSYS_BOOTSTRAP_ROWS": "6000", "RECSYS_START_DATE": "2025-01-01"}


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium is not installed (apt-get install chromium): the UI test needs it."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    data, stores, home = root / "data", root / "stores", root / "dagster_home"
    synthetic.generate(data, 6_000 + 3 * 2_000, seed=4)
    env = {**os.environ, **ENV, "DAGSTER_HOME": str(home), "RECSYS_STORE": str(stores), "RECSYS_DATA_DIR": str(data)}
    home.mkdir()
    replay = subprocess.run(
        [sys.executable, "-m", "recsys_assets.cli", "replay", "--data", str(data), "--days", "1", "--store", str(stores),
         "--report", str(root / "report.json"), "--batch-size", "2000", "--bootstrap-rows", "6000"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-m", "recsys_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("dagster dev did not start serving within 180 s")
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_lineage_materialize_a_partition_from_the_ui_and_see_its_checks(dagster_ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1000})
        page.set_default_timeout(60_000)

        # The code location must have loaded before its assets can be launched.
        page.goto(f"{dagster_ui}/locations")
        page.get_by_text("Loaded", exact=True).first.wait_for()

        # Lineage from the archive files to the served recommendations.
        page.goto(f"{dagster_ui}/assets/batch_recommendations?view=lineage&lineageScope=upstream&lineageDepth=10")
        skip = page.get_by_role("button", name="Skip")  # Dagster's first-visit community dialog
        try:
            skip.click(timeout=5_000)
        except Exception:
            pass
        for asset in ("raw_ratings", "lake_ratings", "training_examples", "initial_model", "model_metrics", "user_embeddings", "batch_recommendations"):
            page.get_by_text(asset, exact=True).first.wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "lineage.png"))

        # Materialize one partition of lake_ratings as a person would: Materialize…, pick it, launch.
        page.goto(f"{dagster_ui}/assets/lake_ratings")
        page.get_by_role("button", name="Materialize…").click()
        page.get_by_text("Show all partitions").first.click()
        picker = page.get_by_placeholder(re.compile(r"^ex: "))
        picker.fill("2025-01-02")
        picker.press("Enter")
        page.get_by_role("button", name="Launch 1 run").click()
        # Leaving the page before the launch has returned would cancel it: wait for the toast.
        page.get_by_text(re.compile(r"^Launched run")).first.wait_for()

        # The replay made two runs (bootstrap, day 1), both successful; the third is the UI's.
        page.goto(f"{dagster_ui}/runs")
        deadline = time.monotonic() + 240
        # The runs list loads after the page; the bootstrap run's row says it has.
        page.get_by_text("bootstrap", exact=True).first.wait_for()
        while page.get_by_text("Success", exact=True).count() < 3:
            if page.get_by_text("Failure", exact=True).count() or time.monotonic() > deadline:
                page.screenshot(path=str(ARTIFACTS / "runs-failed.png"))
                raise AssertionError("the run launched from the UI did not succeed within 240 s (see test-artifacts/runs-failed.png)")
            page.wait_for_timeout(2_000)
            page.reload()
            page.get_by_text("bootstrap", exact=True).first.wait_for()
        assert page.get_by_text("lake_ratings", exact=True).count() >= 1
        page.screenshot(path=str(ARTIFACTS / "runs.png"))

        page.goto(f"{dagster_ui}/assets/lake_ratings?view=checks")
        for check in ("lake_ratings_schema", "lake_ratings_values", "lake_ratings_volume"):
            page.get_by_text(check, exact=True).first.wait_for()
        assert page.get_by_text("Succeeded").count() >= 3
        page.screenshot(path=str(ARTIFACTS / "checks.png"))
        browser.close()
