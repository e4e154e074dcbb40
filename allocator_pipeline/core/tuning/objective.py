"""One parameter set on a fold's inner walk-forward splits, and the robust objective.

For each inner split, in order (the split's ``train``/``val``/``test`` rows come from
``core/folds.fold_dataset(..., inner=k)``; the ``test`` rows are the inner held-out block):

1. the members are fitted on ``train`` and early-stopped on ``val`` (``fit_fold_members``), the
   blend and calibrator are fitted on the ``val`` probabilities (``fit_ensemble``) and the policy's
   utility matrix ``M`` on ``train`` + ``val`` (``policy_matrix``): exactly what ``fit_fold`` does;
2. the held-out block is predicted and traded: ``fold_path`` (policy + envelope, fresh state from
   the baseline weight), ``run_backtest`` with the leg panel's returns (each decision earns the next
   session; the last decision of a block earns the session right after it, still inside the outer
   fold's training region), and ``performance_metrics``.

Members depend only on the split, the model settings and the labels, so their validation and
held-out probabilities are cached (:class:`InnerFitCache`): a trial changing only the ensemble,
policy or envelope parameters refits nothing; what it does not hold comes from the home's fit store
(``core/tuning/fit_cache.py``) when there is one, so another fold or run sharing the split does not
fit it again either. Label parameters (``labels.lambda_dd``,
``labels.lambda_tc``) recompute the utility labels with :func:`relabel_frame`, on the leg panel cut
``H`` sessions after the split's last row, so nothing after that row + H is read (for an inner
split that is still before the outer test window, because the outer purge is >= H).

The robust objective (:data:`OBJECTIVE_FORMULA`) is maximised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from allocator_pipeline.core.allocation.fold_model import (
    SPLIT_COLUMN,
    fold_path,
    policy_matrix,
    policy_prior,
    probability_frame,
)
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import OUT_OF_RANGE_COLUMN
from allocator_pipeline.core.ensemble.blend import fit_ensemble
from allocator_pipeline.core.evaluation.backtest import RETURN_COLUMNS, baseline_decisions, run_backtest
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.core.labels.utility import utility_labels
from allocator_pipeline.core.tuning.fit_cache import FitStore, MemberOutputs, member_outputs
from allocator_pipeline.core.tuning.space import MEMBER_SECTIONS, tunes_labels
from allocator_pipeline.settings import Settings, TuningSettings, tuned_settings

__all__ = [
    "CALMAR_DD_FLOOR",
    "INNER_METRICS",
    "OBJECTIVE_FORMULA",
    "InnerFitCache",
    "evaluate_params",
    "inner_calmar",
    "objective_terms",
    "relabel_frame",
    "robust_objective",
]

CALMAR_DD_FLOOR = 0.01
"""Drawdown floor (fraction) of the objective's Calmar: ``cagr / max(|max_drawdown|, 0.01)``."""
INNER_METRICS: tuple[str, ...] = ("calmar", "cagr", "avg_monthly_pnl", "max_drawdown", "turnover", "sharpe")
"""Per-inner-split metrics kept in the trial ledger (``calmar`` as ``performance_metrics`` gives it)."""

OBJECTIVE_FORMULA = (
    "objective = w_calmar * median_i(C_i) + w_monthly_pnl * mean_i(avg_monthly_pnl_i)"
    " - w_dd_penalty * mean_i(max(0, |max_drawdown_i| - dd_cap))"
    " - w_turnover_penalty * mean_i(max(0, turnover_i - turnover_cap))"
    " - w_tail_penalty * (median_i(C_i) - min_i(C_i)),"
    " where i runs over the inner held-out blocks, C_i = cagr_i / max(|max_drawdown_i|, 0.01)"
    " (Calmar with a 1% drawdown floor: defined when a block has no drawdown, and a near-flat block"
    " cannot dominate), avg_monthly_pnl and drawdowns are fractions of capital, turnover is annualised"
    " (sum over legs of |traded weight| per year); weights and caps are settings.tuning.*; maximised"
)


