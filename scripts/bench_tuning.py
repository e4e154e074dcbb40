"""Benchmark: the cost of the nested walk-forward tuning on the embedded data.

Builds the pipeline inputs by hand (market panel -> Step 3 legs -> leg panel -> features, utility
labels, fold plan), then, for the chosen profile's settings:

* ``--fold YYYY`` (default 2015): the time of the member fits on each inner split, of one cheap
  trial (ensemble / policy / envelope parameters, cached members) and of one full-space trial
  (model and label parameters too: members refitted on every inner split), then one study with the
  profile's budget on that fold;
* ``--all-folds``: the study of every outer fold with the profile's budget, ``--workers`` folds at
  a time (separate processes, each building its own inputs), and the total wall time.

Legs: ``--legs passive`` (buy-and-hold total-return legs, no confidence or drift columns: fast to
build) or ``--legs reference`` (the reference Step 3 engine, as ``make run`` uses by default;
its output is cached in ``--home``). Studies are written under ``--home`` (a temporary directory
by default, removed at the end), never into the project's own ``step3_out``.

Run: ``.venv/bin/python scripts/bench_tuning.py [--profile default] [--legs reference] [--all-folds]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.features.table import available_blocks, build_features
from allocator_pipeline.core.folds.checks import usable_sessions
from allocator_pipeline.core.folds.plan import plan_folds
from allocator_pipeline.core.inputs.market import load_prices, market_panel
from allocator_pipeline.core.inputs.step3 import build_leg_panel, read_step3_dir
from allocator_pipeline.core.labels.utility import utility_labels
from allocator_pipeline.core.tuning.objective import InnerFitCache, evaluate_params
from allocator_pipeline.core.tuning.space import MODEL_GROUPS, search_space
from allocator_pipeline.core.tuning.study import inner_fold_frames, run_study
from allocator_pipeline.settings import Settings, load_settings

FULL_TRIAL = {  # a mid-range point of the model and label groups (all members refitted)
    "models.lightgbm.num_leaves": 31,
    "models.lightgbm.max_depth": 6,
    "models.lightgbm.learning_rate": 0.08,
    "models.lightgbm.min_data_in_leaf": 60,
    "models.lightgbm.lambda_l2": 2.0,
    "models.lightgbm.feature_fraction": 0.7,
    "models.linear.C": 0.2,
    "models.linear.l1_ratio": 0.3,
    "models.catboost.depth": 5,
    "models.catboost.l2_leaf_reg": 3.0,
    "models.catboost.iterations": 200,
    "labels.lambda_dd": 2.0,
    "labels.lambda_tc": 0.5,
}


def passive_panel(market: pd.DataFrame) -> pd.DataFrame:
    """Leg panel of buy-and-hold legs (docs/ARCHITECTURE.md "Leg panel", no confidence/drift)."""
    market = market[market["qqq_adj_close"].notna()]
    panel = pd.DataFrame(index=market.index)
    for role in ("qqq", "spy"):
        panel[f"{role}_leg_return"] = market[f"{role}_adj_close"].pct_change()
        panel[f"{role}_position"] = 1.0
        panel[f"{role}_step3_fold"] = "passive"
    for column in ("qqq_adj_close", "spy_adj_close", "vix", "tbill_yield_pct", "cash_return"):
        panel[column] = market[column]
    return panel.iloc[1:]


def reference_panel(market: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Leg panel of the reference Step 3 engine (run once, cached under ``settings.home``)."""
    from allocator_pipeline.core.inputs.reference_output import run_reference_engine

    out = settings.paths.step3_out
    if not (out / "backtest").is_dir():
        run_reference_engine(market, settings, out)
    roles = {"qqq": settings.data.qqq_symbol, "spy": settings.data.spy_symbol}
    return build_leg_panel(read_step3_dir(out, roles, market.index, require_confidence=False), market)


