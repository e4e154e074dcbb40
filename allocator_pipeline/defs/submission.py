"""Runs and backfills through the instance's queue, launched by the daemon (``--submit``).

The in-process path (``defs/execution.py``) runs each stage in the command's own processes. The
submitted path uses Dagster's own machinery end to end, through its public interfaces only (the
``dagster`` package's exported names, its command-line tools and its GraphQL API), none of the
``dagster._*`` modules a release may change:

* a fold backfill is a job backfill of ``fold_job`` stored in the instance with status
  ``REQUESTED``, by the GraphQL mutation ``launchPartitionBackfill`` (the UI's own "Launch
  backfill"), executed by the ``dagster-graphql`` command on this code location; the daemon's
  backfill loop turns it into one run per fold;
* an unpartitioned stage (``dataset_job``, ``report_job``) is one run created from the code
  location and submitted to the instance's run coordinator by ``dagster job launch``;
* the instance's ``QueuedRunCoordinator`` queues every run (its concurrency limits apply) and the
  daemon's queued-run loop launches each through the instance's run launcher: the default
  launcher starts a process per run on the daemon's machine, a Docker or Kubernetes launcher a
  container or a pod, by configuration of the instance only.

The runs are followed in the instance itself (``DagsterInstance.get_run_by_id`` and
``get_run_records``, ``RunsFilter``); a backfill's own status (it may fail before making a run) by
the GraphQL query ``partitionBackfillOrError``. Each command runs with ``DAGSTER_HOME`` at the
instance's folder, so it opens the instance the caller holds.

The command's settings travel in each run's config (the ``settings`` resource), so a run launched
by the daemon, wherever it runs, reads exactly what the in-process path reads and writes the same
artifacts. A daemon (``allocator daemon``, ``dagster-daemon run`` or ``dagster dev``) must be
running on the same instance and workspace for the queue to move.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from allocator_pipeline.defs.execution import run_config
from allocator_pipeline.settings import RunOptions

WORKSPACE_FILE = Path(__file__).resolve().parents[2] / "workspace.yaml"
"""The repository's workspace file (absent in an installed copy: then the module is loaded)."""
MODULE = "allocator_pipeline.definitions"
SUBMITTED_TAG = "allocator/submitted"
"""Run and backfill tag: the command that submitted it (``backfill``, ``run``)."""
BACKFILL_TAG = "dagster/backfill"
"""Dagster's system tag on each run a backfill creates: the backfill's id."""
PARTITION_TAG = "dagster/partition"
"""Dagster's system tag on a partitioned run: its partition (the fold)."""
MOVES_ARTIFACTS = re.compile(r"^local_artifact_storage\s*:", re.MULTILINE)
"""An instance file's setting that puts the instance's artifacts outside its folder."""
TERMINAL_RUN = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
TERMINAL_BACKFILL = frozenset({"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"})
"""The GraphQL ``BulkActionStatus`` values after which a backfill makes no more runs."""
BACKFILL_QUERY = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status partitionNames error { message } }
    ... on Error { message }
  }
}"""
REPOSITORIES_QUERY = """
query Repositories {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } partitionSets { name pipelineName } } }
    ... on Error { message }
  }
}"""
LAUNCH_BACKFILL_MUTATION = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

__all__ = [
    "SUBMITTED_TAG",
    "daemon_arguments",
    "daemon_live",
    "dagster_home",
    "follow_backfill",
    "follow_run",
    "settings_run_config",
    "submit_backfill",
    "submit_run",
]


def workspace_arguments() -> list[str]:
    """The Dagster CLI's workspace arguments for this code location (the daemon's and ours agree)."""
    return ["-w", str(WORKSPACE_FILE)] if WORKSPACE_FILE.is_file() else ["-m", MODULE]


def _tool(name: str) -> str:
    """A Dagster command installed beside this interpreter (``dagster``, ``dagster-daemon``, ...)."""
    return str(Path(sys.executable).with_name(name))


def daemon_arguments() -> list[str]:
    """``dagster-daemon run`` on this code location (DAGSTER_HOME selects the instance)."""
    return [_tool("dagster-daemon"), "run", *workspace_arguments()]


class DagsterAPIError(RuntimeError):
    """A Dagster command failed, or its GraphQL answer is an error: ``kind`` names which (the
    command, or the API's error type such as ``PythonError``, ``BackfillNotFoundError``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def dagster_home(instance: dg.DagsterInstance) -> Path:
    """The folder of ``instance``'s ``dagster.yaml``: the DAGSTER_HOME a Dagster command needs to
    open the same instance.

    Dagster has no public accessor for it (checked in 1.13: ``DagsterInstance`` keeps no config
    folder; ``root_directory``, not part of the documented API either, is the local artifact
    storage's folder, which ``dagster.yaml`` may move: the repository's own puts it in
    ``.dagster_home/artifacts``, relative to the working folder). So: the nearest folder at or
    above that one whose ``dagster.yaml`` leaves the artifacts there (the folder itself) or moves
    them (``local_artifact_storage``), else DAGSTER_HOME, else that folder.
    """
    root = Path(instance.root_directory).resolve()
    for folder in (root, *root.parents):
        config = folder / "dagster.yaml"
        if config.is_file() and (folder == root or MOVES_ARTIFACTS.search(config.read_text())):
            return folder
    return Path(os.environ.get("DAGSTER_HOME") or root).resolve()


def _run_tool(instance: dg.DagsterInstance, args: list[str], **environ: str) -> subprocess.CompletedProcess[str]:
    """Run a Dagster command on ``instance`` (DAGSTER_HOME at its folder, telemetry off).

    Raises
    ------
    DagsterAPIError
        The command failed: its name and the last line it wrote (Dagster's error message).
    """
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home(instance)), "DAGSTER_DISABLE_TELEMETRY": "1", **environ}
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        lines = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()
        raise DagsterAPIError(" ".join([Path(args[0]).name, *args[1:2]]), lines[-1])
    return done


