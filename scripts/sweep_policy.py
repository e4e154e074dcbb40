"""Policy sweep: replay a run's fold probabilities through other policy and envelope settings.

A benchmark run by hand (never by the tests), the evidence behind the policy defaults (docs/research.md).
For each run home (``--homes``; e.g. the ones ``scripts/bench_power.py`` wrote) it reads every fold's
stored test probabilities (``step3_out/allocator/models/<fold>/predictions.parquet``), utility
matrix and class prior (``policy.json``), and for each point of the grid (``--set
section.field=v1,v2`` per axis, e.g. ``--set policy.alpha=0.7,0.9 --set policy.sizing_gain=1,2``)
runs the allocator's one continuous path over the folds (``core/allocation/path.run_segments``:
policy and envelope, the state carried across folds), backtests it with the project's cost model
and execution lag (``run_backtest``) and prints, per run: the Calmar ratio minus the baseline's,
the share of the transparent rule's Calmar gain (meaningless on pure noise), the same share for
the weight choice alone (``w_smoothed`` fully invested, no envelope: the ``model_only`` ablation,
against the rule fully invested), the annual turnover, the maximum drawdown and how much
shallower it is than the baseline's (``drawdown_cut``, issue 20's measure), and the lower bounds
of the verdict's paired bootstrap (``paired_bootstrap``, default settings) of the allocator
against the baseline (read from the run's ``oos_daily.parquet``) and against "envelope only"
under the same settings (the model's increment; the baseline weight through the point's envelope).
On a planted run it also gives those lower bounds for the planted rule's weight through the
point's envelope against the baseline (``rule_envelope_*``): whether a weight choice as good as
the rule could pass the seed's two "beats the baseline" gates with that envelope.
An ``ensemble.*`` axis (``--set ensemble.blend_temperature=0.02,0.3``) refits each fold's blend and
calibrator from its stored members on its validation rows (``dataset/folds/<fold>.parquet``), the
tuner's cheap ensemble group, with no member refitted.

The probabilities are the ones the run traded, so for runs made with the nested study off each row
is exactly what the pipeline gives with those settings: the row of the run's own settings
reproduces its ``metrics.json`` (printed as a check). The models do not depend on the policy
settings; the tuner, when on, would have chosen other ones per fold.

    .venv/bin/python scripts/sweep_policy.py --homes bench/rp/base_ic0.3_seed0,bench/rp/base_ic0.0_seed0 \\
        --set policy.alpha=0.7,0.9 --set policy.sizing_gain=1,2,3

Wall time: about a second per (run, setting) here, plus a few seconds per bootstrap.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.fold_model import (
    FoldModel,
    feature_columns,
    policy_prior_of,
    probability_frame,
    split_rows,
    xy,
)
from allocator_pipeline.core.allocation.path import Segment, run_segments
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.grid import OUT_OF_RANGE_COLUMN
from allocator_pipeline.core.common.storage import read_json, read_parquet
from allocator_pipeline.core.ensemble.blend import fit_ensemble
from allocator_pipeline.core.evaluation.ablations import ablation_decisions, envelope_decisions
from allocator_pipeline.core.evaluation.backtest import RETURN_COLUMNS, run_backtest
from allocator_pipeline.core.evaluation.bootstrap import paired_bootstrap
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.core.evaluation.retention import planted_rule
from allocator_pipeline.core.inputs import read_planted
from allocator_pipeline.settings import BootstrapSettings, Settings, load_settings


def fold_segments(allocator: Path, settings: Settings) -> list[Segment]:
    """One segment per fold: the stored test probabilities and utility matrix of its model."""
    segments = []
    for directory in sorted(p for p in (allocator / "models").iterdir() if p.is_dir()):
        probabilities = read_parquet(directory / "predictions.parquet")
        policy = read_json(directory / "policy.json")
        m = np.asarray(policy["utility_matrix"], dtype=float)
        segments.append(Segment(f"fold:{directory.name}", probabilities, m, settings, policy_prior_of(policy)))
    if not segments:
        raise SystemExit(f"no fold model under {allocator / 'models'}: run scripts/bench_power.py first")
    return segments


class StoredMembers:
    """Each fold's stored members' probabilities on its validation and test rows (read once), so
    that an ``ensemble.*`` axis refits the fold's blend and calibrator on the validation rows as the
    tuner's cheap group does (``fit_fold_ensemble``), without refitting a member."""

    def __init__(self, allocator: Path, segments: list[Segment]) -> None:
        self.folds: list[tuple[Segment, dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], pd.Index]] = []
        for segment in segments:
            name = segment.model_id.removeprefix("fold:")
            frame = read_parquet(allocator / "dataset" / "folds" / f"{name}.parquet")
            model = FoldModel.load(allocator / "models" / name)
            x_val, y_val = xy(frame, "val")
            test = split_rows(frame, "test")[feature_columns(frame)]
            self.folds.append(
                (segment, model.member_probabilities(x_val), y_val, model.member_probabilities(test), test.index)
            )

    def segments(self, settings: Settings) -> list[Segment]:
        out = []
        for segment, val_probs, y_val, test_probs, index in self.folds:
            ensemble = fit_ensemble(val_probs, y_val, settings.ensemble)
            probabilities = probability_frame(ensemble.predict(test_probs), index)
            probabilities[OUT_OF_RANGE_COLUMN] = segment.probabilities[OUT_OF_RANGE_COLUMN].to_numpy()
            out.append(replace(segment, probabilities=probabilities))
        return out