def build_inputs(settings: Settings, legs: str) -> tuple:
    """(settings with the available feature blocks, leg panel, features, labels, utilities, plan)."""
    market = market_panel(load_prices())
    panel = passive_panel(market) if legs == "passive" else reference_panel(market, settings)
    settings = settings.model_copy(
        update={"features": settings.features.model_copy(update={"blocks": available_blocks(panel, settings.features)})}
    )
    features = build_features(panel, settings.features)
    labels, utilities = utility_labels(panel, settings.labels, CostModel.from_settings(settings.costs))
    plan = plan_folds(features.index, usable_sessions(features, labels), settings)
    return settings, panel, features, labels, utilities, plan


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def single_fold(args: argparse.Namespace, settings: Settings, inputs) -> None:
    settings, panel, features, labels, utilities, plan = inputs
    frames = inner_fold_frames(features, labels, plan, args.fold)
    sizes = ", ".join(
        f"{(f['split'] == 'train').sum()}/{(f['split'] == 'val').sum()}/{(f['split'] == 'test').sum()}" for f in frames
    )
    print(
        f"fold {args.fold}: {len(frames)} inner splits (train/val/test rows: {sizes}), "
        f"{features.shape[1]} features, members {list(settings.models.members)}"
    )
    cache = InnerFitCache()
    t_fit, out = timed(lambda: evaluate_params({}, frames, utilities, panel, settings, cache=cache))
    print(f"  defaults trial, members fitted on every inner split: {t_fit:.2f} s (objective {out['objective']:.4f})")
    cheap = {
        "policy.alpha": 0.3,
        "policy.max_daily_change": 0.2,
        "ensemble.calibration": "temperature",
        "ensemble.blend_temperature": 0.1,
        "envelope.vol_target": 0.25,
    }
    t_cheap, out = timed(lambda: evaluate_params(cheap, frames, utilities, panel, settings, cache=cache))
    print(f"  cheap trial (ensemble/policy/envelope, cached members): {t_cheap:.3f} s")
    model_space = search_space(settings, MODEL_GROUPS)
    full = {k: v for k, v in FULL_TRIAL.items() if k in model_space}
    t_full, out = timed(lambda: evaluate_params(full, frames, utilities, panel, settings, cache=cache))
    print(f"  full-space trial (relabel + refit of every member): {t_full:.2f} s")
    if args.no_study:
        return
    with tempfile.TemporaryDirectory() as home:
        s = settings.model_copy(update={"home": Path(home)})
        t_study, result = timed(lambda: run_study(args.fold, frames, utilities, panel, s))
    print(
        f"  study, profile {settings.profile} (groups {list(result.groups)}, n_trials {settings.tuning.n_trials}, "
        f"timeout {settings.tuning.timeout_seconds:.0f} s): {t_study:.1f} s, {result.n_trials}, "
        f"best {result.best_value:.4f} vs defaults {result.default_value:.4f}"
    )


def worker(args: argparse.Namespace, settings: Settings, inputs) -> None:
    settings, panel, features, labels, utilities, plan = inputs
    for fold in args.worker.split(","):
        frames = inner_fold_frames(features, labels, plan, fold)
        t, result = timed(lambda fold=fold, frames=frames: run_study(fold, frames, utilities, panel, settings))
        print(
            json.dumps(
                {
                    "fold": fold,
                    "seconds": t,
                    **result.n_trials,
                    "best": result.best_value,
                    "defaults": result.default_value,
                }
            ),
            flush=True,
        )


def all_folds(args: argparse.Namespace, settings: Settings, inputs) -> None:
    plan = inputs[-1]
    folds = [str(f) for f in plan.loc[plan["inner"] == -1, "fold"]]
    chunks = [folds[i :: args.workers] for i in range(args.workers)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--profile",
                args.profile,
                "--legs",
                args.legs,
                "--home",
                str(settings.home),
                "--worker",
                ",".join(chunk),
            ]
            + (["--trials", str(args.trials)] if args.trials else [])
            + (["--first-test-year", str(args.first_test_year)] if args.first_test_year else [])
            + (["--inner-folds", str(args.inner_folds)] if args.inner_folds else []),
            stdout=subprocess.PIPE,
            text=True,
        )
        for chunk in chunks
        if chunk
    ]
    rows = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"worker failed with code {proc.returncode}")
        rows += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    wall = time.perf_counter() - start
    table = pd.DataFrame(rows).sort_values("fold")
    print(table.to_string(index=False))
    print(
        f"{len(folds)} folds, {args.workers} at a time, profile {settings.profile} "
        f"(n_trials {settings.tuning.n_trials}): wall {wall:.1f} s, sum of fold times {table['seconds'].sum():.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default", choices=["quick", "default", "full"])
    parser.add_argument("--legs", default="passive", choices=["passive", "reference"])
    parser.add_argument("--fold", default="2015")
    parser.add_argument("--all-folds", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--home", default=None, help="work directory (default: a temporary one, removed after)")
    parser.add_argument("--trials", type=int, default=None, help="override tuning.n_trials")
    parser.add_argument("--first-test-year", type=int, default=None, help="override folds.first_test_year")
    parser.add_argument("--inner-folds", type=int, default=None, help="override folds.n_inner_folds")
    parser.add_argument("--no-study", action="store_true", help="single fold: trial timings only")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.home is None and not args.worker:
        with tempfile.TemporaryDirectory(prefix="bench_tuning_") as home:
            args.home = home
            run(args)
    else:
        run(args)


def run(args: argparse.Namespace) -> None:
    home = Path(args.home)
    overrides: dict = {}
    if args.trials:
        overrides["tuning"] = {"n_trials": args.trials}
    if args.first_test_year:
        overrides.setdefault("folds", {})["first_test_year"] = args.first_test_year
    if args.inner_folds:
        overrides.setdefault("folds", {})["n_inner_folds"] = args.inner_folds
    settings = load_settings(home=home, profile=args.profile, overrides=overrides or None, environ={})
    t_inputs, inputs = timed(lambda: build_inputs(settings, args.legs))
    if args.worker:
        worker(args, settings, inputs)
        return
    print(f"inputs ({args.legs} legs) built in {t_inputs:.1f} s; home {home}")
    if args.all_folds:
        all_folds(args, settings, inputs)
    else:
        single_fold(args, settings, inputs)


if __name__ == "__main__":
    main()
