"""Runs and backfills through the instance's queue, launched by the daemon (``--submit``).

The in-process path (``defs/execution.py``) runs each stage in the command's own processes. The
submitted path uses Dagster's own machinery end to end:

* a fold backfill is a job backfill of ``fold_job`` stored in the instance (``PartitionBackfill``,
  status ``REQUESTED``); the daemon's backfill loop turns it into one run per fold;
* an unpartitioned stage (``dataset_job``, ``report_job``) is one run created from the code
  location and submitted to the instance's run coordinator;
* the instance's ``QueuedRunCoordinator`` queues every run (its concurrency limits apply) and the
  daemon's queued-run loop launches each through the instance's run launcher: the default
  launcher starts a process per run on the daemon's machine, a Docker or Kubernetes launcher a
  container or a pod, by configuration of the instance only.

The command's settings travel in each run's config (the ``settings`` resource), so a run launched
by the daemon, wherever it runs, reads exactly what the in-process path reads and writes the same
artifacts. A daemon (``allocator daemon``, ``dagster-daemon run`` or ``dagster dev``) must be
running on the same instance and workspace for the queue to move.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._cli.job import _create_run
from dagster._cli.workspace.cli_target import WorkspaceOpts, get_workspace_from_cli_opts
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus, PartitionBackfill
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.remote_representation.external import RemoteRepository
from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG
from dagster._core.workspace.context import WorkspaceRequestContext
from dagster._daemon.controller import all_daemons_live
from dagster._utils.merger import merge_dicts
from dagster.version import __version__ as dagster_version

from allocator_pipeline.defs.execution import run_config
from allocator_pipeline.settings import RunOptions

WORKSPACE_FILE = Path(__file__).resolve().parents[2] / "workspace.yaml"
"""The repository's workspace file (absent in an installed copy: then the module is loaded)."""
MODULE = "allocator_pipeline.definitions"
SUBMITTED_TAG = "allocator/submitted"
"""Run and backfill tag: the command that submitted it (``backfill``, ``run``)."""
TERMINAL_RUN = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)

__all__ = [
    "SUBMITTED_TAG",
    "daemon_arguments",
    "daemon_live",
    "follow_backfill",
    "follow_run",
    "settings_run_config",
    "submit_backfill",
    "submit_run",
]


def workspace_arguments() -> list[str]:
    """The Dagster CLI's workspace arguments for this code location (the daemon's and ours agree)."""
    return ["-w", str(WORKSPACE_FILE)] if WORKSPACE_FILE.is_file() else ["-m", MODULE]


def daemon_arguments() -> list[str]:
    """``dagster-daemon run`` on this code location (DAGSTER_HOME selects the instance)."""
    return [str(Path(sys.executable).with_name("dagster-daemon")), "run", *workspace_arguments()]


def _workspace_opts() -> WorkspaceOpts:
    if WORKSPACE_FILE.is_file():
        return WorkspaceOpts(workspace=[str(WORKSPACE_FILE)])
    return WorkspaceOpts(module_name=[MODULE])


@contextmanager
def _repository(
    instance: dg.DagsterInstance,
) -> Iterator[tuple[WorkspaceRequestContext, CodeLocation, RemoteRepository]]:
    """The workspace, its one code location and that location's one repository."""
    with get_workspace_from_cli_opts(
        instance, version=dagster_version, workspace_opts=_workspace_opts(), log_level="WARNING"
    ) as ws:
        (location,) = ws.code_locations
        (repo,) = location.get_repositories().values()
        yield ws, location, repo


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
    return merge_dicts(run_config(verbose), {"resources": {"settings": {"config": config}}})


def daemon_live(instance: dg.DagsterInstance, tolerance_seconds: float = 60.0) -> bool:
    """Whether a daemon has sent a heartbeat for this instance (every required loop) within
    ``tolerance_seconds``."""
    return bool(instance.get_daemon_heartbeats()) and all_daemons_live(
        instance, heartbeat_tolerance_seconds=tolerance_seconds
    )


