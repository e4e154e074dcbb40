"""Measuring instruments: ``synth-step3`` writes a Step 3 directory with a planted signal."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from allocator_pipeline.cli.context import Context, echo_step, main


@main.command("synth-step3")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--ic",
    type=click.FloatRange(-1.0, 1.0),
    required=True,
    help="Correlation of the planted signal with the next H sessions' leg spread (0: pure noise).",
)
@click.option("--horizon", type=click.IntRange(1, 126), default=20, show_default=True, help="H, in sessions.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw.")
@click.option(
    "--legs",
    "informative",
    type=click.Choice(["both", "qqq", "spy"]),
    default="both",
    show_default=True,
    help="Which legs' confidence carries the signal (the others carry noise).",
)
@click.option(
    "--condition",
    type=click.Choice(["none", "high_vol", "flip"]),
    default="none",
    show_default=True,
    help="none: everywhere; high_vol: only in high-volatility sessions (QQQ leg's 21-session volatility above "
    "its expanding median, known at the close); flip: its sign reverses in calm sessions.",
)
@click.option(
    "--resample",
    "resample_block",
    type=click.FloatRange(1.0, 2520.0),
    help="Replace the legs by a stationary block bootstrap of their rows, mean block this many sessions "
    "(seeded by --seed), under new symbols (QQQB, SPYB) with their price files; run it with "
    "--config OUT/allocator.toml. Default: the real legs.",
)
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False),
    help="Step 3 directory whose legs to keep (default: the reference engine's legs in <home>/step3_out, "
    "built there first when missing).",
)
@click.pass_obj
def synth_step3(
    ctx: Context,
    out: str,
    ic: float,
    horizon: int,
    seed: int,
    informative: str,
    condition: str,
    resample_block: float | None,
    source: str | None,
) -> None:
    """Write to OUT a Step 3 directory whose leg returns are real (or resampled from the real ones) and
    whose confidence columns carry a signal of known strength (see core/inputs/synthetic.py); run the
    pipeline on it with --step3 OUT (with --config OUT/allocator.toml when resampled)."""
    from allocator_pipeline.core.common.errors import InputDataError
    from allocator_pipeline.core.inputs import load_market, run_reference_engine
    from allocator_pipeline.core.inputs.synthetic import CONFIG_FILE, MARKER
    from allocator_pipeline.core.inputs.synthetic import synth_step3 as plant

    s = ctx.settings
    target = Path(out)
    if target.exists() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise click.UsageError(f"{target} exists and is not a synth-step3 directory: choose an empty or new OUT")
    market = load_market(s)
    symbols = {"qqq": s.data.qqq_symbol, "spy": s.data.spy_symbol}
    try:
        with tempfile.TemporaryDirectory(prefix="step3-reference-") as scratch:
            legs_dir = Path(source) if source else s.paths.step3_out
            if not (legs_dir / "backtest" / f"{symbols['spy']}.parquet").is_file():
                echo_step(f"no Step 3 legs in {legs_dir}: running the reference engine ({s.data.step3_mode})")
                run_reference_engine(market, s, scratch)
                legs_dir = Path(scratch)
            manifest = plant(
                legs_dir,
                target,
                market.index,
                ic,
                horizon,
                seed,
                symbols,
                informative,  # type: ignore[arg-type]
                condition,  # type: ignore[arg-type]
                resample_block,
            )
    except InputDataError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Wrote {target}: planted IC {ic} on the next {horizon} sessions' leg spread (seed {seed}); achieved "
        f"{manifest['achieved_ic']:.3f} (daily), {manifest['achieved_ic_trailing_mean']:.3f} (its {horizon}-session "
        f"mean). Use it with: "
        + (f"allocator --config {target / CONFIG_FILE} run" if resample_block else f"allocator --step3 {target} run")
    )
