"""The risk envelope's trade-off on resampled legs: maximum drawdown against average monthly PnL.

A benchmark run by hand (never by the tests), the evidence the envelope's defaults were chosen on.
It reads the leg panel of a built home (``allocator --home H build-dataset``), draws
``--resamples`` stationary block bootstraps of the legs' daily returns (QQQ leg, SPY leg and cash
resampled together, mean block ``--block`` sessions, placed on the original calendar), so the
choice is not made on the one real 2002-2025 path with its one 2008 crash. On each resample it
runs the baseline weight through every envelope variant (the project's own ``apply_envelope``
and ``run_backtest``, default costs including the financing spread, ``--warmup`` sessions of
history before the evaluated stretch) and measures it against the fully invested baseline on the
same sessions.

It prints, per variant: the median over resamples of the maximum drawdown and of the average
monthly PnL minus the baseline's, the share of resamples whose maximum drawdown is at least 20%
shallower than the baseline's, the mean exposure, and the standard error of that monthly PnL
difference (the standard deviation of the monthly return differences over the square root of the
number of months): the noise the envelope adds to the seed's "beats the baseline" gates, whose
90% interval's lower bound sits about 1.645 standard errors below the point. The defaults' rule: the drawdown cut in at
least 90% of resamples with the median average monthly PnL not below the baseline's.

    .venv/bin/python scripts/envelope_tradeoff.py --home bench/reference --resamples 40
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.envelope import EnvelopeState, apply_envelope
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.storage import read_parquet
from allocator_pipeline.core.evaluation.backtest import run_backtest
from allocator_pipeline.core.evaluation.bootstrap import month_starts, path_metrics, stationary_indices
from allocator_pipeline.core.evaluation.metrics import monthly_returns, performance_metrics
from allocator_pipeline.settings import EnvelopeSettings, Settings

COLUMNS = ["qqq_leg_return", "spy_leg_return", "cash_return"]
VARIANTS: dict[str, dict[str, object]] = {
    "none": {"dd_guard": False, "vol_scaling": False, "drift_throttle": False},
    "vol only, max 1.0": {"dd_guard": False, "max_exposure": 1.0},
    "vol only, max 1.25": {"dd_guard": False, "max_exposure": 1.25},
    "vol only, max 1.5": {"dd_guard": False, "max_exposure": 1.5},
    "vol only, max 2.0": {"dd_guard": False, "max_exposure": 2.0},
    "guard only": {"vol_scaling": False},
    "default": {},
    "default, max 1.0 (no borrowing)": {"max_exposure": 1.0},
    "default, guard 5%/10%": {"dd_soft": 0.05, "dd_hard": 0.10},
    "default, guard 15%/30%": {"dd_soft": 0.15, "dd_hard": 0.30},
    "default, reset 63": {"dd_reset_sessions": 63},
    "default, reset 252": {"dd_reset_sessions": 252},
    "default, vol window 63": {"vol_window": 63},
    "default, vol window 10": {"vol_window": 10},
    "default, hard exposure 0.25": {"dd_hard_exposure": 0.25},
    "default, guard 8%/15%": {"dd_soft": 0.08, "dd_hard": 0.15},
    "default, target x0.8": {"vol_target_scale": 0.8},
    "default, target x0.8, max 2": {"vol_target_scale": 0.8, "max_exposure": 2.0},
    "default, target x0.8, guard 8%/15%": {"vol_target_scale": 0.8, "dd_soft": 0.08, "dd_hard": 0.15},
    "default, target x0.7": {"vol_target_scale": 0.7},
    "default, target x0.6": {"vol_target_scale": 0.6},
    "vol only, target x0.8, max 2": {"dd_guard": False, "vol_target_scale": 0.8, "max_exposure": 2.0},
    "default, band 0 (trade every session)": {"exposure_band": 0.0},
    "default, band 0.05": {"exposure_band": 0.05},
    "default, band 0.15": {"exposure_band": 0.15},
    "default, band 0.2": {"exposure_band": 0.2},
    "default, band 0.3": {"exposure_band": 0.3},
    "default, target x1.0, max 1.0 (a volatility cap)": {"vol_target_scale": 1.0, "max_exposure": 1.0},
    "default, target x1.2, max 1.0 (a volatility cap)": {"vol_target_scale": 1.2, "max_exposure": 1.0},
    "default, target x1.0": {"vol_target_scale": 1.0},
    "default, target x0.9": {"vol_target_scale": 0.9},
    "default, max 1.25": {"max_exposure": 1.25},
    "guard only, guard 8%/15%": {"vol_scaling": False, "dd_soft": 0.08, "dd_hard": 0.15},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="a home whose dataset is built (build-dataset)")
    parser.add_argument("--resamples", type=int, default=40)
    parser.add_argument("--block", type=float, default=63.0, help="mean block length (sessions)")
    parser.add_argument("--warmup", type=int, default=1260, help="history sessions before the evaluated stretch")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", help="variant names separated by semicolons (default: all)")
    args = parser.parse_args()
    settings = Settings()
    panel = read_parquet(Path(args.home) / "step3_out" / "allocator" / "dataset" / "leg_panel.parquet")
    real = panel[COLUMNS].dropna()
    n = len(real)
    idx = stationary_indices(n, args.resamples, args.block, np.random.default_rng(args.seed))
    costs = CostModel.from_settings(settings.costs)
    bw = settings.labels.baseline_weight
    started = time.monotonic()
    variants = {k: VARIANTS[k] for k in args.only.split(";")} if args.only else VARIANTS
    rows: dict[str, list[tuple[float, ...]]] = {v: [] for v in variants}
    for b in range(args.resamples):
        legs = pd.DataFrame(real.to_numpy()[idx[b]], index=real.index, columns=COLUMNS)
        evaluated = legs.index[args.warmup :]
        base_dec = pd.DataFrame({"w": bw, "exposure": 1.0}, index=evaluated)
        base = run_backtest(base_dec, legs, costs, initial_book=(bw, 1 - bw))
        starts = month_starts(base["realized_ts"])
        base_m = path_metrics(base["ret"].to_numpy()[None, :], starts)
        base_monthly = monthly_returns(base)
        base_dd = performance_metrics(base, 1.0)["max_drawdown"]
        for name, update in variants.items():
            env_settings = EnvelopeSettings.model_validate({**settings.envelope.model_dump(), **update})
            history = legs.iloc[: args.warmup]
            state = EnvelopeState.start(
                bw,
                0,
                qqq_history=tuple(history["qqq_leg_return"].iloc[-env_settings.history_sessions :]),
                spy_history=tuple(history["spy_leg_return"].iloc[-env_settings.history_sessions :]),
            )
            env = apply_envelope(np.full(len(evaluated), bw), legs.loc[evaluated], env_settings, bw, state)
            dec = pd.DataFrame({"w": env["w_final"], "exposure": env["exposure"]})
            bt = run_backtest(dec, legs, costs, initial_book=(bw, 1 - bw))
            m = path_metrics(bt["ret"].to_numpy()[None, :], starts)
            whole = performance_metrics(bt, 1.0)
            dd = whole["max_drawdown"]
            difference = monthly_returns(bt) - base_monthly
            rows[name].append(
                (
                    dd,
                    float(m["avg_monthly_pnl"][0] - base_m["avg_monthly_pnl"][0]),
                    1 - dd / base_dd,
                    bt["exposure"].mean(),
                    float(m["calmar"][0] - base_m["calmar"][0]),
                    whole["turnover"],
                    float(difference.std(ddof=1) / np.sqrt(len(difference))),
                )
            )
    print(
        f"{args.resamples} stationary-bootstrap resamples of {n} sessions (mean block {args.block:g}), "
        f"evaluated after {args.warmup} sessions, {time.monotonic() - started:.0f} s\n"
    )
    print(
        "| envelope variant | median MaxDD | median dPnL (bp a month) | median dCalmar | MaxDD >= 20% shallower "
        "| mean exposure | turnover a year | median standard error of dPnL (bp) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, values in rows.items():
        a = np.array(values)
        print(
            f"| {name} | {np.median(a[:, 0]) * 100:.1f}% | {np.median(a[:, 1]) * 1e4:+.1f} | {np.median(a[:, 4]):+.3f} | "
            f"{(a[:, 2] >= 0.2).mean():.0%} | {a[:, 3].mean():.2f} | {np.median(a[:, 5]):.1f} | "
            f"{np.median(a[:, 6]) * 1e4:.1f} |"
        )


if __name__ == "__main__":
    main()
