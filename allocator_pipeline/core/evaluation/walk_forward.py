"""Walk-forward evaluation: one continuous out-of-sample backtest over all folds (docs/design.md 7-8).

The folds' test windows are adjacent blocks of sessions, decided on one continuous allocator
path (``core/allocation/path.py``), and backtested as ONE book: the book is continuous across
fold boundaries (the first
decision of a fold trades against the drifted book of the previous fold's last decision), and
the very first decision trades from the baseline book ``(baseline_weight, 1 - baseline_weight)``,
fully invested. Every baseline is backtested on the same sessions, from the same initial book,
with the same cost model. Per-fold metrics are computed on the continuous backtest's rows of
that fold (so a fold's first-day trade cost is the one the continuous book really paid).

``oos_daily`` (index ``decision_ts``; a row per decision that has a next session) holds
everything needed to recompute each metric by hand: ``realized_ts``, ``fold``, the allocator's
``w_raw, w_smoothed, w_final, exposure`` (decided) and ``w_executed, exposure_executed`` (held over
the next session: the decision of ``backtest.execution_lag`` sessions earlier), the next session's
``qqq_leg_return, spy_leg_return, cash_return``, the allocator's ``traded, cost``, ``ret_<strategy>`` for every strategy and, for
each baseline, ``w_<baseline>, traded_<baseline>, cost_<baseline>``; for each ablation
(``core/evaluation/ablations.py``) also ``exposure_<ablation>`` (all executed).

:func:`evaluate_walk_forward` adds the verdict's evidence: the block-bootstrap intervals of the
allocator's gain over the baseline (``core/evaluation/bootstrap.py``), the deflated Sharpe ratio
and PBO from the trial ledgers (``core/evaluation/overfitting.py``) and the return attribution
(``core/evaluation/attribution.py``), each recomputable from ``oos_daily`` and the ledgers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.fold_model import FoldModel, feature_columns, importance_of, split_rows
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.evaluation.ablations import ABLATIONS, ablation_decisions, envelope_variant_decisions
from allocator_pipeline.core.evaluation.attribution import attribution_summary
from allocator_pipeline.core.evaluation.backtest import RETURN_COLUMNS, BaselineKind, baseline_decisions, run_backtest
from allocator_pipeline.core.evaluation.bootstrap import paired_bootstrap
from allocator_pipeline.core.evaluation.comparisons import three_way_verdict
from allocator_pipeline.core.evaluation.gates import accepted, evaluate_gates, monotonic_sanity, traded_weight
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.core.evaluation.overfitting import load_trial_returns, overfitting_statistics
from allocator_pipeline.core.evaluation.retention import RULE_WINDOW, planted_rule, signal_retention
from allocator_pipeline.settings import Settings, tuned_settings

ALLOCATOR = "allocator"
BASELINES: tuple[BaselineKind, ...] = ("baseline", "qqq_only", "spy_only", "inverse_vol", "oracle")
STRATEGIES: tuple[str, ...] = (ALLOCATOR, *BASELINES)
PATH_COLUMNS = ("w_raw", "w_smoothed", "w_final", "exposure")
ENVELOPE_REPORT_COLUMNS = ("vol", "vol_target", "dd", "guard_level")
"""The envelope's own columns carried into ``oos_daily`` when the path has them (the report's envelope chart)."""
PLANTED_RULE = "planted_rule"
"""The transparent rule's strategy key when the Step 3 directory carries a planted signal."""
LAG_COMPARISON = (0, 1)
"""Execution lags (sessions) whose allocator and baseline headlines the report shows side by side."""


def _concat_fold_paths(fold_paths: dict[str, pd.DataFrame], context: pd.DataFrame) -> pd.DataFrame:
    if not fold_paths:
        raise InputDataError("no fold path to evaluate")
    ordered = []
    for fold, path in fold_paths.items():
        missing = [c for c in PATH_COLUMNS if c not in path.columns]
        if missing:
            raise InputDataError(f"allocator path of fold {fold} lacks a column", column=missing[0])
        if len(path) == 0:
            raise InputDataError(f"allocator path of fold {fold} is empty")
        ordered.append((path.index[0], fold, path))
    ordered.sort(key=lambda item: item[0])
    parts = []
    for _, fold, path in ordered:
        part = path[[*PATH_COLUMNS, *(c for c in ENVELOPE_REPORT_COLUMNS if c in path.columns)]].copy()
        part.insert(0, "fold", pd.array([str(fold)] * len(part), dtype="string"))
        parts.append(part)
    paths = pd.concat(parts)
    pos = context.index.get_indexer(paths.index)
    if (pos < 0).any():
        i = int(np.flatnonzero(pos < 0)[0])
        raise InputDataError(
            f"fold {paths['fold'].iloc[i]} decides on a session absent from the context",
            column="decision_ts",
            row=paths.index[i],
        )
    gaps = np.flatnonzero(np.diff(pos) != 1)
    if len(gaps):
        i = int(gaps[0]) + 1
        raise InputDataError(
            f"fold test windows must be adjacent and disjoint: fold {paths['fold'].iloc[i - 1]} ends at "
            f"{paths.index[i - 1]}, fold {paths['fold'].iloc[i]} continues at {paths.index[i]}",
            column="decision_ts",
            row=paths.index[i],
        )
    return paths