def _graphql(
    instance: dg.DagsterInstance,
    document: str,
    field: str,
    variables: Mapping[str, Any] | None = None,
    workspace: bool = True,
) -> dict[str, Any]:
    """``field`` of the answer to a GraphQL ``document``, executed by ``dagster-graphql`` on the
    instance and, with ``workspace``, this code location (loaded in a code server: seconds).

    Raises
    ------
    DagsterAPIError
        The command failed, or the answer is one of the API's error types (its type and message).
    """
    target = workspace_arguments() if workspace else ["--empty-workspace"]
    with tempfile.TemporaryDirectory(prefix="allocator-graphql-") as folder:
        answer = Path(folder) / "answer.json"  # not stdout: the code server may print there
        args = [_tool("dagster-graphql"), *target, "-t", document, "-v", json.dumps(variables or {}), "-o", str(answer)]
        _run_tool(instance, args)
        response = json.loads(answer.read_text())
    if response.get("errors"):
        raise DagsterAPIError(field, "; ".join(e.get("message", str(e)) for e in response["errors"]))
    result = response["data"][field]
    if "message" in result or "errors" in result:
        details = result.get("message") or "; ".join(e["message"] for e in result["errors"])
        raise DagsterAPIError(result["__typename"], f"{field}: {details}")
    return result


def settings_run_config(options: RunOptions, verbose: bool = False, environ: Mapping[str, str] | None = None) -> dict:
    """A run's config: the ``settings`` resource configured with the command's options resolved
    against its environment (home, prices, Step 3 directory, profile, settings file: absolute), so
    the run reads what the command reads whatever the launched process's environment or folder;
    and the console logger as in the in-process path."""
    settings = options.load(environ)
    env = os.environ if environ is None else environ
    config_file = options.config_file or env.get("ALLOCATOR_CONFIG") or None
    resolved = {
        "home": settings.home,
        "prices": settings.data.prices_dir,
        "step3": settings.data.step3_dir,
        "config_file": config_file,
    }
    config: dict[str, Any] = {k: str(Path(v).resolve()) for k, v in resolved.items() if v is not None}
    config["profile"] = settings.profile
    if options.overrides_json:
        config["overrides_json"] = options.overrides_json
    return {**run_config(verbose), "resources": {"settings": {"config": config}}}


def daemon_live(instance: dg.DagsterInstance, tolerance_seconds: float = 60.0) -> bool:
    """Whether a daemon has sent a heartbeat for this instance (every required loop) within
    ``tolerance_seconds``: ``dagster-daemon liveness-check`` (a few seconds)."""
    tolerance = str(max(1, round(tolerance_seconds)))
    try:
        _run_tool(instance, [_tool("dagster-daemon"), "liveness-check"], DAGSTER_DAEMON_HEARTBEAT_TOLERANCE=tolerance)
    except DagsterAPIError:  # exit 1: "Daemon(s) not running" (or the instance could not be read)
        return False
    return True


def _partition_set(instance: dg.DagsterInstance, job_name: str) -> dict[str, Any]:
    """The GraphQL selector of ``job_name``'s partition set in this code location."""
    nodes = _graphql(instance, REPOSITORIES_QUERY, "repositoriesOrError")["nodes"]
    for repo in nodes:
        for partition_set in repo["partitionSets"]:
            if partition_set["pipelineName"] == job_name:
                where = {"repositoryName": repo["name"], "repositoryLocationName": repo["location"]["name"]}
                return {"partitionSetName": partition_set["name"], "repositorySelector": where}
    locations = ", ".join(sorted({repo["location"]["name"] for repo in nodes})) or "the workspace"
    raise ValueError(f"job {job_name!r} is not partitioned in {locations}")


