"""The ``allocator`` command: a thin layer over the Dagster definitions.

Global options (``--home``, ``--prices``, ``--step3``, ``--profile``, ``--config``) configure the
settings resource exactly as the Dagster UI's resource config would. Every command materialises
assets through Dagster, so runs, materialisations and checks show up in ``dagster dev``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import dagster as dg

    from allocator_pipeline.defs.execution import Selection

from allocator_pipeline.settings import PROFILES, RunOptions, Settings, SettingsError, global_options

GLOBAL_OPTIONS = global_options()
"""The global options (declared once, in ``allocator_pipeline.settings.RunOptions``)."""
_CLICK_TYPES = {
    "home": click.Path(file_okay=False),
    "dir": click.Path(exists=True, file_okay=False),
    "file": click.Path(exists=True, dir_okay=False),
    "profile": click.Choice(sorted(PROFILES)),
}


def _global_option(name: str, option: dict[str, Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        option["flag"],
        name,
        type=_CLICK_TYPES[option["kind"]],
        help=f"{option['description'].rstrip('.')} (env {option['env']}).",
    )


class Context:
    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.settings = self._load()
        self._instance: dg.DagsterInstance | None = None

    def _load(self) -> Settings:
        try:
            return self.options.load()
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None

    def settings_environment(self) -> dict[str, str]:
        """The environment that gives a Dagster process (UI, daemon) this command's settings: every
        global option as its environment variable, resolved against this command's settings."""
        resolved = {
            "home": self.settings.home,
            "prices": self.settings.data.prices_dir,
            "step3": self.settings.data.step3_dir,
            "profile": self.settings.profile,
            "config_file": self.options.config_file,
        }
        env = dict(os.environ)
        for name, option in GLOBAL_OPTIONS.items():
            value = resolved[name]
            if value is not None:
                env[option["env"]] = str(value) if option["kind"] == "profile" else str(Path(value).resolve())
        return env

    def set_overrides(self, overrides: dict) -> None:
        """Extra settings for this command only (validated like every other source)."""
        self.options = self.options.model_copy(update={"overrides_json": json.dumps(overrides, sort_keys=True)})
        self.settings = self._load()

    @property
    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            from allocator_pipeline.defs.execution import get_instance

            self._instance = get_instance(self.settings)
        return self._instance


def _echo_step(message: str) -> None:
    click.echo(f"[allocator {time.strftime('%H:%M:%S')}] {message}", err=True)


def _check(result, what: str) -> None:
    """Fail the command, naming the failed steps and checks, when a Dagster run did not succeed."""
    failed_checks = [
        f"{e.asset_key.to_user_string()}:{e.check_name}" for e in result.get_asset_check_evaluations() if not e.passed
    ]
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        detail = "; ".join(
            f"{e.step_key}: {e.step_failure_data.error.message.strip().splitlines()[-1]}"
            for e in failures
            if e.step_failure_data and e.step_failure_data.error
        )
        raise click.ClickException(f"{what} failed (run {result.run_id}). {detail}")
    if failed_checks:
        raise click.ClickException(f"{what}: blocking checks failed: {', '.join(failed_checks)}")


def _build_dataset(ctx: Context) -> None:
    from allocator_pipeline.defs.execution import DATASET, asset_names, fold_keys, materialize

    _echo_step(f"building the dataset ({', '.join(asset_names(DATASET))}), profile {ctx.settings.profile}")
    result = materialize(DATASET, ctx.options, ctx.instance)
    _check(result, "build-dataset")
    folds = fold_keys(ctx.instance)
    paths = ctx.settings.paths
    _echo_step(f"dataset written to {paths.dataset} ({len(folds)} folds: {folds[0]}..{folds[-1]})")


def _run_folds(ctx: Context, selection: Selection, folds_spec: str | None, what: str, workers: int | None) -> list[str]:
    from tqdm import tqdm

    from allocator_pipeline.defs.execution import fold_keys, materialize_folds, select_folds

    try:
        folds = select_folds(folds_spec, fold_keys(ctx.instance))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    n_workers = workers or ctx.settings.workers
    _echo_step(f"{what}: {len(folds)} fold(s) {folds[0]}..{folds[-1]}, {n_workers} in parallel")
    failed: list[str] = []
    with tqdm(total=len(folds), desc=what, unit="fold", file=sys.stderr, dynamic_ncols=True) as bar:

        def done(fold: str, ok: bool, run_id: str) -> None:
            bar.update(1)
            bar.set_postfix_str(f"{fold} {'ok' if ok else 'FAILED'}")
            if not ok:
                failed.append(f"{fold} (run {run_id})")

        materialize_folds(selection, folds, ctx.options, ctx.instance, workers=n_workers, on_done=done)
    if failed:
        raise click.ClickException(f"{what} failed for fold(s): {', '.join(sorted(failed))}; see the runs in `make ui`")
    return folds


