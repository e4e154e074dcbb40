"""What the deflated Sharpe ratio deflates: the trials' dependence and the return it is taken on.

A benchmark run by hand (never by the tests), the evidence for the deflated Sharpe gate
(docs/research.md, "The yardstick on the family"). The gate tests the allocator's weight choice
over the baseline (``ret_model_only - ret_baseline``) against ``SR0``, the best of ``N`` unskilled
trials, with ``N`` the research ledger's variants counted as independent and ``V`` at its floor
``1/T`` (``core/evaluation/overfitting.py``); before 2026-12-03 it tested the book over cash.
For each run home (``--homes``, e.g.
the ones ``scripts/bench_power.py`` wrote) this replays the run's stored fold probabilities through
a fixed set of one-setting variants of the method's defaults (the kind most ledger rows are:
policy smoothing, sizing gain, no-trade band, daily cap, sizing rule, the envelope's volatility
target, drawdown guard and exposure cap; ``VARIANTS``), each on the allocator's one continuous
path with the project's costs (``scripts/sweep_policy.py``), and measures, over cash and as the
active return over the Step 3 baseline:

- ``rho``: the mean pairwise correlation of the variants' daily returns (the run's own variant
  included), and ``N_eff = rho + (1 - rho) * N`` (Bailey and Lopez de Prado 2014: the number of
  effectively independent trials among ``N`` with that mean correlation);
- ``V_var``: the cross-variant variance of their per-session Sharpe ratios, beside ``1 / T``;
- ``pbo_variants``: PBO by CSCV (``gates.pbo_blocks``) over the variants' out-of-sample returns;
- the deflated Sharpe ratio (``deflated_sharpe``) of the allocator, the planted rule (on a planted
  run), "envelope only" and the model's increment (allocator minus envelope only), with ``N`` as
  counted and with ``N_eff``, ``V = 1/T``.

    .venv/bin/python scripts/bench_deflation.py --homes bench/off/base_ic0.3_seed0,bench/off/base_ic0.0_seed0

Wall time: about a second per (run, variant).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_policy import fold_segments, replayed, with_point

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.storage import read_parquet
from allocator_pipeline.core.evaluation.overfitting import (
    deflated_sharpe,
    pbo_cscv,
    research_trials,
    sharpe_per_session,
)
from allocator_pipeline.settings import Settings, load_settings

VARIANTS: list[dict[str, float | str]] = [
    {},
    {"policy.alpha": 0.7},
    {"policy.alpha": 0.8},
    {"policy.alpha": 0.95},
    {"policy.sizing_gain": 1.0},
    {"policy.sizing_gain": 2.0},
    {"policy.sizing_gain": 8.0},
    {"policy.no_trade_band": 0.0},
    {"policy.no_trade_band": 0.05},
    {"policy.max_daily_change": 0.1},
    {"policy.max_daily_change": 1.0},
    {"policy.sizing": "argmax"},
    {"envelope.vol_target_scale": 0.6},
    {"envelope.vol_target_scale": 1.0},
    {"envelope.dd_soft": 0.15},
    {"envelope.max_exposure": 1.0},
]
"""One-setting variants of the defaults (``{}``: the run's own settings)."""


def variant_returns(home: Path, base: Settings, daily: pd.DataFrame) -> pd.DataFrame:
    """Daily net returns of every variant on the sessions of the run's ``daily`` (its
    ``oos_daily`` by ``realized_ts``; columns: variant)."""
    allocator = home / "step3_out" / "allocator"
    panel = read_parquet(allocator / "dataset" / "leg_panel.parquet")
    cost_model = CostModel.from_settings(base.costs)
    w0 = float(base.labels.baseline_weight)
    segments = fold_segments(allocator, base)
    out = {}
    for point in VARIANTS:
        _, bt = replayed(segments, panel, with_point(base, point), cost_model, w0)
        name = ",".join(f"{k}={v}" for k, v in point.items()) or "default"
        out[name] = bt.set_index("realized_ts")["ret"].reindex(daily.index)
    frame = pd.DataFrame(out)
    gap = float((frame["default"] - daily["ret_allocator"]).abs().max())
    if gap > 1e-12:
        raise SystemExit(f"{home}: the replayed default differs from the run's allocator by {gap:g}")
    return frame


def mean_correlation(frame: pd.DataFrame) -> float:
    """Mean of the off-diagonal pairwise correlations of the frame's columns."""
    c = frame.corr().to_numpy()
    off = c[~np.eye(len(c), dtype=bool)]
    return float(np.nanmean(off))


def study_run(home: Path, base: Settings, n_trials: int) -> dict:
    """One run's row: the variants' dependence, and the deflated Sharpe of each subject with ``N``
    as counted and with ``N_eff`` (``V = 1/T``)."""
    daily = read_parquet(home / "step3_out" / "allocator" / "backtest" / "oos_daily.parquet").set_index("realized_ts")
    variants = variant_returns(home, base, daily)
    cash, baseline = daily["cash_return"], daily["ret_baseline"]
    t = len(daily)
    row: dict = {"run": home.name, "T": t, "N": n_trials, "variants": variants.shape[1]}
    for kind, frame in (("cash", variants.sub(cash, axis=0)), ("active", variants.sub(baseline, axis=0))):
        rho = mean_correlation(frame)
        row[f"rho_{kind}"] = rho
        row[f"N_eff_{kind}"] = rho + (1.0 - rho) * n_trials
        row[f"V_var_{kind}_x_T"] = float(np.var([sharpe_per_session(frame[c].to_numpy()) for c in frame], ddof=1)) * t
        row[f"pbo_variants_{kind}"] = pbo_cscv(frame.to_numpy(), base.gates.pbo_blocks)["pbo"]
    subjects = {"allocator": daily["ret_allocator"], "envelope_only": daily["ret_envelope_only"]}
    if "ret_planted_rule" in daily:
        subjects["planted_rule"] = daily["ret_planted_rule"]
    for name, ret in subjects.items():
        for kind, ref in (("cash", cash), ("active", baseline)):
            x = (ret - ref).to_numpy()
            counted = deflated_sharpe(x, n_trials, 1.0 / t)
            row[f"{name}_{kind}_sr_ann"] = counted["sharpe_annualised"]
            row[f"{name}_{kind}_dsr_N"] = counted["dsr"]
            n_eff = max(2, round(row[f"N_eff_{kind}"]))
            row[f"{name}_{kind}_dsr_Neff"] = deflated_sharpe(x, n_eff, 1.0 / t)["dsr"]
    inc = (daily["ret_allocator"] - daily["ret_envelope_only"]).to_numpy()
    counted = deflated_sharpe(inc, n_trials, 1.0 / t)
    row["increment_ir_ann"], row["increment_dsr_N"] = counted["sharpe_annualised"], counted["dsr"]
    row["increment_dsr_Neff_active"] = deflated_sharpe(inc, max(2, round(row["N_eff_active"])), 1.0 / t)["dsr"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--homes", required=True, help="run homes, comma-separated")
    parser.add_argument("--profile", default="default", help="the profile the runs used")
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    base = load_settings(profile=args.profile, environ={})
    n_trials = research_trials()
    rows = []
    for name in (h.strip() for h in args.homes.split(",") if h.strip()):
        rows.append(study_run(Path(name), base, n_trials))
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
    table = pd.DataFrame(rows).set_index("run").T
    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_rows", 200):
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
