"""The pipeline commands: build-dataset, train, optimize, backtest, run, backfill, ui.

Every command materialises its job's own selection through Dagster, so runs, materialisations
and checks show up in ``dagster dev``. Each first validates what it reads (``build-dataset`` and
``run``: the prices, the Step 3 source and the settings; the fold commands: the settings and the
built dataset), then runs inside one publication: if anything fails, the home is put back as it
was. The terminal shows one line per stage, a progress bar over folds, then the result.
``run --submit`` and ``backfill --submit`` go through the instance's queue instead, launched by
the daemon (``cli/submitted.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import click

from allocator_pipeline.cli.context import Context, InputError, check_run, echo_stages, echo_step, fold_progress, main
from allocator_pipeline.cli.submitted import require_daemon, submit_folds, submit_stage

if TYPE_CHECKING:
    from allocator_pipeline.defs.execution import Selection


def _build_dataset(ctx: Context) -> None:
    from allocator_pipeline.defs.execution import DATASET, asset_names, fold_keys, materialize

    echo_step(f"building the dataset ({', '.join(asset_names(DATASET))}), profile {ctx.settings.profile}")
    result = materialize(DATASET, ctx.options, ctx.instance, verbose=ctx.verbose)
    echo_stages(result)
    check_run(result, "build-dataset")
    folds = fold_keys(ctx.instance)
    paths = ctx.settings.paths
    echo_step(f"dataset written to {paths.dataset} ({len(folds)} folds: {folds[0]}..{folds[-1]})")


def _run_folds(ctx: Context, selection: Selection, folds_spec: str | None, what: str, workers: int | None) -> list[str]:
    from allocator_pipeline.defs.execution import materialize_folds

    folds = _folds(ctx, folds_spec)
    n_workers = workers or ctx.settings.workers
    echo_step(f"{what}: {len(folds)} fold(s) {folds[0]}..{folds[-1]}, {n_workers} in parallel")
    with fold_progress(folds, what, "; see the runs in `make ui`", ctx.instance) as done:
        materialize_folds(
            selection, folds, ctx.options, ctx.instance, workers=n_workers, on_done=done, verbose=ctx.verbose
        )
    return folds


def _folds(ctx: Context, folds_spec: str | None) -> list[str]:
    """The folds a command runs; refused (exit 2) before any run when unknown or not built yet."""
    from allocator_pipeline.defs.execution import fold_keys, select_folds

    try:
        return select_folds(folds_spec, fold_keys(ctx.instance))
    except ValueError as exc:
        raise InputError(f"--folds {folds_spec or 'all'}: {exc}") from None


def _report(ctx: Context) -> None:
    from allocator_pipeline.defs.execution import REPORT, materialize

    echo_step("walk-forward report, gates and promotion")
    result = materialize(REPORT, ctx.options, ctx.instance, verbose=ctx.verbose)
    echo_stages(result)
    check_run(result, "report")
    _echo_report(ctx)


def _echo_report(ctx: Context) -> None:
    """The report's headline table, verdict, gates and paths (from the stored artifacts)."""
    from allocator_pipeline.core.allocation import model_directory
    from allocator_pipeline.core.common.storage import read_json
    from allocator_pipeline.report import comparison_lines, format_headline, gate_line, headline_table, lag_table

    paths = ctx.settings.paths
    metrics = read_json(paths.backtest / "metrics.json")
    promotion = read_json(paths.allocator / "promotion.json")
    click.echo("")
    click.echo(format_headline(headline_table(metrics)))
    lags = lag_table(metrics)
    if not lags.empty:
        click.echo(format_headline(lags))
    click.echo("")
    verdict = "ACCEPTED" if metrics["accepted"] else "REJECTED"
    click.echo(f"Verdict: {verdict}")
    boot = metrics.get("bootstrap")
    if boot:
        click.echo(
            f"  (intervals: {boot['confidence']:.0%} stationary block bootstrap, mean block {boot['block_length']} "
            f"sessions, {boot['resamples']} resamples; the beats-the-baseline gates pass on the lower bound)"
        )
    for gate in metrics["gates"]:
        click.echo(f"  {gate_line(gate)}")
    comparisons = comparison_lines(metrics)
    if comparisons:
        click.echo("Three-way verdict (same bootstrap; promotion follows the seed's gates above):")
        for line in comparisons:
            click.echo(f"  {line}")
    if promotion.get("promoted"):
        click.echo(f"Promoted allocator: {model_directory(promotion, paths.final)}")
    else:
        click.echo("Nothing promoted (the allocator failed its gates; a rejection is a valid result).")
    click.echo(f"Report: {paths.backtest / 'report.html'}")
    click.echo(f"Metrics: {paths.backtest / 'metrics.json'}")


@main.command("build-dataset")
@click.pass_obj
def build_dataset(ctx: Context) -> None:
    """Prices, Step 3 legs, leg panel, features, utility labels and the fold plan."""
    with ctx.publication():
        ctx.validate_inputs()
        _build_dataset(ctx)