def submit_backfill(
    job_name: str,
    partitions: list[str],
    options: RunOptions,
    instance: dg.DagsterInstance,
    tags: Mapping[str, str] | None = None,
    verbose: bool = False,
) -> str:
    """Store a job backfill of ``partitions`` for the daemon; returns the backfill id.

    Raises
    ------
    ValueError
        ``job_name`` has no partitions in this code location.
    DagsterAPIError
        Dagster refused the backfill (its error type and message).
    """
    params = {
        "selector": _partition_set(instance, job_name),
        "partitionNames": list(partitions),
        "tags": [{"key": key, "value": value} for key, value in (tags or {}).items()],
        "title": f"{job_name} {partitions[0]}..{partitions[-1]}",
        "runConfigData": settings_run_config(options, verbose),
    }
    result = _graphql(instance, LAUNCH_BACKFILL_MUTATION, "launchPartitionBackfill", {"params": params})
    return result["backfillId"]


def submit_run(
    job_name: str,
    options: RunOptions,
    instance: dg.DagsterInstance,
    tags: Mapping[str, str] | None = None,
    verbose: bool = False,
) -> str:
    """Create a run of an unpartitioned job and submit it to the instance's run coordinator
    (``dagster job launch``); returns its run id."""
    run_id = str(uuid.uuid4())
    config = json.dumps(settings_run_config(options, verbose))
    launch = [_tool("dagster"), "job", "launch", "-j", job_name, *workspace_arguments(), "--run-id", run_id]
    _run_tool(instance, [*launch, "--config-json", config, "--tags", json.dumps(dict(tags or {}))])
    return run_id


def follow_run(instance: dg.DagsterInstance, run_id: str, poll_seconds: float = 1.0) -> dg.DagsterRun:
    """Wait for a run to finish (success, failure or cancellation) and return its record."""
    while True:
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise ValueError(f"run {run_id} is not in the instance")
        if run.status in TERMINAL_RUN:
            return run
        time.sleep(poll_seconds)


def _backfill_state(instance: dg.DagsterInstance, backfill_id: str) -> tuple[list[str], str, str]:
    """A stored backfill's partitions, status and failure (its error's last line, else the status)."""
    try:
        backfill = _graphql(instance, BACKFILL_QUERY, "partitionBackfillOrError", {"id": backfill_id}, workspace=False)
    except DagsterAPIError as exc:
        if exc.kind == "BackfillNotFoundError":
            raise ValueError(f"backfill {backfill_id} is not in the instance") from None
        raise
    error = backfill["error"]["message"].strip().splitlines()[-1] if backfill["error"] else backfill["status"]
    return list(backfill["partitionNames"] or []), backfill["status"], error


def _finished_folds(
    instance: dg.DagsterInstance,
    backfill_id: str,
    done: dict[str, tuple[bool, str]],
    on_done: Callable[[str, bool, str], None] | None,
) -> bool:
    """Add the backfill's newly finished fold runs to ``done`` (``on_done`` for each); whether any
    of its runs is still queued or in progress."""
    running = False
    for record in instance.get_run_records(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id})):
        run = record.dagster_run
        fold = run.tags.get(PARTITION_TAG)
        running |= run.status not in TERMINAL_RUN
        if fold is None or fold in done or run.status not in TERMINAL_RUN:
            continue
        done[fold] = (run.status == dg.DagsterRunStatus.SUCCESS, run.run_id)
        if on_done is not None:
            on_done(fold, *done[fold])
    return running


def follow_backfill(
    instance: dg.DagsterInstance,
    backfill_id: str,
    on_done: Callable[[str, bool, str], None] | None = None,
    poll_seconds: float = 1.0,
    status_seconds: float = 15.0,
) -> dict[str, tuple[bool, str]]:
    """Follow a backfill until every fold's run has finished; ``on_done(fold, ok, run_id)`` once
    per fold as its run finishes. Returns fold -> (success, run id).

    The runs are read from the instance every ``poll_seconds``; the backfill's own status (a
    ``dagster-graphql`` command) at the start and, while none of its runs is in progress, at most
    every ``status_seconds``.

    Raises
    ------
    ValueError
        No such backfill in the instance.
    RuntimeError
        The backfill itself failed or was canceled before every fold had its run.
    """
    done: dict[str, tuple[bool, str]] = {}
    wanted, status, error = _backfill_state(instance, backfill_id)
    checked = time.monotonic()
    while True:
        running = _finished_folds(instance, backfill_id, done, on_done)  # read after the status
        if len(done) >= len(wanted):
            return done
        if status in TERMINAL_BACKFILL and not running:  # it makes no more runs: these are all
            missing = sorted(set(wanted) - set(done))
            raise RuntimeError(f"backfill {backfill_id} ended ({error}) without runs for fold(s) {', '.join(missing)}")
        time.sleep(poll_seconds)
        if not running and time.monotonic() - checked >= status_seconds:
            wanted, status, error = _backfill_state(instance, backfill_id)
            checked = time.monotonic()
