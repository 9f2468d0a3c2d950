"""The Dagster UI as a person sees it: headless Chromium opens the lineage, launches one partition's
materialization from the asset page, watches that run succeed and finds the checks it evaluated.

What the browser shows is cross-checked against what it is drawn from: the webserver's GraphQL API
(the asset graph's edges, the runs and their status) and the instance's event log (the launched
run's check evaluations). Every screenshot is decoded in the browser and must show a drawn page,
not a blank one.

Needs Debian's chromium (/usr/bin/chromium; `.ci/run` installs it). Without it the test skips and
says so, except in CI, where it fails. The lineage screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers import ROOT, free_port

from recsys.sources import synthetic

ARTIFACTS = ROOT / "test-artifacts"
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


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    data, stores, home = root / "data", root / "stores", root / "dagster_home"
    synthetic.generate(data, 6_000 + 3 * 2_000, seed=4)
    env = {**os.environ, **ENV, "DAGSTER_HOME": str(home), "RECSYS_STORE": str(stores), "RECSYS_DATA_DIR": str(data)}
    home.mkdir()
    replay = subprocess.run(
        [sys.executable, "-m", "recsys.cli", "replay", "--data", str(data), "--days", "1", "--store", str(stores),
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
        yield url, home
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # Under load `dagster dev` has taken over a minute to stop its webserver, daemon and
            # code server (seen once in a full suite run on 2 cores); what it leaves is killed.
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def runs(url: str) -> dict[str, tuple[str, dict[str, str]]]:
    """run id -> (status, tags), as the UI's runs page gets them."""
    data = graphql(url, "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }")
    return {r["runId"]: (r["status"], {t["key"]: t["value"] for t in r["tags"]}) for r in data["runsOrError"]["results"]}


# Draws the PNG on a canvas and returns (distinct colours, share of the most common one), sampling
# every fourth pixel: a blank or half-loaded page has a handful of colours and one of them dominates.
COLOURS = """async (png) => {
  const image = new Image();
  image.src = "data:image/png;base64," + png;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width; canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const counts = new Map();
  let samples = 0;
  for (let i = 0; i < data.length; i += 16) {
    const key = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    counts.set(key, (counts.get(key) || 0) + 1);
    samples += 1;
  }
  return [counts.size, Math.max(...counts.values()) / samples];
}"""


def screenshot(page, analysis_page, name: str) -> tuple[int, float]:
    """Save the page as test-artifacts/<name>.png and check that it shows a drawn page."""
    ARTIFACTS.mkdir(exist_ok=True)
    png = page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    colours, dominant = analysis_page.evaluate(COLOURS, base64.b64encode(png).decode())
    assert colours >= 50 and dominant < 0.97, f"{name}.png looks blank: {colours} colours, {dominant:.0%} one colour"
    return colours, dominant


def test_lineage_materialize_a_partition_from_the_ui_and_see_its_checks(dagster_ui):
    dagster_ui, home = dagster_ui
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1000})
        page.set_default_timeout(60_000)
        analysis = browser.new_page()  # a blank page to decode screenshots in

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
        chain = ("raw_ratings", "lake_ratings", "training_examples", "model_metrics", "user_embeddings", "batch_recommendations")
        for asset in (*chain, "initial_model"):
            page.get_by_text(asset, exact=True).first.wait_for()
        screenshot(page, analysis, "lineage")
        # The edges the lineage draws: each asset of the chain depends on the one before it.
        nodes = graphql(dagster_ui, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")["assetNodes"]
        upstream = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
        for before, after in zip(chain, chain[1:]):
            assert before in upstream[after], f"no lineage edge {before} -> {after}: {upstream[after]}"
        before_launch = runs(dagster_ui)
        assert len(before_launch) == 2 and all(status == "SUCCESS" for status, _ in before_launch.values())

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

        # The replay made two runs (bootstrap, day 1); the new one is the UI's, for 2025-01-02.
        deadline = time.monotonic() + 240
        while True:
            launched = {i: r for i, r in runs(dagster_ui).items() if i not in before_launch}
            if launched and all(status in ("SUCCESS", "FAILURE", "CANCELED") for status, _ in launched.values()):
                break
            assert time.monotonic() < deadline, f"the run launched from the UI did not finish within 240 s: {launched}"
            time.sleep(2)
        (run_id, (status, tags)), = launched.items()
        assert status == "SUCCESS" and tags.get("dagster/partition") == "2025-01-02", (status, tags)
        # Its own page says so too.
        page.goto(f"{dagster_ui}/runs/{run_id}")
        page.get_by_text("Success", exact=True).first.wait_for()
        page.get_by_text("lake_ratings", exact=True).first.wait_for()
        page.get_by_text("Loading run logs").first.wait_for(state="hidden")
        screenshot(page, analysis, "run")

        # The launched run evaluated the day's three checks, and they passed.
        from dagster import DagsterEventType, DagsterInstance

        with DagsterInstance.from_config(str(home)) as instance:
            records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
            results = [r.event_log_entry.dagster_event.event_specific_data for r in records]
        evaluations = {result.check_name: result.passed for result in results}
        assert evaluations == {"lake_ratings_schema": True, "lake_ratings_values": True, "lake_ratings_volume": True}

        page.goto(f"{dagster_ui}/assets/lake_ratings?view=checks")
        for check in ("lake_ratings_schema", "lake_ratings_values", "lake_ratings_volume"):
            page.get_by_text(check, exact=True).first.wait_for()
        screenshot(page, analysis, "checks")
        browser.close()