def replayed(
    segments: list[Segment], panel: pd.DataFrame, settings: Settings, cost_model: CostModel, w0: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The allocator's continuous path over the folds' stored segments under ``settings``, and its
    backtest (the run's cost model, the baseline book at the start, the settings' execution lag)."""
    path, _ = run_segments([replace(segment, settings=settings) for segment in segments], panel)
    decisions = pd.DataFrame({"w": path["w_final"], "exposure": path["exposure"]})
    bt = run_backtest(
        decisions, panel[list(RETURN_COLUMNS)], cost_model, (w0, 1.0 - w0), settings.backtest.execution_lag
    )
    return path, bt


def parse_grid(items: list[str]) -> list[dict[str, float | str]]:
    """``["policy.alpha=0.7,0.9", ...]`` -> every combination as ``{"policy.alpha": 0.7, ...}``."""
    axes: list[tuple[str, list[float | str]]] = []
    for item in items:
        name, _, values = item.partition("=")
        parsed: list[float | str] = []
        for v in values.split(","):
            try:
                parsed.append(float(v))
            except ValueError:
                parsed.append(v)
        axes.append((name.strip(), parsed))
    return [dict(zip([a for a, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def with_point(base: Settings, point: dict[str, float | str]) -> Settings:
    """``base`` with the point's fields, each section validated again (ranges, cross-field rules,
    and ``"false"`` read as a boolean), so a point outside the settings' domain is refused."""
    sections: dict[str, dict[str, float | str]] = {}
    for name, value in point.items():
        section, _, field = name.partition(".")
        sections.setdefault(section, {})[field] = value
    return base.model_copy(
        update={
            k: type(getattr(base, k)).model_validate({**getattr(base, k).model_dump(), **v})
            for k, v in sections.items()
        }
    )


