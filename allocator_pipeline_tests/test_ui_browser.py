"""The Dagster UI in a real browser, as the project's users first meet it: ``dagster dev`` on a free
loopback port, headless Chromium (Playwright driving Debian's ``/usr/bin/chromium``; no browser
is ever downloaded) on the global asset lineage page: the asset groups are shown; the dataset
assets are filtered and materialised with the page's own button; the run the daemon launches
succeeds; the fold partitions it registers are shown on ``fold_dataset``; the ``live_monitor``
asset shows its three checks. Screenshots are kept
under the test's tmp dir and copied to ``test-artifacts/ui/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from allocator_pipeline_tests.support.homes import QUICK_PASSIVE_TOML
from allocator_pipeline_tests.test_webserver import REPO, free_port

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "ui"
GROUPS = [
    "allocation",
    "ensemble",
    "evaluation",
    "features",
    "folds",
    "inputs",
    "labels",
    "models",
    "monitoring",
    "promotion",
    "tuning",
]
MONITOR_CHECKS = ["live_return_in_range", "model_age_below_limit", "inputs_arriving"]
DATASET_SELECTION = "group:inputs or group:features or group:labels or key:fold_plan"
TOML = QUICK_PASSIVE_TOML
RUNS = "{ runsOrError { ... on Runs { results { runId status } } } }"


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.skip("playwright is not installed (pip install -c constraints.txt -e '.[test]')")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian's chromium package); the test never downloads a browser")
    return sync_playwright


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def start_dagster_dev(tmp_path: Path, port: int) -> subprocess.Popen:
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    home.mkdir()
    dagster_home.mkdir()
    (home / "allocator.toml").write_text(TOML)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = dict(os.environ, DAGSTER_HOME=str(dagster_home), ALLOCATOR_HOME=str(home), DAGSTER_DISABLE_TELEMETRY="1")
    for var in ("ALLOCATOR_PRICES", "ALLOCATOR_STEP3", "ALLOCATOR_PROFILE", "ALLOCATOR_CONFIG"):
        env.pop(var, None)
    log = open(tmp_path / "dagster_dev.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    command = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port)]
    return subprocess.Popen(
        [*command, "-w", str(REPO / "workspace.yaml")],
        cwd=tmp_path,  # not the repository: its dagster.yaml is for DAGSTER_HOME at the repository root
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the webserver, daemon and code servers stop with it
    )


def stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # children that outlive dagster dev (its group, started here)
        os.killpg(proc.pid, signal.SIGKILL)


def wait_for(condition, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s; dagster dev log:\n{log.read_text()[-3000:]}")
        time.sleep(1)


def test_lineage_page_materialises_the_dataset_through_the_daemon(tmp_path: Path):
    sync_playwright = _playwright()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    port = free_port()
    log = tmp_path / "dagster_dev.log"
    proc = start_dagster_dev(tmp_path, port)
    try:
        wait_for(lambda: graphql(port, "{ version }")["version"], 180, "dagster dev did not serve", log)
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(Path(tempfile.mkdtemp(dir=tmp_path, prefix="chromium-profile-"))),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1600, "height": 1000},
            )
            try:
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{port}/asset-groups")
                for group in GROUPS:  # the groups in the lineage sidebar
                    page.get_by_text(group, exact=True).first.wait_for(timeout=90_000)
                page.wait_for_timeout(2000)
                skip = page.get_by_role("button", name="Skip")  # Dagster's one-time community dialog
                if skip.count():
                    skip.first.click()
                page.screenshot(path=str(shots / "01_lineage_groups.png"))

                page.locator(".CodeMirror").first.click()
                page.keyboard.type(DATASET_SELECTION)
                page.keyboard.press("Enter")
                page.get_by_role("button", name="Materialize all").wait_for(timeout=30_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(shots / "02_dataset_selection.png"))
                page.get_by_role("button", name="Materialize all").click()
                page.get_by_text("Launched run").wait_for(timeout=60_000)
                page.screenshot(path=str(shots / "03_launched.png"))

                run = wait_for(lambda: graphql(port, RUNS)["runsOrError"]["results"], 60, "no run was queued", log)[0]
                status = wait_for(
                    lambda: (
                        (s := graphql(port, RUNS)["runsOrError"]["results"][0]["status"])
                        in ("SUCCESS", "FAILURE", "CANCELED")
                        and s
                    ),
                    600,
                    "the daemon's run did not finish",
                    log,
                )
                page.goto(f"http://127.0.0.1:{port}/runs/{run['runId']}")
                page.get_by_text("RUN_SUCCESS" if status == "SUCCESS" else "RUN_FAILURE").first.wait_for(timeout=60_000)
                page.screenshot(path=str(shots / "04_run.png"))
                assert status == "SUCCESS", f"run {run['runId']} ended {status}"

                page.goto(f"http://127.0.0.1:{port}/assets/fold_dataset?view=partitions")
                page.get_by_text("2 Partitions").first.wait_for(timeout=60_000)
                for fold in ("2024", "2025"):
                    assert page.get_by_text(fold, exact=True).count() >= 1, fold
                page.screenshot(path=str(shots / "05_fold_partitions.png"))

                # the live monitor (refreshed by the daily job once an allocator is promoted) and its checks
                page.goto(f"http://127.0.0.1:{port}/assets/live_monitor?view=checks")
                for check in MONITOR_CHECKS:
                    page.get_by_text(check, exact=True).first.wait_for(timeout=60_000)
                page.screenshot(path=str(shots / "06_live_monitor_checks.png"))
            finally:
                context.close()
        assert (tmp_path / "home" / "step3_out" / "allocator" / "dataset" / "fold_plan.parquet").is_file()
    finally:
        stop(proc)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copy2(shot, ARTIFACTS / shot.name)
        shutil.copy2(log, ARTIFACTS / "dagster_dev.log")