@main.command()
@click.option("--folds", "folds_spec", help="Folds: 2008,2009 or 2008..2012 (default: all).")
@click.option("--workers", type=int, help="Folds in parallel (default: settings.workers).")
@click.pass_obj
def train(ctx: Context, folds_spec: str | None, workers: int | None) -> None:
    """Per-fold datasets, tuning, models, calibrated ensembles and test predictions."""
    from allocator_pipeline.defs.execution import TRAIN

    with ctx.publication():
        _run_folds(ctx, TRAIN, folds_spec, "train", workers)


@main.command()
@click.option("--folds", "folds_spec", help="Folds: 2008,2009 or 2008..2012 (default: all).")
@click.option("--trials", type=int, help="Optuna trials per fold (overrides the profile).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="With a shared tuning.storage (RDB URL or journal): worker processes on each fold's study, "
    "folds one after another (default: tuning.workers); otherwise folds in parallel (default: settings.workers).",
)
@click.pass_obj
def optimize(ctx: Context, folds_spec: str | None, trials: int | None, workers: int | None) -> None:
    """Nested walk-forward tuning with Optuna on each fold's inner splits."""
    from allocator_pipeline.defs.execution import TUNING

    overrides: dict = {}
    if trials is not None:
        overrides["n_trials"] = trials
    shared = ctx.settings.tuning.storage is not None
    if shared and workers is not None:
        overrides["workers"] = workers
    if overrides:
        ctx.set_overrides({"tuning": overrides})
    if shared:
        n = ctx.settings.tuning.workers
        mode = "sequential, reproducible" if n == 1 else "parallel, not reproducible"
        echo_step(f"tuning: {n} worker process(es) on each fold's study ({mode})")
    with ctx.publication():
        _run_folds(ctx, TUNING, folds_spec, "optimize", 1 if shared else workers)


@main.command()
@click.option(
    "--folds",
    "folds_spec",
    help="Folds whose test predictions to (re)compute first: 2008..2012 (default: none, the stored ones are used).",
)
@click.option("--workers", type=int, help="Folds in parallel (default: settings.workers).")
@click.pass_obj
def backtest(ctx: Context, folds_spec: str | None, workers: int | None) -> None:
    """The continuous walk-forward allocator path over all folds, the report with its gates, and
    promotion."""
    with ctx.publication():
        if folds_spec is not None:
            _run_folds(ctx, ["fold_predictions"], folds_spec, "predictions", workers)
        else:
            _folds(ctx, None)  # the dataset is built
        _report(ctx)


@main.command()
@click.option("--workers", type=int, help="Folds in parallel (default: settings.workers).")
@click.option(
    "--submit",
    is_flag=True,
    help="Through the instance's run queue and a fold backfill, launched by the daemon (`allocator daemon`), "
    "each stage followed to its end.",
)
@click.pass_obj
def run(ctx: Context, workers: int | None, submit: bool) -> None:
    """The whole pipeline on the configured data, ending with the report's path and headline table."""
    from allocator_pipeline.defs.execution import FOLD_STAGES

    started = time.monotonic()
    if submit:
        ctx.validate_inputs()
        require_daemon(ctx, wait=True)
        submit_stage(ctx, "dataset_job", "build-dataset")
        submit_folds(ctx, _folds(ctx, None), "folds", wait=True)
        submit_stage(ctx, "report_job", "report")
        _echo_report(ctx)
    else:
        with ctx.publication():
            ctx.validate_inputs()
            _build_dataset(ctx)
            _run_folds(ctx, FOLD_STAGES, None, "folds", workers)
            _report(ctx)
    click.echo(f"Total time: {time.monotonic() - started:.0f} s")


@main.command()
@click.option("--folds", "folds_spec", required=True, help="Folds: 2008,2009 or 2008..2012.")
@click.option("--workers", type=int, help="Folds in parallel (default: settings.workers).")
@click.option(
    "--submit",
    is_flag=True,
    help="Store a backfill of fold_job in the instance instead: the daemon (`allocator daemon`) launches one "
    "run per fold through the instance's run queue and run launcher.",
)
@click.option("--wait", is_flag=True, help="With --submit: follow the backfill to its end (progress bar).")
@click.pass_obj
def backfill(ctx: Context, folds_spec: str, workers: int | None, submit: bool, wait: bool) -> None:
    """Materialise every fold stage for the folds (progress bar), or submit them to the instance."""
    from allocator_pipeline.defs.execution import FOLD_STAGES

    if wait and not submit:
        raise InputError("--wait follows a submitted backfill: add --submit")
    if not submit:
        with ctx.publication():
            _run_folds(ctx, FOLD_STAGES, folds_spec, "backfill", workers)
        return
    folds = _folds(ctx, folds_spec)
    require_daemon(ctx, wait)
    submit_folds(ctx, folds, "backfill", wait)


@main.command()
@click.pass_obj
def ui(ctx: Context) -> None:
    """Start the Dagster UI (dagster dev) on 127.0.0.1."""
    from allocator_pipeline.defs.execution import default_dagster_home
    from allocator_pipeline.defs.submission import workspace_arguments

    env = dict(
        ctx.settings_environment(),
        DAGSTER_HOME=str(default_dagster_home(ctx.settings, ctx.instance_dir).resolve()),
        DAGSTER_DISABLE_TELEMETRY="1",
    )
    cmd = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", os.environ.get("PORT", "3000")]
    raise SystemExit(subprocess.call([*cmd, *workspace_arguments()], env=env))
