"""Acceptance gates (docs/design.md section 8).

Each gate is a dict ``{name, value, threshold, passed, detail}``; the allocator is accepted only
when every gate passes (:func:`accepted`). The inputs are metric dicts of
:func:`allocator_pipeline.core.evaluation.metrics.performance_metrics` for the strategies ``allocator`` and
``baseline`` (out of sample over all folds, and per fold), the per-fold normalised LightGBM gain,
and the monotonic responses of the key risk features (:func:`monotonic_response`).

Gates (value -- rule); every gate also carries ``interval`` (``[lower, upper]`` or None):

* ``avg_monthly_pnl_vs_baseline``: allocator minus baseline avg_monthly_pnl -- with a bootstrap
  (``core/evaluation/bootstrap.py``) the interval's lower bound > 0, else the value > 0;
* ``calmar_vs_baseline``: allocator minus baseline Calmar -- the same rule (fails when either is
  undefined);
* ``max_drawdown_vs_baseline``: ``|allocator mdd| - |baseline mdd|`` -- <= ``max_dd_tolerance``;
* ``turnover``: allocator annualised turnover -- <= ``turnover_cap``;
* ``negative_fold_rate``: share of folds with allocator CAGR < 0 -- <= ``max_negative_fold_rate``;
* ``p25_fold_calmar``: 25th percentile (linear interpolation) of the folds' allocator Calmar, a
  fold without drawdown counting as +inf -- >= ``min_p25_fold_calmar``;
* ``importance_stability``: mean pairwise Spearman rank correlation of the folds' importance
  vectors (pairs with a constant vector skipped) -- >= ``min_importance_stability``; needs two
  folds;
* ``monotonic_sanity``: max over the measured risk features (``gates.monotonic_features`` and
  every leg volatility / downside volatility / drawdown input the fold models use, at the raw
  choice and, when measured, at the traded weight) of the change of the mean weight of the
  feature's own leg when the feature rises -- <= ``monotonic_tolerance``; configured features no fold uses are listed,
  none measured fails;
* ``deflated_sharpe``: the deflated Sharpe ratio of the allocator's weight choice over the
  baseline out of sample (``ret_model_only - ret_baseline``, ``core/evaluation/overfitting.py``)
  -- >= ``min_deflated_sharpe``; undefined (a weight that never leaves the baseline) fails;
* ``pbo``: the probability of backtest overfitting by CSCV over the trials' inner-block returns --
  <= ``max_pbo``; **not evaluated** (``passed`` None, ``evaluated`` false: neither a pass nor a
  failure, named by :func:`not_evaluated`) when no fold was tuned, fails when folds were tuned but
  no ledger holds two complete trials.

The last two are evaluated only when ``overfitting`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.evaluation.monotonic import (  # re-exported: the gate's inputs
    TRADED_SUFFIX,
    monotonic_response,
    monotonic_sanity,
    policy_weight,
    traded_weight,
)
from allocator_pipeline.core.features.risk import RISK_FEATURE, leg_sign, risk_features
from allocator_pipeline.settings import GateSettings

ALLOCATOR = "allocator"
BASELINE = "baseline"


def _gate(
    name: str,
    value: float | None,
    threshold: float,
    passed: bool | None,
    detail: str,
    interval: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """One gate; ``passed`` None: not evaluated (``evaluated`` false), neither a pass nor a failure."""
    clean = None if value is None or math.isnan(value) else float(value)  # +inf is kept
    return {
        "name": name,
        "value": clean,
        "threshold": float(threshold),
        "passed": None if passed is None else bool(passed),
        "evaluated": passed is not None,
        "detail": detail,
        "interval": None if interval is None else [float(interval[0]), float(interval[1])],
    }


def _beats_baseline(name: str, point: float, unit: str, detail: str, bootstrap: Mapping | None) -> dict[str, Any]:
    """A "beats the baseline" gate: on the bootstrap interval's lower bound when there is one."""
    b = (bootstrap or {}).get(unit)
    if bootstrap is None or not b or b.get("lower") is None or b.get("upper") is None:
        return _gate(name, point, 0.0, point > 0, detail + "; no bootstrap interval: passes on the point estimate")
    conf = float(bootstrap["confidence"])
    lo, hi = float(b["lower"]), float(b["upper"])
    detail += (
        f"; {conf:.0%} block-bootstrap interval [{lo:.6g}, {hi:.6g}] (mean block {bootstrap['block_length']} "
        f"sessions, {bootstrap['resamples']} resamples, {b['share_positive']:.0%} of them positive); "
        "passes when the lower bound > 0"
    )
    return _gate(name, point, 0.0, lo > 0, detail, (lo, hi))


