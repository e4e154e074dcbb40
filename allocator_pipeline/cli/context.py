"""The ``allocator`` command's group, its global options and the per-command context.

Global options (``--home``, ``--prices``, ``--step3``, ``--profile``, ``--config``) are generated
from :class:`allocator_pipeline.settings.RunOptions`, their one declaration, and configure the
settings resource exactly as the Dagster UI's resource config would. ``--verbose`` is the
command line's own: it shows Dagster's event log on the terminal (it always goes to the instance).

Exit codes: 2 for bad input (settings, price files, the Step 3 directory, an option such as
``--date``), refused before any run starts, with the specific error on the last line; 1 for a
failure during a run. Either way nothing the command wrote stays published (:meth:`Context.publication`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import dagster as dg

    from allocator_pipeline.defs.publication import Publication
    from allocator_pipeline.defs.resources import AllocatorSettings

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


class InputError(click.ClickException):
    """Bad input (a price file, the Step 3 directory, a settings value, an option): exit code 2,
    the message (file, column, row, value, what was expected) on the last line."""

    exit_code = 2


class Context:
    def __init__(self, options: RunOptions, verbose: bool = False, instance_dir: str | None = None) -> None:
        self.options = options
        self.verbose = verbose
        self.instance_dir = instance_dir
        self.settings = self._load()
        self._instance: dg.DagsterInstance | None = None
        self._publication: Publication | None = None

    def _load(self) -> Settings:
        try:
            return self.options.load()
        except SettingsError as exc:
            raise InputError(str(exc)) from None

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
        if self.instance_dir is not None:
            env["DAGSTER_HOME"] = str(Path(self.instance_dir).resolve())
        for name, option in GLOBAL_OPTIONS.items():
            value = resolved[name]
            if value is not None:
                env[option["env"]] = str(value) if option["kind"] == "profile" else str(Path(value).resolve())
        return env

    def set_overrides(self, overrides: dict) -> None:
        """Extra settings for this command only (validated like every other source)."""
        self.options = self.options.model_copy(update={"overrides_json": json.dumps(overrides, sort_keys=True)})
        self.settings = self._load()

    def resource(self) -> AllocatorSettings:
        """The Dagster settings resource configured with this command's options."""
        from allocator_pipeline.defs.resources import AllocatorSettings

        return AllocatorSettings(**self.options.model_dump())

    @property
    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            self._instance = self._open_instance()
        if self._publication is not None:
            self._publication.watch(self._instance)
        return self._instance

    def _open_instance(self) -> dg.DagsterInstance:
        """The Dagster instance (``--instance``, else DAGSTER_HOME, ...); a missing or bad instance
        configuration (e.g. ALLOCATOR_POSTGRES_URL unset) is bad input, exit 2."""
        from dagster import DagsterInvalidConfigError

        from allocator_pipeline.defs.runs import get_instance

        where = self.instance_dir or os.environ.get("DAGSTER_HOME") or "the default instance"
        try:
            return get_instance(self.settings, self.instance_dir)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        except DagsterInvalidConfigError as exc:
            unset = re.search(r'environment variable "?(\w+)"? which is not set', str(exc))
            problem = f"environment variable {unset.group(1)} is not set" if unset else str(exc).splitlines()[0]
            raise InputError(f"Dagster instance {where}/dagster.yaml: {problem}") from None
        except Exception as exc:  # e.g. the database cannot be reached (after Dagster's retries)
            cause = exc.__cause__ or exc
            first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            raise click.ClickException(f"Dagster instance {where}: cannot open it: {first}") from None

    def validate_inputs(self) -> None:
        """Validate the prices, the Step 3 source and the settings before any run (exit 2 if bad)."""
        from allocator_pipeline.core.common.errors import InputDataError
        from allocator_pipeline.core.inputs import validate_inputs

        echo_step("validating the inputs (prices, NYSE calendar, Step 3 legs, settings)")
        try:
            summary = validate_inputs(self.settings)
        except InputDataError as exc:
            raise InputError(str(exc)) from None
        except SettingsError as exc:
            raise InputError(str(exc)) from None
        legs = f", {summary['leg_sessions']} leg sessions" if "leg_sessions" in summary else ""
        echo_step(
            f"inputs valid: {summary['market_sessions']} sessions {summary['market_range']}{legs}; Step 3: {summary['step3']}"
        )

    @contextmanager
    def publication(self) -> Iterator[None]:
        """Publish what the block writes under the home as one set: on any failure the home is put
        back as it was (``defs/publication.py: publication``)."""
        from allocator_pipeline.core.common.journal import HomeBusyError
        from allocator_pipeline.defs.publication import publication

        try:
            with publication(self.settings) as opened:
                self._publication = opened
                if self._instance is not None:
                    opened.watch(self._instance)
                try:
                    yield
                finally:
                    self._publication = None
        except HomeBusyError as exc:
            raise click.ClickException(str(exc)) from None


