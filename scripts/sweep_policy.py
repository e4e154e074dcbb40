"""Policy sweep: replay the fold probabilities of ``bench_power.py`` runs through other policy settings.

A benchmark run by hand (never by the tests), the evidence behind the policy defaults (docs/research.md,
power of the verdict). For each run home that ``scripts/bench_power.py`` wrote (``ic<X>_seed<S>``
under ``--work``), it reads every fold's stored test probabilities
(``step3_out/allocator/models/<fold>/predictions.parquet``) and utility matrix (``policy.json``), and
for each ``(policy.turnover_penalty, policy.alpha)`` of the grid runs the allocator's one
continuous path over the folds (``core/allocation/path.run_segments``: policy and envelope, the
state carried across folds), backtests it with the project's cost model and execution lag
(``run_backtest``) and prints, per run: the Calmar ratio minus the baseline's, the share of the
transparent rule's Calmar gain over the baseline (both read from the run's ``metrics.json``; the
share means nothing for a pure-noise run, whose rule gains nothing) and the annual turnover.

The probabilities are the ones the run traded, so for runs made with the nested study off (the
default profile) each row is exactly what the pipeline gives with those two settings: the row of
the run's own settings reproduces its ``metrics.json`` (printed as a check). The models do not
depend on the policy settings; the tuner, when on, would have chosen other ones per fold.

    .venv/bin/python scripts/sweep_policy.py --work bench_power_work --runs ic0.3_seed0,ic0.3_seed1,ic0.0_seed0 \\
        --lambdas 0,2,5,10 --alphas 0,0.5,0.7,0.9

Wall time: about a second per (run, setting) here.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.path import Segment, run_segments
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.storage import read_json, read_parquet
from allocator_pipeline.core.evaluation.backtest import RETURN_COLUMNS, run_backtest
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.settings import Settings, load_settings


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def fold_segments(allocator: Path, settings: Settings) -> list[Segment]:
    """One segment per fold: the stored test probabilities and utility matrix of its model."""
    segments = []
    for directory in sorted(p for p in (allocator / "models").iterdir() if p.is_dir()):
        probabilities = read_parquet(directory / "predictions.parquet")
        m = np.asarray(read_json(directory / "policy.json")["utility_matrix"], dtype=float)
        segments.append(Segment(f"fold:{directory.name}", probabilities, m, settings))
    if not segments:
        raise SystemExit(f"no fold model under {allocator / 'models'}: run scripts/bench_power.py first")
    return segments


def sweep_run(home: Path, base: Settings, grid: list[tuple[float, float]]) -> list[dict]:
    allocator = home / "step3_out" / "allocator"
    panel = read_parquet(allocator / "dataset" / "leg_panel.parquet")
    strategies = read_json(allocator / "backtest" / "metrics.json")["strategies"]
    calmar_base, calmar_rule = strategies["baseline"]["calmar"], strategies["planted_rule"]["calmar"]
    cost_model = CostModel.from_settings(base.costs)
    w0 = float(base.labels.baseline_weight)
    segments = fold_segments(allocator, base)  # read once; each setting only swaps the settings
    rows = []
    for lam, alpha in grid:
        settings = base.model_copy(
            update={"policy": base.policy.model_copy(update={"turnover_penalty": lam, "alpha": alpha})}
        )
        path, _ = run_segments([replace(segment, settings=settings) for segment in segments], panel)
        decisions = pd.DataFrame({"w": path["w_final"], "exposure": path["exposure"]})
        bt = run_backtest(
            decisions,
            panel[list(RETURN_COLUMNS)],
            cost_model,
            initial_book=(w0, 1.0 - w0),
            execution_lag=settings.backtest.execution_lag,
        )
        metrics = performance_metrics(bt, settings.report.notional)
        rows.append(
            {
                "run": home.name,
                "turnover_penalty": lam,
                "alpha": alpha,
                "calmar": metrics["calmar"],
                "calmar_vs_baseline": metrics["calmar"] - calmar_base,
                "share": (metrics["calmar"] - calmar_base) / (calmar_rule - calmar_base),
                "turnover": metrics["turnover"],
            }
        )
    own = strategies["allocator"]["calmar"]
    mine = [
        r["calmar"]
        for r in rows
        if (r["turnover_penalty"], r["alpha"]) == (base.policy.turnover_penalty, base.policy.alpha)
    ]
    if mine:
        print(f"{home.name}: the run's own settings give Calmar {mine[0]:.6f}, metrics.json {own:.6f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="bench_power_work", help="the --work directory of bench_power.py")
    parser.add_argument("--runs", required=True, help="run homes under --work, e.g. ic0.3_seed0,ic0.0_seed0")
    parser.add_argument("--lambdas", default="0,2,5,10", help="policy.turnover_penalty values")
    parser.add_argument("--alphas", default="0,0.5,0.7,0.9", help="policy.alpha values")
    parser.add_argument("--profile", default="default", help="the profile the runs used")
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    base = load_settings(profile=args.profile, environ={})
    grid = [(lam, alpha) for lam in floats(args.lambdas) for alpha in floats(args.alphas)]
    rows = []
    for name in (r.strip() for r in args.runs.split(",") if r.strip()):
        rows += sweep_run(Path(args.work) / name, base, grid)
    table = pd.DataFrame(rows).pivot_table(
        index=["turnover_penalty", "alpha"],
        columns="run",
        values=["calmar_vs_baseline", "share", "turnover"],
        sort=True,
    )
    print(table.round(3).to_string())
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
