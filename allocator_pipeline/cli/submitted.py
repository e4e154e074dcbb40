"""``--submit``: the pipeline commands through the instance's backfill and run queue, launched by
the daemon (``defs/submission.py``), with the in-process path's progress display and errors.

``allocator daemon`` runs Dagster's daemon on the command's instance and code location.
"""

from __future__ import annotations

import os
import sys

import click

from allocator_pipeline.cli.context import Context, InputError, _failure_message, echo_step, fold_progress, main

HEARTBEAT_SECONDS = 60.0
"""A daemon whose last heartbeat is older than this is taken as not running."""


def _instance_name(ctx: Context) -> str:
    from allocator_pipeline.defs.submission import dagster_home

    return ctx.instance_dir or str(dagster_home(ctx.instance))


def require_daemon(ctx: Context, wait: bool) -> None:
    """Refuse to wait on a queue nobody launches from; without ``--wait`` only say so."""
    from allocator_pipeline.defs.submission import daemon_live

    if daemon_live(ctx.instance, HEARTBEAT_SECONDS):
        return
    message = (
        f"no dagster-daemon is running on instance {_instance_name(ctx)}: start one with "
        "`allocator daemon` (the same --instance) or `allocator ui`"
    )
    if wait:
        raise click.ClickException(message)
    echo_step(f"warning: {message}; the submitted runs stay queued until one runs")


def _echo_run_stages(ctx: Context, run_id: str) -> None:
    from dagster import DagsterEventType

    for record in ctx.instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS):
        event = record.dagster_event
        if event is not None:
            echo_step(f"  {event.step_key}: done in {event.step_success_data.duration_ms / 1000.0:.1f} s")


def _check_submitted_run(ctx: Context, run_id: str, what: str) -> None:
    """Fail as :func:`check_run` does for an in-process run: exit 2 when a step refused its input."""
    from dagster import DagsterEventType, DagsterRunStatus

    from allocator_pipeline.defs.submission import follow_run

    run = follow_run(ctx.instance, run_id)
    _echo_run_stages(ctx, run_id)
    if run.status == DagsterRunStatus.SUCCESS:
        return
    records = ctx.instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    failures = [_failure_message(r.dagster_event) + (r.dagster_event.step_key,) for r in records if r.dagster_event]
    inputs = [message for message, is_input, _ in failures if is_input]
    if inputs:
        raise InputError(inputs[0])
    detail = "; ".join(f"{step}: {message}" for message, _, step in failures) or run.status.value
    raise click.ClickException(f"{what} failed (run {run_id}, see `allocator ui`). {detail}")


def submit_stage(ctx: Context, job_name: str, what: str) -> None:
    """One unpartitioned job's run through the run queue, followed to its end."""
    from allocator_pipeline.defs.submission import SUBMITTED_TAG, submit_run

    try:
        run_id = submit_run(job_name, ctx.options, ctx.instance, tags={SUBMITTED_TAG: what}, verbose=ctx.verbose)
    except RuntimeError as exc:  # Dagster refused the run: its own message
        raise click.ClickException(f"{what}: {exc}") from None
    echo_step(f"{what}: run {run_id} of {job_name} queued on instance {_instance_name(ctx)}")
    _check_submitted_run(ctx, run_id, what)


def submit_folds(ctx: Context, folds: list[str], what: str, wait: bool) -> None:
    """A backfill of ``fold_job`` over the folds; with ``wait``, a progress bar over folds until
    every fold's run has finished, failing with the failed folds and their runs."""
    from allocator_pipeline.defs.submission import SUBMITTED_TAG, follow_backfill, submit_backfill

    try:
        backfill_id = submit_backfill(
            "fold_job", folds, ctx.options, ctx.instance, tags={SUBMITTED_TAG: what}, verbose=ctx.verbose
        )
    except RuntimeError as exc:  # Dagster refused the backfill (unknown folds, ...): its own message
        raise click.ClickException(f"{what}: {exc}") from None
    echo_step(
        f"{what}: backfill {backfill_id} of fold_job for {len(folds)} fold(s) {folds[0]}..{folds[-1]} "
        f"on instance {_instance_name(ctx)}, launched by the daemon"
    )
    if not wait:
        echo_step(f"follow it in the UI (`allocator ui`, Overview > Backfills) or with --wait; id {backfill_id}")
        return
    with fold_progress(folds, what, f" (backfill {backfill_id}); see the runs in `allocator ui`", ctx.instance) as done:
        try:
            follow_backfill(ctx.instance, backfill_id, on_done=done)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None


@main.command()
@click.pass_obj
def daemon(ctx: Context) -> None:
    """Run Dagster's daemon (dagster-daemon run) on the instance: it launches queued runs and
    backfills (--submit), schedules and sensors. Stop it with Ctrl-C."""
    from allocator_pipeline.defs.submission import daemon_arguments, dagster_home

    home = dagster_home(ctx.instance)  # opened first: it checks the instance and names its database driver
    env = dict(ctx.settings_environment(), DAGSTER_HOME=str(home))
    env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    cmd = daemon_arguments()
    echo_step(f"dagster-daemon on instance {_instance_name(ctx)}: {' '.join(cmd)}")
    sys.stderr.flush()
    os.execve(cmd[0], cmd, env)  # the daemon replaces this process: a signal to it reaches the daemon
