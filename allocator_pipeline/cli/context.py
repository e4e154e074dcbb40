"""The ``allocator`` command's group, its global options and the per-command context.

Global options (``--home``, ``--prices``, ``--step3``, ``--profile``, ``--config``) are generated
from :class:`allocator_pipeline.settings.RunOptions`, their one declaration, and configure the
settings resource exactly as the Dagster UI's resource config would.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import dagster as dg

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

    def resource(self) -> AllocatorSettings:
        """The Dagster settings resource configured with this command's options."""
        from allocator_pipeline.defs.resources import AllocatorSettings

        return AllocatorSettings(**self.options.model_dump())

    @property
    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            from allocator_pipeline.defs.execution import get_instance

            self._instance = get_instance(self.settings)
        return self._instance


def echo_step(message: str) -> None:
    click.echo(f"[allocator {time.strftime('%H:%M:%S')}] {message}", err=True)


def check_run(result, what: str) -> None:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context, **options: str | None) -> None:
    """Step 3b allocator: decide each session's capital split between the QQQ and SPY legs."""
    ctx.obj = Context(RunOptions(**options))


for _name, _option in GLOBAL_OPTIONS.items():
    _global_option(_name, _option)(main)  # click.option adds the parameter to the group in place