def sweep_run(home: Path, base: Settings, grid: list[dict[str, float | str]]) -> list[dict]:
    allocator = home / "step3_out" / "allocator"
    panel = read_parquet(allocator / "dataset" / "leg_panel.parquet")
    strategies = read_json(allocator / "backtest" / "metrics.json")["strategies"]
    daily = read_parquet(allocator / "backtest" / "oos_daily.parquet").set_index("realized_ts")
    calmar_base = strategies["baseline"]["calmar"]
    drawdown_base = strategies["baseline"]["max_drawdown"]
    calmar_rule = strategies.get("planted_rule", {}).get("calmar", float("nan"))
    cost_model = CostModel.from_settings(base.costs)
    w0 = float(base.labels.baseline_weight)
    segments = fold_segments(allocator, base)  # read once; each setting only swaps the settings
    members = StoredMembers(allocator, segments) if any(k.startswith("ensemble.") for k in grid[0]) else None
    planted = read_planted(home / "planted") if (home / "planted").is_dir() else None
    rule = planted_rule(panel, planted)["w"] if planted is not None else None
    rows = []
    for point in grid:
        settings = with_point(base, point)
        path, bt = replayed(members.segments(settings) if members else segments, panel, settings, cost_model, w0)
        lag = settings.backtest.execution_lag

        def backtested(decisions: pd.DataFrame, lag: int = lag) -> pd.DataFrame:
            return run_backtest(decisions, panel[list(RETURN_COLUMNS)], cost_model, (w0, 1.0 - w0), lag)

        def daily_return(bt: pd.DataFrame) -> pd.Series:
            return bt.set_index("realized_ts")["ret"].reindex(daily.index)

        metrics = performance_metrics(bt, settings.report.notional)
        # the weight choice alone: w_smoothed fully invested, no envelope (the model_only ablation)
        bt_alone = backtested(pd.DataFrame({"w": path["w_smoothed"], "exposure": 1.0}))
        calmar_alone = performance_metrics(bt_alone, settings.report.notional)["calmar"]
        ret = daily_return(bt)
        # "envelope only" under the same settings, so that an envelope axis moves both sides
        folds = path.assign(fold=path["model_id"].astype(str).str.removeprefix("fold:"))
        settings_of = dict.fromkeys(folds["fold"].unique(), settings)
        bt_env = backtested(ablation_decisions(folds, settings_of, panel)["envelope_only"])
        when = pd.Series(daily.index, index=daily.index)
        vs_base = paired_bootstrap(ret, daily["ret_baseline"], when, BootstrapSettings())
        vs_env = paired_bootstrap(ret, daily_return(bt_env), when, BootstrapSettings())
        # the planted rule's weight through the point's envelope against the baseline: could a weight
        # choice as good as the rule pass the seed's two "beats the baseline" gates with this envelope?
        rule_lb = {"calmar": float("nan"), "avg_monthly_pnl": float("nan")}
        if rule is not None:
            bt_rule = backtested(envelope_decisions(rule.loc[folds.index], folds, settings_of, panel))
            vs_rule = paired_bootstrap(daily_return(bt_rule), daily["ret_baseline"], when, BootstrapSettings())
            rule_lb = {k: vs_rule[k]["lower"] for k in rule_lb}
        rows.append(
            {
                "run": home.name,
                **point,
                "calmar": metrics["calmar"],
                "calmar_vs_baseline": metrics["calmar"] - calmar_base,
                "share": (metrics["calmar"] - calmar_base) / (calmar_rule - calmar_base),
                "model_only_share": (calmar_alone - calmar_base) / (calmar_rule - calmar_base),
                "turnover": metrics["turnover"],
                "max_drawdown": metrics["max_drawdown"],
                "drawdown_cut": 1.0 - metrics["max_drawdown"] / drawdown_base,
                "lb_calmar_vs_baseline": vs_base["calmar"]["lower"],
                "lb_mpnl_vs_baseline_bp": vs_base["avg_monthly_pnl"]["lower"] * 1e4,
                "lb_calmar_increment": vs_env["calmar"]["lower"],
                "lb_mpnl_increment_bp": vs_env["avg_monthly_pnl"]["lower"] * 1e4,
                "envelope_only_calmar": performance_metrics(bt_env, settings.report.notional)["calmar"],
                "rule_envelope_lb_calmar_vs_baseline": rule_lb["calmar"],
                "rule_envelope_lb_mpnl_vs_baseline_bp": rule_lb["avg_monthly_pnl"] * 1e4,
                "rule_envelope_passes": None
                if rule is None
                else bool(rule_lb["calmar"] > 0 and rule_lb["avg_monthly_pnl"] > 0),
            }
        )
    own = [r for r in rows if all(r[k] == _value(base, k) for k in grid[0])]
    if own:
        print(
            f"{home.name}: the run's own settings give Calmar {own[0]['calmar']:.6f} and envelope only "
            f"{own[0]['envelope_only_calmar']:.6f}; metrics.json {strategies['allocator']['calmar']:.6f} and "
            f"{strategies['envelope_only']['calmar']:.6f}",
            flush=True,
        )
    return rows


def _value(settings: Settings, name: str) -> float | str:
    section, _, field = name.partition(".")
    value = getattr(getattr(settings, section), field)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--homes", required=True, help="run homes, comma-separated")
    parser.add_argument("--set", action="append", default=[], help="a grid axis: section.field=v1,v2 (repeatable)")
    parser.add_argument("--profile", default="default", help="the profile the runs used")
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    if not args.set:
        raise SystemExit("give at least one --set section.field=v1,v2")
    base = load_settings(profile=args.profile, environ={})
    grid = parse_grid(args.set)
    rows = []
    for name in (r.strip() for r in args.homes.split(",") if r.strip()):
        rows += sweep_run(Path(name), base, grid)
    table = pd.DataFrame(rows).pivot_table(
        index=list(grid[0]),
        columns="run",
        values=["model_only_share", "turnover", "drawdown_cut", "lb_calmar_increment", "lb_mpnl_increment_bp"],
        sort=True,
    )
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(table.round(3).to_string())
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