def inner_calmar(metrics: Mapping[str, Any], dd_floor: float = CALMAR_DD_FLOOR) -> float:
    """``cagr / max(|max_drawdown|, dd_floor)`` of one inner block (see :data:`OBJECTIVE_FORMULA`)."""
    cagr, mdd = metrics.get("cagr"), metrics.get("max_drawdown")
    if cagr is None or mdd is None:
        missing = "cagr" if cagr is None else "max_drawdown"
        raise ValueError(f"inner-split metrics lack {missing!r} (a performance_metrics dict is expected)")
    return float(cagr) / max(abs(float(mdd)), dd_floor)


def objective_terms(
    inner: Sequence[Mapping[str, Any]], settings: TuningSettings, dd_floor: float = CALMAR_DD_FLOOR
) -> dict[str, float]:
    """The signed terms of the robust objective (their sum is :func:`robust_objective`).

    Keys: ``calmar`` (w_calmar * median C), ``monthly_pnl``, ``dd_penalty``, ``turnover_penalty``,
    ``tail_penalty`` (penalties negative), plus the raw ``median_calmar`` and ``min_calmar`` (not
    summed).
    """
    if not inner:
        raise ValueError("the robust objective needs at least one inner split")
    calmar = np.array([inner_calmar(m, dd_floor) for m in inner])
    pnl = np.array([float(m["avg_monthly_pnl"]) for m in inner])
    dd = np.abs(np.array([float(m["max_drawdown"]) for m in inner]))
    turnover = np.array([float(m["turnover"]) for m in inner])
    median = float(np.median(calmar))
    minimum = float(calmar.min())
    return {
        "calmar": settings.w_calmar * median,
        "monthly_pnl": settings.w_monthly_pnl * float(pnl.mean()),
        "dd_penalty": -settings.w_dd_penalty * float(np.maximum(0.0, dd - settings.dd_cap).mean()),
        "turnover_penalty": -settings.w_turnover_penalty
        * float(np.maximum(0.0, turnover - settings.turnover_cap).mean()),
        "tail_penalty": -settings.w_tail_penalty * (median - minimum),
        "median_calmar": median,
        "min_calmar": minimum,
    }


_SUMMED = ("calmar", "monthly_pnl", "dd_penalty", "turnover_penalty", "tail_penalty")


def robust_objective(
    inner: Sequence[Mapping[str, Any]], settings: TuningSettings, dd_floor: float = CALMAR_DD_FLOOR
) -> float:
    """The tuner's objective over inner-split metric dicts (:data:`OBJECTIVE_FORMULA`), maximised.

    Parameters
    ----------
    inner : sequence of dict
        One ``performance_metrics`` dict per inner held-out block (uses ``cagr``,
        ``max_drawdown`` (<= 0), ``avg_monthly_pnl`` (fraction), ``turnover`` (per year)).
    settings : TuningSettings
        Weights ``w_*`` and caps ``dd_cap`` (fraction), ``turnover_cap`` (per year).
    dd_floor : float
        Drawdown floor of each block's Calmar (fraction).
    """
    terms = objective_terms(inner, settings, dd_floor)
    return float(sum(terms[k] for k in _SUMMED))


def fold_training_inputs(
    settings: Settings,
    fold_tuning: Mapping[str, Any],
    fold_dataset: pd.DataFrame,
    leg_panel: pd.DataFrame,
    utility_table: pd.DataFrame,
) -> tuple[Settings, pd.DataFrame, pd.DataFrame]:
    """What a fold trains with: the run's settings with the fold's tuned parameters applied (none
    when tuning is off), and the fold frame and utility table, relabelled when tuning changed the
    label lambdas (``labels.*``), else the run-wide ones."""
    params = fold_tuning.get("best_params", {})
    s = tuned_settings(settings, params)
    if tunes_labels(params):
        frame, utilities = relabel_frame(fold_dataset, leg_panel, s)
        return s, frame, utilities
    return s, fold_dataset, utility_table