def strategy_frame(oos_daily: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """One strategy's rows of ``oos_daily`` in the ``run_backtest`` layout metrics expect.

    Columns: ``realized_ts, ret, r_cash, traded, cost`` (the allocator's ``traded``/``cost`` are
    the unsuffixed columns, a baseline's are ``traded_<baseline>``/``cost_<baseline>``).
    """
    suffix = "" if strategy == ALLOCATOR else f"_{strategy}"
    return pd.DataFrame(
        {
            "realized_ts": oos_daily["realized_ts"],
            "ret": oos_daily[f"ret_{strategy}"],
            "r_cash": oos_daily["cash_return"],
            "traded": oos_daily[f"traded{suffix}"],
            "cost": oos_daily[f"cost{suffix}"],
        },
        index=oos_daily.index,
    )


def walk_forward_metrics(oos_daily: pd.DataFrame, notional: float) -> dict[str, Any]:
    """``{"strategies": {strategy: metrics}, "folds": {fold: {strategy: metrics}}}`` of ``oos_daily``."""
    known = [s for s in (*STRATEGIES, *ABLATIONS) if f"ret_{s}" in oos_daily.columns]
    others = sorted(
        c[len("ret_") :] for c in oos_daily.columns if c.startswith("ret_") and c[len("ret_") :] not in known
    )
    strategies = known + others  # e.g. the transparent rule of a planted-signal run
    overall = {s: performance_metrics(strategy_frame(oos_daily, s), notional) for s in strategies}
    folds: dict[str, dict[str, Any]] = {}
    for fold in pd.unique(oos_daily["fold"].to_numpy()):
        rows = oos_daily[oos_daily["fold"] == fold]
        folds[str(fold)] = {s: performance_metrics(strategy_frame(rows, s), notional) for s in strategies}
    return {"strategies": overall, "folds": folds}


def assemble_walk_forward(
    fold_paths: dict[str, pd.DataFrame],
    context: pd.DataFrame,
    labels: pd.DataFrame,
    settings: Settings,
    inverse_vol_window: int = 63,
    ablations: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Continuous out-of-sample backtest of the allocator, every baseline and the ablations given.

    Parameters
    ----------
    fold_paths : dict
        fold -> allocator path of that fold's test window (``w_raw, w_smoothed, w_final,
        exposure``, indexed by ``decision_ts``). The windows must be adjacent and disjoint.
    context : DataFrame
        The leg panel (or any frame on its sessions) with ``qqq_leg_return``, ``spy_leg_return``,
        ``cash_return``, covering the test windows, the session after the last one, and (for the
        inverse-volatility warm-up) the history before them.
    labels : DataFrame
        ``best_weight`` per ``decision_ts`` (the oracle's hindsight path).
    settings : Settings
        ``costs``, ``labels.baseline_weight`` (static baseline and initial book), ``report.notional``.
    inverse_vol_window : int
        Trailing sessions of the inverse-volatility baseline.
    ablations : mapping, optional
        name -> decision frame (``w``, ``exposure`` on the allocator's sessions), backtested like
        the allocator (:func:`~allocator_pipeline.core.evaluation.ablations.ablation_decisions`).

    Returns
    -------
    oos_daily : DataFrame
        See the module docstring.
    metrics : dict
        ``{"strategies": {strategy: metrics}, "folds": {fold: {strategy: metrics}}}``.
    """
    paths = _concat_fold_paths(fold_paths, context)
    returns = context[list(RETURN_COLUMNS)]
    cost_model = CostModel.from_settings(settings.costs)
    bw = float(settings.labels.baseline_weight)
    book0 = (bw, 1.0 - bw)
    decisions = {ALLOCATOR: pd.DataFrame({"w": paths["w_final"], "exposure": paths["exposure"]})}
    for kind in BASELINES:
        decisions[kind] = baseline_decisions(
            paths.index, kind, returns, labels=labels, weight=bw, vol_window=inverse_vol_window
        )
    for name, frame in (ablations or {}).items():
        decisions[name] = frame.loc[paths.index, ["w", "exposure"]]
    lag = settings.backtest.execution_lag
    bts = {s: run_backtest(d, returns, cost_model, initial_book=book0, execution_lag=lag) for s, d in decisions.items()}
    alloc = bts[ALLOCATOR]
    if len(alloc) == 0:
        raise InputDataError("no out-of-sample decision has a next session to earn")
    head = paths.loc[alloc.index]
    oos = pd.DataFrame(
        {
            "realized_ts": alloc["realized_ts"],
            "fold": head["fold"],
            "w_raw": head["w_raw"].astype(float),
            "w_smoothed": head["w_smoothed"].astype(float),
            "w_final": head["w_final"].astype(float),
            "exposure": head["exposure"].astype(float),
            "qqq_leg_return": alloc["r_qqq"],
            "spy_leg_return": alloc["r_spy"],
            "cash_return": alloc["r_cash"],
            "w_executed": alloc["w"],
            "exposure_executed": alloc["exposure"],
            "traded": alloc["traded"],
            "cost": alloc["cost"],
        },
        index=alloc.index,
    )
    for column in ENVELOPE_REPORT_COLUMNS:
        if column in head.columns:
            oos[f"envelope_{column}"] = head[column].astype(float)
    oos["financing"] = alloc["financing"]
    for s in STRATEGIES:
        oos[f"ret_{s}"] = bts[s]["ret"]
    extra = [name for name in ABLATIONS if name in bts] + sorted(set(bts) - set(STRATEGIES) - set(ABLATIONS))
    for s in extra:
        oos[f"ret_{s}"] = bts[s]["ret"]
    for s in (*BASELINES, *extra):
        oos[f"w_{s}"] = bts[s]["w"]
        if s in extra:
            oos[f"exposure_{s}"] = bts[s]["exposure"]
        oos[f"traded_{s}"] = bts[s]["traded"]
        oos[f"cost_{s}"] = bts[s]["cost"]
    oos.index.name = "decision_ts"
    return oos, walk_forward_metrics(oos, settings.report.notional)


def calibration_summary(models: Mapping[str, FoldModel]) -> dict[str, dict[str, Any]]:
    """Per fold: the calibrator chosen, the blend weights, and the validation metrics and
    reliability data before and after calibration."""
    out: dict[str, dict[str, Any]] = {}
    for fold, model in sorted(models.items()):
        ens = model.ensemble.to_dict()
        out[fold] = {
            "chosen": ens["calibrator"].get("kind"),
            "weights": dict(zip(ens["member_names"], ens["weights"], strict=True)),
            "before": ens["metrics_before"],
            "after": ens["metrics_after"],
            "reliability": {"before": ens["reliability_before"], "after": ens["reliability_after"]},
        }
    return out


def evaluate_walk_forward(
    path: pd.DataFrame,
    models: Mapping[str, FoldModel],
    fold_datasets: Mapping[str, pd.DataFrame],
    fold_tuning: Mapping[str, dict[str, Any]],
    leg_panel: pd.DataFrame,
    utility_labels: pd.DataFrame,
    settings: Settings,
    planted: tuple[dict[str, Any], pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The walk-forward evaluation: the continuous out-of-sample book against the baselines, the
    gates and their verdict, and the diagnostics of every fold. ``path`` is the continuous
    allocator path (``core/allocation/path.py``) with its ``fold`` column.

    Returns ``(oos_daily, metrics)``; ``metrics`` holds the strategies' and folds' metrics (see
    :func:`assemble_walk_forward`; the ablations ``envelope_only`` and ``model_only`` among the
    strategies) plus ``accepted``, ``gates``, ``monotonic``, ``calibration``,
    ``importance`` (LightGBM gain share per fold), ``tuning`` (the folds whose study ran),
    ``execution_lag`` (the setting, and the allocator's and baseline's metrics at lags 0 and 1),
    ``bootstrap`` (intervals of the gain over the baseline), ``deflated_sharpe``, ``pbo``,
    ``attribution``, ``ablations`` (their names), ``comparisons`` (the three-way verdict,
    ``core/evaluation/comparisons.py``) and the run's ``settings``. The trial ledgers are
    read from the paths in ``fold_tuning`` (``trial_returns``). With ``planted`` (the
    ``synthetic.json`` content and signal of a ``synth-step3`` directory), ``planted_signal`` holds
    the stage retention (``core/evaluation/retention.py``) and the planted rule on the same
    columns is a strategy (``planted_rule``: its fixed 20-session window, same sessions, same costs;
    on the ``flip`` variant the rule that knows the condition).
    """
    fold_paths = {str(fold): rows for fold, rows in path.groupby("fold", sort=False, observed=True)}
    settings_of = {
        fold: tuned_settings(settings, (fold_tuning.get(fold) or {}).get("best_params", {})) for fold in fold_paths
    }
    ablations = ablation_decisions(path, settings_of, leg_panel)
    if planted is not None:  # on the sign-flip variant the rule that knows the condition
        ablations[PLANTED_RULE] = planted_rule(leg_panel, planted).loc[path.index]
    oos_daily, metrics = assemble_walk_forward(fold_paths, leg_panel, utility_labels, settings, ablations=ablations)
    by_lag: dict[str, dict[str, Any]] = {}
    for lag in LAG_COMPARISON:
        lagged = settings.model_copy(update={"backtest": settings.backtest.model_copy(update={"execution_lag": lag})})
        strategies = (
            metrics["strategies"]
            if lag == settings.backtest.execution_lag
            else assemble_walk_forward(fold_paths, leg_panel, utility_labels, lagged)[1]["strategies"]
        )
        by_lag[str(lag)] = {s: strategies[s] for s in (ALLOCATOR, "baseline")}
    importance = {fold: dict(sorted(importance_of(model.members).items())) for fold, model in sorted(models.items())}
    # at the raw choice and at the traded weight (policy and envelope), each fold with the settings it trades
    test_rows = {fold: split_rows(frame, "test")[feature_columns(frame)] for fold, frame in fold_datasets.items()}
    traded = {
        fold: traded_weight(model, leg_panel, settings_of[fold], hold_on=test_rows[fold])
        for fold, model in models.items()
    }
    monotonic = monotonic_sanity(models, fold_datasets, settings.gates.monotonic_features, traded, settings_of)
    importance_frame = pd.DataFrame({fold: pd.Series(v) for fold, v in importance.items()}).T
    bootstrap = paired_bootstrap(
        oos_daily["ret_allocator"], oos_daily["ret_baseline"], oos_daily["realized_ts"], settings.bootstrap
    )
    tuned = {fold: t for fold, t in sorted(fold_tuning.items()) if t.get("enabled")}
    n_trials = sum(int(t["n_trials"]["complete"]) + int(t["n_trials"]["pruned"]) for t in tuned.values())
    # the deflated Sharpe's subject: the weight choice fully invested over the baseline
    active = (oos_daily["ret_model_only"] - oos_daily["ret_baseline"]).to_numpy(dtype=float)
    overfitting = overfitting_statistics(active, load_trial_returns(tuned), n_trials, settings.gates.pbo_blocks)
    gates = evaluate_gates(
        metrics["strategies"],
        metrics["folds"],
        importance_frame.fillna(0.0),
        monotonic,
        settings.gates,
        bootstrap=bootstrap,
        overfitting={**overfitting, "tuned_folds": len(tuned)},
    )
    seed_accepted = accepted(gates)
    returns = leg_panel[list(RETURN_COLUMNS)]
    cost_model = CostModel.from_settings(settings.costs)
    book0 = (settings.labels.baseline_weight, 1.0 - settings.labels.baseline_weight)
    tradeoff = []
    for name, decisions in envelope_variant_decisions(path, settings_of, leg_panel).items():
        bt = run_backtest(decisions, returns, cost_model, book0, settings.backtest.execution_lag)
        m = performance_metrics(bt, settings.report.notional)
        tradeoff.append(
            {"variant": name, "mean_exposure": float(bt["exposure"].mean())}
            | {k: m[k] for k in ("max_drawdown", "avg_monthly_pnl", "calmar", "cagr")}
        )
    metrics.update(
        envelope_tradeoff=tradeoff,
        comparisons=three_way_verdict(oos_daily, seed_accepted, settings.bootstrap, settings.envelope.max_exposure),
        bootstrap=bootstrap,
        deflated_sharpe=overfitting["deflated_sharpe"],
        pbo=overfitting["pbo"],
        attribution=attribution_summary(oos_daily),
        ablations=[name for name in ABLATIONS if f"ret_{name}" in oos_daily.columns],
        accepted=seed_accepted,
        gates=gates,
        monotonic=monotonic,
        calibration=calibration_summary(models),
        importance=importance,
        tuning=tuned,
        execution_lag={"setting": settings.backtest.execution_lag, "strategies": by_lag},
        settings=settings.model_dump(mode="json"),
    )
    if planted is not None:
        meta, signal = planted
        metrics["planted_signal"] = {
            "generator": meta,
            "retention": signal_retention(path, signal, int(meta["horizon"])),
            "rule": PLANTED_RULE,
            "rule_window": RULE_WINDOW,
        }
    return oos_daily, metrics