def echo_step(message: str) -> None:
    click.echo(f"[allocator {time.strftime('%H:%M:%S')}] {message}", err=True)


@contextmanager
def fold_progress(
    folds: list[str], what: str, where: str, instance: dg.DagsterInstance | None = None
) -> Iterator[Callable[[str, bool, str], None]]:
    """A progress bar over ``folds`` on stderr; yields the ``on_done(fold, ok, run_id)`` callback that
    advances it. On leaving, fails (a ClickException) naming every failed fold and its run, then
    ``where`` (where to look at the runs); with ``instance``, each failed run's own cause follows, one
    line per fold (the file, the problem and what to run), so the last line is a cause."""
    from tqdm import tqdm

    failed: list[tuple[str, str]] = []
    with tqdm(total=len(folds), desc=what, unit="fold", file=sys.stderr, dynamic_ncols=True) as bar:

        def done(fold: str, ok: bool, run_id: str) -> None:
            bar.update(1)
            bar.set_postfix_str(f"{fold} {'ok' if ok else 'FAILED'}")
            if not ok:
                failed.append((fold, run_id))

        yield done
    if failed:
        failed.sort()
        summary = f"{what} failed for fold(s): {', '.join(f'{f} (run {r})' for f, r in failed)}{where}"
        causes = [f"fold {fold}: {cause}" for fold, run_id in failed if (cause := run_cause(instance, run_id))]
        raise click.ClickException("\n".join([summary, *causes]))


def run_cause(instance: dg.DagsterInstance | None, run_id: str) -> str | None:
    """The first failed step's own message in a run's event log (None without an instance or a
    recorded step failure)."""
    if instance is None:
        return None
    from dagster import DagsterEventType

    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        if entry.dagster_event is not None:
            return f"{entry.dagster_event.step_key}: {_failure_message(entry.dagster_event)[0]}"
    return None


def _failure_message(event) -> tuple[str, bool]:
    """(the step failure's own message, whether it is an input error)."""
    data = event.step_failure_data
    user = data.user_failure_data if data else None
    if user is not None and user.description:  # a dagster.Failure; bad input carries the input_error key
        return user.description.strip().splitlines()[-1], "input_error" in (user.metadata or {})
    if data and data.error:
        error = data.error
        while error.cause is not None:  # the user code's own exception, not Dagster's wrapper
            error = error.cause
        return " ".join(line.strip() for line in error.message.strip().splitlines()), False
    return "failed", False


def check_run(result, what: str) -> None:
    """Fail the command, naming the failed steps and checks, when a Dagster run did not succeed:
    exit 2 when a step refused its input data (the input's message on the last line), else 1. A
    failed check of severity WARN (the live monitor's) does not fail the command."""
    from dagster import AssetCheckSeverity

    failed_checks = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == AssetCheckSeverity.ERROR
    ]
    if not result.success:
        failures = [_failure_message(e) + (e.step_key,) for e in result.all_events if e.is_step_failure]
        inputs = [message for message, is_input, _ in failures if is_input]
        if inputs:
            raise InputError(inputs[0])
        detail = "; ".join(f"{step}: {message}" for message, _, step in failures)
        raise click.ClickException(f"{what} failed (run {result.run_id}, see `allocator ui`). {detail}")
    if failed_checks:
        raise click.ClickException(f"{what}: blocking checks failed: {', '.join(failed_checks)}")


def echo_stages(result) -> None:
    """One line per materialised stage of a run, in the order they finished, with its duration."""
    for event in result.all_events:
        if event.is_step_success:
            seconds = event.event_specific_data.duration_ms / 1000.0
            echo_step(f"  {event.step_key}: done in {seconds:.1f} s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Show Dagster's event log on the terminal too (it always goes to the instance, the UI's run logs).",
)
@click.option(
    "--instance",
    "instance_dir",
    envvar="ALLOCATOR_INSTANCE",
    type=click.Path(file_okay=False),
    help="Dagster instance: a folder with its dagster.yaml, e.g. instances/postgres "
    "(env ALLOCATOR_INSTANCE; default: DAGSTER_HOME, else the SQLite instance of ./dagster.yaml).",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool, instance_dir: str | None, **options: str | None) -> None:
    """Step 3b allocator: decide each session's capital split between the QQQ and SPY legs."""
    ctx.obj = Context(RunOptions(**options), verbose=verbose, instance_dir=instance_dir)


for _name, _option in GLOBAL_OPTIONS.items():
    _global_option(_name, _option)(main)  # click.option adds the parameter to the group in place