def submit_backfill(
    job_name: str,
    partitions: list[str],
    options: RunOptions,
    instance: dg.DagsterInstance,
    tags: Mapping[str, str] | None = None,
    verbose: bool = False,
) -> str:
    """Store a job backfill of ``partitions`` for the daemon; returns the backfill id."""
    from dagster._core.utils import make_new_backfill_id

    with _repository(instance) as (_ws, location, repo):
        matches = [p for p in repo.get_partition_sets() if p.job_name == job_name]
        if not matches:
            raise ValueError(f"job {job_name!r} is not partitioned in {location.name}")
        backfill_id = make_new_backfill_id()
        instance.add_backfill(
            PartitionBackfill(
                backfill_id=backfill_id,
                partition_set_origin=matches[0].get_remote_origin(),
                status=BulkActionStatus.REQUESTED,
                partition_names=list(partitions),
                from_failure=False,
                reexecution_steps=None,
                tags=dict(tags or {}),
                backfill_timestamp=time.time(),
                title=f"{job_name} {partitions[0]}..{partitions[-1]}",
                run_config=settings_run_config(options, verbose),
            )
        )
    return backfill_id


def submit_run(
    job_name: str,
    options: RunOptions,
    instance: dg.DagsterInstance,
    tags: Mapping[str, str] | None = None,
    verbose: bool = False,
) -> str:
    """Create a run of an unpartitioned job and submit it to the instance's run coordinator."""
    with _repository(instance) as (ws, location, repo):
        run = _create_run(
            instance=instance,
            code_location=location,
            remote_repo=repo,
            remote_job=repo.get_full_job(job_name),
            run_config=settings_run_config(options, verbose),
            tags=dict(tags or {}),
            op_selection=None,
            run_id=None,
        )
        instance.submit_run(run.run_id, ws)
    return run.run_id


def follow_run(instance: dg.DagsterInstance, run_id: str, poll_seconds: float = 1.0) -> dg.DagsterRun:
    """Wait for a run to finish (success, failure or cancellation) and return its record."""
    while True:
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise ValueError(f"run {run_id} is not in the instance")
        if run.status in TERMINAL_RUN:
            return run
        time.sleep(poll_seconds)


def follow_backfill(
    instance: dg.DagsterInstance,
    backfill_id: str,
    on_done: Callable[[str, bool, str], None] | None = None,
    poll_seconds: float = 1.0,
) -> dict[str, tuple[bool, str]]:
    """Follow a backfill until every fold's run has finished; ``on_done(fold, ok, run_id)`` once
    per fold as its run finishes. Returns fold -> (success, run id).

    Raises
    ------
    RuntimeError
        The backfill itself failed or was canceled before every fold had its run.
    """
    done: dict[str, tuple[bool, str]] = {}
    while True:
        backfill = instance.get_backfill(backfill_id)
        if backfill is None:
            raise ValueError(f"backfill {backfill_id} is not in the instance")
        wanted = list(backfill.partition_names or [])
        running = False
        for run in instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id})):
            fold = run.tags.get(PARTITION_NAME_TAG)
            running |= run.status not in TERMINAL_RUN
            if fold is None or fold in done or run.status not in TERMINAL_RUN:
                continue
            done[fold] = (run.status == dg.DagsterRunStatus.SUCCESS, run.run_id)
            if on_done is not None:
                on_done(fold, *done[fold])
        if len(done) >= len(wanted):
            return done
        if backfill.status in BULK_ACTION_TERMINAL_STATUSES and not running:
            error = backfill.error.message.strip().splitlines()[-1] if backfill.error else backfill.status.value
            missing = sorted(set(wanted) - set(done))
            raise RuntimeError(f"backfill {backfill_id} ended ({error}) without runs for fold(s) {', '.join(missing)}")
        time.sleep(poll_seconds)
