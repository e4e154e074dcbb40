"""The Dagster UI: start the webserver on a free loopback port, read the asset graph over GraphQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED_ASSETS = {
    "market_prices",
    "step3_legs",
    "leg_panel",
    "allocator_features",
    "utility_labels",
    "utility_table",
    "fold_plan",
    "fold_dataset",
    "fold_tuning",
    "fold_models",
    "fold_ensemble",
    "fold_predictions",
    "allocator_path",
    "walk_forward_report",
    "promoted_allocator",
    "daily_allocation",
    "live_monitor",
}
QUERY = """
{
  assetNodes { assetKey { path } }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name jobs { name } schedules { name } sensors { name } }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_webserver_serves_the_asset_graph(tmp_path):
    port = free_port()
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path), ALLOCATOR_HOME=str(tmp_path), DAGSTER_DISABLE_TELEMETRY="1")
    log = open(tmp_path / "webserver.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(REPO / "workspace.yaml"),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, "webserver did not start within 120 s"
                time.sleep(1)
        data = graphql(port, QUERY)["data"]
        assets = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
        assert assets >= EXPECTED_ASSETS, EXPECTED_ASSETS - assets
        repo = data["repositoriesOrError"]["nodes"][0]
        assert {"dataset_job", "fold_job", "report_job", "daily_rebalance_job"} <= {j["name"] for j in repo["jobs"]}
        assert [s["name"] for s in repo["schedules"]] == ["daily_rebalance_schedule"]
        assert sorted(s["name"] for s in repo["sensors"]) == ["new_data_sensor", "retrain_sensor"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