def _report(ctx: Context) -> None:
    from allocator_pipeline.core.common.storage import read_json
    from allocator_pipeline.defs.execution import REPORT, materialize
    from allocator_pipeline.report import format_headline, headline_table

    _echo_step("walk-forward report, gates and promotion")
    result = materialize(REPORT, ctx.options, ctx.instance)
    _check(result, "report")
    paths = ctx.settings.paths
    metrics = read_json(paths.backtest / "metrics.json")
    promotion = read_json(paths.allocator / "promotion.json")
    click.echo("")
    click.echo(format_headline(headline_table(metrics)))
    click.echo("")
    verdict = "ACCEPTED" if metrics["accepted"] else "REJECTED"
    click.echo(f"Verdict: {verdict}")
    for gate in metrics["gates"]:
        mark = "pass" if gate["passed"] else "FAIL"
        value = "n/a" if gate["value"] is None else f"{gate['value']:.4g}"
        click.echo(f"  [{mark}] {gate['name']}: value {value} vs threshold {gate['threshold']:.4g}")
    if promotion.get("promoted"):
        click.echo(f"Promoted allocator: {promotion['directory']}")
    else:
        click.echo("Nothing promoted (the allocator failed its gates; a rejection is a valid result).")
    click.echo(f"Report: {paths.backtest / 'report.html'}")
    click.echo(f"Metrics: {paths.backtest / 'metrics.json'}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context, **options: str | None) -> None:
    """Step 3b allocator: decide each session's capital split between the QQQ and SPY legs."""
    ctx.obj = Context(RunOptions(**options))


for _name, _option in GLOBAL_OPTIONS.items():
    _global_option(_name, _option)(main)  # click.option adds the parameter to the group in place


@main.command("build-dataset")
@click.pass_obj
def build_dataset(ctx: Context) -> None:
    """Prices, Step 3 legs, leg panel, features, utility labels and the fold plan."""
    _build_dataset(ctx)


@main.command()
@click.option("--folds", "folds_spec", help="Folds: 2008,2009 or 2008..2012 (default: all).")
@click.option("--workers", type=int, help="Folds in parallel (default: settings.workers).")
@click.pass_obj
def train(ctx: Context, folds_spec: str | None, workers: int | None) -> None:
    """Per-fold datasets, tuning, models, calibrated ensembles and test predictions."""
    from allocator_pipeline.defs.execution import TRAIN

    _run_folds(ctx, TRAIN, folds_spec, "train", workers)


@main.command()
@click.option("--folds", "folds_spec", help="Folds: 2008,2009 or 2008..2012 (default: all).")
@click.option("--trials", type=int, help="Optuna trials per fold (overrides the profile).")
@click.option("--workers", type=int, help="Folds in parallel (default: settings.workers).")
@click.pass_obj
def optimize(ctx: Context, folds_spec: str | None, trials: int | None, workers: int | None) -> None:
    """Nested walk-forward tuning with Optuna on each fold's inner splits."""
    from allocator_pipeline.defs.execution import TUNING

    if trials is not None:
        ctx.set_overrides({"tuning": {"n_trials": trials}})
    _run_folds(ctx, TUNING, folds_spec, "optimize", workers)


@main.command()
@click.option("--folds", "folds_spec", help="Folds to (re)backtest first: 2008..2012 (default: all).")
@click.option("--workers", type=int, help="Folds in parallel (default: settings.workers).")
@click.pass_obj
def backtest(ctx: Context, folds_spec: str | None, workers: int | None) -> None:
    """Per-fold backtests, the walk-forward report with its gates, and promotion."""
    _run_folds(ctx, ["fold_backtest"], folds_spec, "backtest", workers)
    _report(ctx)


@main.command()
@click.option("--workers", type=int, help="Folds in parallel (default: settings.workers).")
@click.pass_obj
def run(ctx: Context, workers: int | None) -> None:
    """The whole pipeline on the configured data, ending with the report's path and headline table."""
    from allocator_pipeline.defs.execution import FOLD_STAGES

    started = time.monotonic()
    _build_dataset(ctx)
    _run_folds(ctx, FOLD_STAGES, None, "folds", workers)
    _report(ctx)
    click.echo(f"Total time: {time.monotonic() - started:.0f} s")


@main.command()
@click.option("--date", "session", help="Session date YYYY-MM-DD (default: the last session in the data).")
@click.option(
    "--model",
    "model_spec",
    default="promoted",
    show_default=True,
    help="'promoted' (writes the decision and the log) or 'fold:<KEY>' (that fold's model; "
    "reproduces the fold backtest's w_final; writes nothing).",
)
@click.pass_obj
def rebalance(ctx: Context, session: str | None, model_spec: str) -> None:
    """The allocation for one session, printed as JSON."""
    import pandas as pd

    from allocator_pipeline.core.allocation import NoDataForSession
    from allocator_pipeline.core.common.errors import InputDataError
    from allocator_pipeline.core.common.sessions import session_dates
    from allocator_pipeline.core.common.storage import read_json, to_json_text
    from allocator_pipeline.core.inputs import live_inputs
    from allocator_pipeline.defs.allocation import NoPromotedAllocator, fold_decision, load_promoted
    from allocator_pipeline.defs.execution import DAILY, materialize
    from allocator_pipeline.defs.resources import AllocatorSettings

    s = ctx.settings
    _, legs = live_inputs(s)
    try:
        session = str(pd.Timestamp(session).date()) if session else str(session_dates(legs.index[-1:])[0].date())
    except ValueError:
        raise click.UsageError(f"--date must be a date YYYY-MM-DD, got {session!r}") from None
    try:
        if model_spec.startswith("fold:"):
            decision = fold_decision(
                AllocatorSettings(**ctx.options.model_dump()), model_spec.split(":", 1)[1], session, legs
            )
        elif model_spec == "promoted":
            load_promoted(s)  # a clear error before any run is started
            _check(materialize(DAILY, ctx.options, ctx.instance, partition_key=session), f"rebalance {session}")
            decision = read_json(s.paths.decisions / f"{session}.json")
        else:
            raise click.UsageError(f"--model must be 'promoted' or 'fold:<KEY>', got {model_spec!r}")
    except (NoDataForSession, NoPromotedAllocator, FileNotFoundError, InputDataError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(to_json_text({k: v for k, v in decision.items() if k != "state"}), nl=False)


@main.command()
@click.option("--folds", "folds_spec", required=True, help="Folds: 2008,2009 or 2008..2012.")
@click.option("--workers", type=int, help="Folds in parallel (default: settings.workers).")
@click.option(
    "--submit",
    is_flag=True,
    help="Queue a Dagster backfill of fold_job on the instance instead "
    "(launched by the daemon of `dagster dev` / `dagster-daemon run`).",
)
@click.pass_obj
def backfill(ctx: Context, folds_spec: str, workers: int | None, submit: bool) -> None:
    """Materialise every fold stage for the folds (progress bar), or submit them to the instance."""
    from allocator_pipeline.defs.execution import FOLD_STAGES, fold_keys, select_folds

    if not submit:
        _run_folds(ctx, FOLD_STAGES, folds_spec, "backfill", workers)
        return
    try:
        folds = select_folds(folds_spec, fold_keys(ctx.instance))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    cmd = [
        str(Path(sys.executable).with_name("dagster")),
        "job",
        "backfill",
        "-j",
        "fold_job",
        "--partitions",
        ",".join(folds),
        "--noprompt",
    ]
    cmd += ["-w", str(workspace)] if workspace.is_file() else ["-m", "allocator_pipeline.definitions"]
    env = ctx.settings_environment()
    _echo_step(f"submitting a backfill of fold_job for {len(folds)} fold(s): {' '.join(cmd)}")
    raise SystemExit(subprocess.call(cmd, env=env))


@main.command()
@click.pass_obj
def ui(ctx: Context) -> None:
    """Start the Dagster UI (dagster dev) on 127.0.0.1."""
    from allocator_pipeline.defs.execution import default_dagster_home

    env = dict(
        ctx.settings_environment(),
        DAGSTER_HOME=str(default_dagster_home(ctx.settings).resolve()),
        DAGSTER_DISABLE_TELEMETRY="1",
    )
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    cmd = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", os.environ.get("PORT", "3000")]
    if workspace.is_file():
        cmd += ["-w", str(workspace)]
    else:
        cmd += ["-m", "allocator_pipeline.definitions"]
    raise SystemExit(subprocess.call(cmd, env=env))


GLOBAL_FLAGS = {option["flag"] for option in GLOBAL_OPTIONS.values()}


def _alias(command: click.Command) -> Callable[[], None]:
    """A console script that runs ``allocator <command>``; global options may appear anywhere."""

    def entry() -> None:
        argv, leading, rest = sys.argv[1:], [], []
        i = 0
        while i < len(argv):
            token = argv[i]
            name = token.split("=", 1)[0]
            if name in GLOBAL_FLAGS:
                leading.append(token)
                if "=" not in token and i + 1 < len(argv):
                    leading.append(argv[i + 1])
                    i += 1
            else:
                rest.append(token)
            i += 1
        main.main(args=[*leading, str(command.name), *rest], prog_name=Path(sys.argv[0]).name)

    return entry


build_dataset_alias = _alias(build_dataset)
train_alias = _alias(train)
optimize_alias = _alias(optimize)
backtest_alias = _alias(backtest)


if __name__ == "__main__":
    main()