def _overfitting_gates(overfitting: Mapping[str, Any], settings: GateSettings) -> list[dict[str, Any]]:
    d = overfitting["deflated_sharpe"]
    dsr = d.get("dsr")
    detail = (
        f"annualised Sharpe of the weight choice over the baseline {d['sharpe_annualised']:.3f} "
        f"vs SR0 {d['sr0_annualised']:.3f} expected "
        f"from the best of N = {d['n_trials']} trials (variance of their per-session Sharpe "
        f"{d['trial_sharpe_variance'] or 0:.3g}); T = {d['n_sessions']} sessions, skew {d['skewness']:.2f}, "
        f"kurtosis {d['kurtosis']:.2f}"
        if dsr is not None
        else "undefined: the weight choice never leaves the baseline (no spread of its returns over it)"
    )
    gates = [
        _gate(
            "deflated_sharpe",
            dsr,
            settings.min_deflated_sharpe,
            dsr is not None and dsr >= settings.min_deflated_sharpe,
            detail,
        )
    ]
    p = overfitting["pbo"]
    folds = p.get("folds") or {}
    per_fold = ", ".join(f"{f}: {v['pbo']:.2f}" for f, v in sorted(folds.items()))
    if p.get("value") is not None:
        detail = f"CSCV, S = {p['n_blocks']} blocks, mean over {len(folds)} folds ({per_fold})"
        gates.append(_gate("pbo", p["value"], settings.max_pbo, p["value"] <= settings.max_pbo, detail))
    elif not overfitting.get("tuned_folds"):
        gates.append(
            _gate(
                "pbo",
                None,
                settings.max_pbo,
                None,
                "not evaluated: no fold was tuned, so no trial ledger to run CSCV on (the research "
                "ledger's variants count in the deflated Sharpe's N only)",
            )
        )
    else:
        reasons = "; ".join(f"{f}: {r}" for f, r in sorted((p.get("skipped") or {}).items())) or "no trial ledger"
        gates.append(_gate("pbo", None, settings.max_pbo, False, f"undefined: {reasons}"))
    return gates


