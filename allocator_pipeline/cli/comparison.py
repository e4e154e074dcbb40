"""The comparison command: ``allocator compare A B`` puts run B against run A on their common
out-of-sample sessions (``core/evaluation/run_comparison.py``), prints the table and writes the
page (``report/run_comparison.py``).

A and B are homes (folders where ``allocator --home H run`` wrote ``step3_out/allocator/...``)
or runs of the history (``allocator runs``: a run id or its first characters), whose home must
still hold that run. Refused with exit 2, before anything is written, when a home has no completed
run, a run of the history is unknown or its home was run again since, or the runs share too few
sessions.
"""

from __future__ import annotations

from pathlib import Path

import click

from allocator_pipeline.cli.context import Context, InputError, main


def _home_of(ctx: Context, argument: str) -> Path:
    """The home an argument names: a folder, else the home of the recorded run whose id starts with it."""
    path = Path(argument)
    if path.is_dir():
        return path
    from allocator_pipeline.core.common.fingerprint import settings_fingerprint
    from allocator_pipeline.core.common.storage import read_json
    from allocator_pipeline.defs.history import run_history

    rows = [r for r in run_history(ctx.instance, limit=10000) if str(r["run_id"]).startswith(argument)]
    if not rows:
        raise InputError(f"{argument}: neither a home folder nor a run recorded in the instance (see `allocator runs`)")
    if len({r["run_id"] for r in rows}) > 1:
        raise InputError(f"{argument}: more than one recorded run starts with it; give more of the run id")
    row = rows[0]
    home = Path(str(row.get("home") or ""))
    metrics = home / "step3_out" / "allocator" / "backtest" / "metrics.json"
    if not metrics.is_file():
        raise InputError(f"run {argument}: its home {home} no longer holds a completed run (file {metrics} missing)")
    now = settings_fingerprint(dict(read_json(metrics).get("settings") or {}))
    if now != row.get("settings_fingerprint"):
        raise InputError(
            f"run {argument}: its home {home} was run again since (settings {now}, the run's "
            f"{row.get('settings_fingerprint')}); compare the home itself or run it again"
        )
    return home


@main.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="compare",
    show_default=True,
    help="Folder for compare.html and comparison.json.",
)
@click.pass_obj
def compare(ctx: Context, run_a: str, run_b: str, out: str) -> None:
    """Run B against run A (homes, or runs of `allocator runs`) on their common out-of-sample
    sessions: both headlines and verdicts, the block bootstrap of B minus A for the allocator, the
    Step 3 baseline and the model's increment over the envelope, and what differs."""
    from allocator_pipeline.core.common.errors import InputDataError
    from allocator_pipeline.core.evaluation.run_comparison import compare_runs, load_run
    from allocator_pipeline.report.run_comparison import format_comparison, publish_comparison
    from allocator_pipeline.settings import BootstrapSettings

    try:
        a, b = load_run(_home_of(ctx, run_a)), load_run(_home_of(ctx, run_b))
        recorded = (b.metrics.get("settings") or {}).get("bootstrap")
        settings = BootstrapSettings.model_validate(recorded) if recorded else ctx.settings.bootstrap
        result = compare_runs(a, b, settings)
    except InputDataError as exc:
        raise InputError(str(exc)) from None
    click.echo(format_comparison(result), nl=False)
    paths = publish_comparison(result, Path(out))
    click.echo(f"Page: {paths['page']}")
    click.echo(f"Figures: {paths['json']}")
