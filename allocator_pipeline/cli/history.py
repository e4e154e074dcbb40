"""The history command: ``allocator runs`` lists the recorded walk-forward reports from the Dagster
instance (``defs/history.py``), newest first, one line each."""

from __future__ import annotations

from typing import Any

import click

from allocator_pipeline.cli.context import Context, main


def run_line(row: dict[str, Any]) -> str:
    """One recorded run as a person reads it: when, the verdict, the allocator's and the baseline's
    CAGR and Calmar, the out-of-sample range, the two fingerprints, the run and the home."""
    import datetime as dt

    from allocator_pipeline.report.tables import fmt_pct, fmt_ratio

    when = dt.datetime.fromtimestamp(float(row["timestamp"]), tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    figures = " | ".join(
        f"{who} CAGR {fmt_pct(row.get(f'{key}_cagr'))} Calmar {fmt_ratio(row.get(f'{key}_calmar'))}"
        for who, key in (("allocator", "allocator"), ("baseline", "baseline"))
    )
    return (
        f"{when}  {row.get('verdict', 'n/a'):<8}  {figures} | OOS {row.get('oos_start', '?')}..{row.get('oos_end', '?')}"
        f" | settings {row.get('settings_fingerprint', 'n/a')} step3 {row.get('step3_fingerprint', 'n/a')}"
        f" | run {str(row['run_id'])[:8]} | home {row.get('home', '?')}"
    )


@main.command()
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True, help="Runs listed.")
@click.pass_obj
def runs(ctx: Context, limit: int) -> None:
    """The recorded walk-forward reports in the Dagster instance (--instance), newest first: verdict,
    headline figures, settings and Step 3 fingerprints, run and home."""
    from allocator_pipeline.defs.history import run_history

    rows = run_history(ctx.instance, limit=limit)
    if not rows:
        click.echo(f"no walk-forward report recorded in the instance {ctx.instance.root_directory}")
        return
    for row in rows:
        click.echo(run_line(row))