def relabel_frame(frame: pd.DataFrame, panel: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A fold frame with its ``label_class`` / ``best_weight`` recomputed for ``settings.labels``.

    The labels are computed by ``utility_labels`` on the leg panel cut ``H`` sessions after the
    frame's last row: every frame row gets the label the whole panel would give it, and nothing
    later than that is read. The frame's rows do not change (which sessions are labelled does not
    depend on the lambdas).

    Returns
    -------
    (frame, utilities) : tuple of DataFrame
        The relabelled copy, and the utility table of the cut panel (for ``policy_matrix``).
    """
    last = panel.index.get_indexer([frame.index[-1]])[0]
    if last < 0:
        raise InputDataError("a fold row is missing from the leg panel", column="decision_ts", row=frame.index[-1])
    cut = panel.iloc[: last + settings.labels.horizon + 1]
    labels, utilities = utility_labels(cut, settings.labels, CostModel.from_settings(settings.costs))
    out = frame.copy()
    out["label_class"] = labels["label_class"].reindex(frame.index).astype("Int64")
    out["best_weight"] = labels["best_weight"].reindex(frame.index).astype(np.float64)
    fit = out[SPLIT_COLUMN].isin(["train", "val"])
    if out.loc[fit, "label_class"].isna().any():  # impossible with a sound plan (purge >= H)
        row = out.index[fit & out["label_class"].isna()][0]
        raise InputDataError("a train/val row has no label after relabelling", column="label_class", row=row)
    return out, utilities


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


@dataclass
class InnerFitCache:
    """Member outputs, relabelled frames, utility matrices and class priors reused across trials of one study.

    Keys hold every setting the cached value depends on (split number, model settings, label and
    cost settings), so a hit is always the value a fresh computation would give. Member outputs
    missing here come from ``store`` (:class:`~allocator_pipeline.core.tuning.fit_cache.FitStore`,
    shared by the folds and runs of a home) when one is given, else they are fitted.
    """

    members: dict[tuple[int, str], MemberOutputs] = field(default_factory=dict)
    frames: dict[tuple[int, str], tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    matrices: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    max_member_entries: int = 64
    store: FitStore | None = None
    fitted: int = 0
    """Member fits computed through this cache (the store's misses, or every fit without a store)."""

    def remember(self, key: tuple[int, str], outputs: MemberOutputs) -> None:
        if len(self.members) >= self.max_member_entries:  # drop the oldest (insertion order)
            self.members.pop(next(iter(self.members)))
        self.members[key] = outputs

    def member_outputs(self, frame: pd.DataFrame, settings: Settings, utilities: pd.DataFrame) -> MemberOutputs:
        """Outputs of a fit this cache does not hold: from the store, or fitted."""
        if self.store is None:
            self.fitted += 1
            return member_outputs(frame, settings, utilities)
        misses = self.store.misses
        outputs = self.store.outputs(frame, settings, utilities)
        self.fitted += self.store.misses - misses
        return outputs


def _labels_key(settings: Settings) -> str:
    return _key({"labels": settings.labels.model_dump(mode="json"), "costs": settings.costs.model_dump(mode="json")})


def _members_key(settings: Settings) -> str:
    return _key({section: getattr(settings, section).model_dump(mode="json") for section in MEMBER_SECTIONS})


def _split_inputs(
    k: int,
    frame: pd.DataFrame,
    utilities: pd.DataFrame,
    context: pd.DataFrame,
    base: Settings,
    s: Settings,
    cache: InnerFitCache,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    labels_key = _labels_key(s)
    if labels_key == _labels_key(base):
        return frame, utilities, labels_key
    if (k, labels_key) not in cache.frames:
        cache.frames[(k, labels_key)] = relabel_frame(frame, context, s)
    relabelled, table = cache.frames[(k, labels_key)]
    return relabelled, table, labels_key


def evaluate_split(
    k: int,
    frame: pd.DataFrame,
    utilities: pd.DataFrame,
    context: pd.DataFrame,
    base: Settings,
    s: Settings,
    cache: InnerFitCache,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit, predict, trade and measure one inner split: the ``performance_metrics`` dict and the
    block's daily returns (``realized_ts``, ``ret`` net of costs, ``r_cash``, and ``active``: the
    weight choice ``w_smoothed`` fully invested minus the baseline book, both net of costs, the
    deflated Sharpe's subject on this block; one row per session)."""
    frame, table, labels_key = _split_inputs(k, frame, utilities, context, base, s, cache)
    member_key = (k, _members_key(s))
    outputs = cache.members.get(member_key)
    if outputs is None:
        outputs = cache.member_outputs(frame, s, table)
        cache.remember(member_key, outputs)
    ensemble = fit_ensemble(outputs.val, outputs.y_val, s.ensemble)
    proba = probability_frame(ensemble.predict(outputs.test), outputs.test_index)
    proba[OUT_OF_RANGE_COLUMN] = outputs.test_out_of_range
    if (k, labels_key) not in cache.matrices:
        cache.matrices[(k, labels_key)] = (policy_matrix(frame, table), policy_prior(frame))
    m, prior = cache.matrices[(k, labels_key)]
    path = fold_path(proba, m, context, s, prior)
    first, last = context.index.get_indexer([path.index[0], path.index[-1]])
    returns = context.iloc[first : last + 2][list(RETURN_COLUMNS)]  # the block and the session after it
    decisions = path[["w_final", "exposure"]].rename(columns={"w_final": "w"})
    bw = s.labels.baseline_weight  # a fresh block starts from the baseline book, as the envelope assumes
    cost, book, lag = CostModel.from_settings(s.costs), (bw, 1.0 - bw), s.backtest.execution_lag
    backtest = run_backtest(decisions, returns, cost, book, lag)
    alone = run_backtest(pd.DataFrame({"w": path["w_smoothed"], "exposure": 1.0}), returns, cost, book, lag)
    held = run_backtest(baseline_decisions(path.index, "baseline", returns, weight=bw), returns, cost, book, lag)
    block = backtest[["realized_ts", "ret", "r_cash"]].reset_index(drop=True)
    block["active"] = (alone["ret"] - held["ret"]).to_numpy()
    return performance_metrics(backtest, s.report.notional), block


def evaluate_params(
    params: Mapping[str, Any],
    inner_frames: Sequence[pd.DataFrame],
    utilities: pd.DataFrame,
    context: pd.DataFrame,
    settings: Settings,
    trial: optuna.trial.Trial | None = None,
    cache: InnerFitCache | None = None,
) -> dict[str, Any]:
    """Evaluate one parameter set on every inner split, in order, with pruning.

    Parameters
    ----------
    params : mapping
        Dotted settings fields and values (see ``core/tuning/space.py``); ``{}``: the run's own
        settings.
    inner_frames : sequence of DataFrame
        ``fold_dataset(features, labels, plan, fold, inner=k)`` for k = 0, 1, ... (chronological).
    utilities : DataFrame
        The utility table of the run's labels (``UTILITY_COLUMNS`` by decision_ts).
    context : DataFrame
        The leg panel (returns, cash, drift columns) by decision_ts.
    settings : Settings
        The run's settings (the base the parameters apply to; ``tuning`` holds the objective).
    trial : optuna.trial.Trial, optional
        Receives, after split k, the objective of splits 0..k at step k; a pruned trial gets the
        metrics so far as user attribute ``inner_metrics`` (and the blocks' daily net returns as
        ``inner_returns``, their weight choice over the baseline as ``inner_active``, lists of
        lists) and raises ``optuna.TrialPruned``.
    cache : InnerFitCache, optional
        Reuse of member outputs across calls (a private one when None).

    Returns
    -------
    dict
        ``objective`` (float), ``terms`` (:func:`objective_terms`), ``inner`` (one metrics dict per
        split, keys :data:`INNER_METRICS` plus ``start``/``end``), ``returns`` (one frame per split:
        ``realized_ts``, ``ret``, ``r_cash``, ``active``, the held-out block's daily returns).
    """
    if not inner_frames:
        raise ValueError("evaluate_params needs at least one inner split")
    s = tuned_settings(settings, params)
    cache = cache if cache is not None else InnerFitCache()
    inner: list[dict[str, Any]] = []
    blocks: list[pd.DataFrame] = []
    for k, frame in enumerate(inner_frames):
        metrics, block = evaluate_split(k, frame, utilities, context, settings, s, cache)
        inner.append({key: metrics[key] for key in (*INNER_METRICS, "start", "end")})
        blocks.append(block)
        if trial is not None:
            trial.report(robust_objective(inner, settings.tuning), step=k)
            if k < len(inner_frames) - 1 and trial.should_prune():
                trial.set_user_attr("inner_metrics", inner)
                trial.set_user_attr("inner_returns", [b["ret"].tolist() for b in blocks])
                trial.set_user_attr("inner_active", [b["active"].tolist() for b in blocks])
                raise optuna.TrialPruned(f"pruned after inner split {k}")
    terms = objective_terms(inner, settings.tuning)
    return {"objective": float(sum(terms[k] for k in _SUMMED)), "terms": terms, "inner": inner, "returns": blocks}