def _metric(metrics: dict[str, dict], strategy: str, key: str) -> float | None:
    if strategy not in metrics:
        raise InputDataError(f"no metrics for strategy {strategy!r}", column=key)
    value = metrics[strategy].get(key)
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _percentile_linear(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) that tolerates +inf values."""
    xs = sorted(values)
    pos = q / 100.0 * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    frac = pos - lo
    if lo == hi or frac == 0.0 or xs[hi] == xs[lo]:
        return xs[lo]
    return xs[lo] + (xs[hi] - xs[lo]) * frac


def importance_stability(importance: pd.DataFrame) -> tuple[float | None, int]:
    """Mean pairwise Spearman correlation of the rows of ``importance`` and the pairs used.

    Missing importances count as 0; pairs where a row is constant (undefined rank correlation)
    are skipped. ``None`` when no pair is usable.
    """
    values = importance.fillna(0.0).to_numpy(dtype=float)
    ranks = pd.DataFrame(values).rank(axis=1, method="average").to_numpy()
    corrs = []
    for i, j in combinations(range(len(ranks)), 2):
        a, b = ranks[i] - ranks[i].mean(), ranks[j] - ranks[j].mean()
        den = math.sqrt(float(a @ a) * float(b @ b))
        if den > 0:
            corrs.append(float(a @ b) / den)
    return (float(np.mean(corrs)) if corrs else None), len(corrs)


def evaluate_gates(
    overall: dict[str, dict],
    folds: dict[str, dict[str, dict]],
    importance: pd.DataFrame,
    monotonic: dict[str, float],
    settings: GateSettings,
    bootstrap: Mapping[str, Any] | None = None,
    overfitting: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every acceptance gate (rules in the module docstring).

    Parameters
    ----------
    overall : dict
        strategy -> metrics over the whole out-of-sample span (needs ``allocator``, ``baseline``).
    folds : dict
        fold -> strategy -> metrics of that fold's sessions.
    importance : DataFrame
        Rows folds, columns features, normalised gain (rows summing to 1).
    monotonic : dict
        feature -> change of the mean predicted w_qqq when the feature rises (``<= 0`` is sane).
    settings : GateSettings
    bootstrap : mapping, optional
        :func:`~allocator_pipeline.core.evaluation.bootstrap.paired_bootstrap` of the allocator
        against the baseline (the two "beats the baseline" gates pass on its lower bounds).
    overfitting : mapping, optional
        :func:`~allocator_pipeline.core.evaluation.overfitting.overfitting_statistics` plus
        ``tuned_folds`` (how many folds ran a study).

    Returns
    -------
    list of dict
        ``{name, value, threshold, passed, detail, interval}`` per gate, in the order above.
    """
    gates: list[dict[str, Any]] = []

    a_pnl, b_pnl = _metric(overall, ALLOCATOR, "avg_monthly_pnl"), _metric(overall, BASELINE, "avg_monthly_pnl")
    if a_pnl is None or b_pnl is None:
        gates.append(_gate("avg_monthly_pnl_vs_baseline", None, 0.0, False, "avg_monthly_pnl undefined"))
    else:
        detail = f"allocator {a_pnl:.6f} vs baseline {b_pnl:.6f} per month (fraction)"
        gates.append(
            _beats_baseline("avg_monthly_pnl_vs_baseline", a_pnl - b_pnl, "avg_monthly_pnl", detail, bootstrap)
        )

    a_cal, b_cal = _metric(overall, ALLOCATOR, "calmar"), _metric(overall, BASELINE, "calmar")
    if a_cal is None or b_cal is None:
        gates.append(
            _gate("calmar_vs_baseline", None, 0.0, False, f"Calmar undefined (allocator {a_cal}, baseline {b_cal})")
        )
    else:
        detail = f"allocator {a_cal:.4f} vs baseline {b_cal:.4f}"
        gates.append(_beats_baseline("calmar_vs_baseline", a_cal - b_cal, "calmar", detail, bootstrap))

    a_dd, b_dd = _metric(overall, ALLOCATOR, "max_drawdown"), _metric(overall, BASELINE, "max_drawdown")
    if a_dd is None or b_dd is None:
        gates.append(
            _gate("max_drawdown_vs_baseline", None, settings.max_dd_tolerance, False, "max drawdown undefined")
        )
    else:
        excess = abs(a_dd) - abs(b_dd)
        gates.append(
            _gate(
                "max_drawdown_vs_baseline",
                excess,
                settings.max_dd_tolerance,
                excess <= settings.max_dd_tolerance,
                f"|allocator mdd| {abs(a_dd):.4f} - |baseline mdd| {abs(b_dd):.4f}",
            )
        )

    turnover = _metric(overall, ALLOCATOR, "turnover")
    gates.append(
        _gate(
            "turnover",
            turnover,
            settings.turnover_cap,
            turnover is not None and turnover <= settings.turnover_cap,
            "annualised sum over legs of |target - drifted| weight",
        )
    )

    fold_names = sorted(folds)
    cagrs = [_metric(folds[f], ALLOCATOR, "cagr") for f in fold_names]
    if not fold_names or any(c is None for c in cagrs):
        gates.append(
            _gate("negative_fold_rate", None, settings.max_negative_fold_rate, False, "no folds or undefined fold CAGR")
        )
    else:
        negative = [f for f, c in zip(fold_names, cagrs, strict=True) if c is not None and c < 0]
        rate = len(negative) / len(fold_names)
        gates.append(
            _gate(
                "negative_fold_rate",
                rate,
                settings.max_negative_fold_rate,
                rate <= settings.max_negative_fold_rate,
                f"{len(negative)} of {len(fold_names)} folds negative: {negative}",
            )
        )

    calmars = []
    for f in fold_names:
        c = _metric(folds[f], ALLOCATOR, "calmar")
        calmars.append(c if c is not None else math.inf)  # no drawdown: the best possible fold
    if not calmars:
        gates.append(_gate("p25_fold_calmar", None, settings.min_p25_fold_calmar, False, "no folds"))
    else:
        p25 = _percentile_linear(calmars, 25.0)
        gates.append(
            _gate(
                "p25_fold_calmar",
                p25,
                settings.min_p25_fold_calmar,
                p25 >= settings.min_p25_fold_calmar,
                f"fold Calmar: {dict(zip(fold_names, [round(c, 4) for c in calmars]))}",
            )
        )

    stability, pairs = importance_stability(importance) if len(importance) >= 2 else (None, 0)
    gates.append(
        _gate(
            "importance_stability",
            stability,
            settings.min_importance_stability,
            stability is not None and stability >= settings.min_importance_stability,
            f"mean Spearman over {pairs} fold pairs of {len(importance)} folds"
            if stability is not None
            else f"needs >= 2 folds with varying importance ({len(importance)} folds)",
        )
    )

    present = {f: float(v) for f, v in monotonic.items() if math.isfinite(float(v))}
    undefined = [f for f, v in monotonic.items() if not math.isfinite(float(v))]
    absent = [f for f in settings.monotonic_features if f not in monotonic]
    if not present:
        gates.append(
            _gate(
                "monotonic_sanity",
                None,
                settings.monotonic_tolerance,
                False,
                f"no risk feature measured (configured, not measured: {absent}; no spread: {undefined})",
            )
        )
    else:
        worst = max(present.values())
        detail = ", ".join(f"{f}: {v:+.5f}" for f, v in present.items())
        if absent:
            detail += f"; configured, not used by any fold: {absent}"
        if undefined:
            detail += f"; no spread: {undefined}"
        gates.append(
            _gate(
                "monotonic_sanity",
                worst,
                settings.monotonic_tolerance,
                worst <= settings.monotonic_tolerance,
                "change of the mean weight of the feature's own leg (w_qqq for qqq_*, 1 - w_qqq for spy_*) per "
                "+1 std (the leg's other risk inputs moving with it), at the raw choice"
                + (f" and ({TRADED_SUFFIX}) the traded weight" if any(TRADED_SUFFIX in f for f in present) else "")
                + f": {detail}",
            )
        )
    if overfitting is not None:
        gates.extend(_overfitting_gates(overfitting, settings))
    return gates


def accepted(gates: list[dict[str, Any]]) -> bool:
    """True only when at least one gate was evaluated and every evaluated gate passed.

    A gate that was not evaluated (``evaluated`` false, ``passed`` None: PBO without tuning) is
    neither a pass nor a failure: it does not block, and :func:`not_evaluated` names it so that
    the verdict says what it could not test.
    """
    evaluated = [g for g in gates if g.get("evaluated", True)]
    return bool(evaluated) and all(g["passed"] is True for g in evaluated)


def not_evaluated(gates: list[dict[str, Any]]) -> list[str]:
    """Names of the gates that were not evaluated (reported beside the verdict, never as a pass)."""
    return [str(g["name"]) for g in gates if not g.get("evaluated", True)]


__all__ = [
    "ALLOCATOR",
    "BASELINE",
    "RISK_FEATURE",
    "TRADED_SUFFIX",
    "accepted",
    "evaluate_gates",
    "importance_stability",
    "leg_sign",
    "monotonic_response",
    "monotonic_sanity",
    "not_evaluated",
    "policy_weight",
    "risk_features",
    "traded_weight",
]
