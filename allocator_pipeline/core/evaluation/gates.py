"""Acceptance gates (DESIGN.md section 8).

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
* ``monotonic_sanity``: max over the key risk features of the change of the mean predicted
  w_qqq when the feature rises -- <= 0; features absent from ``monotonic`` are listed and
  skipped, none present fails;
* ``deflated_sharpe``: the deflated Sharpe ratio of the allocator's out-of-sample returns
  (``core/evaluation/overfitting.py``) -- >= ``min_deflated_sharpe``;
* ``pbo``: the probability of backtest overfitting by CSCV over the trials' inner-block returns --
  <= ``max_pbo``; passes without a value when no fold was tuned (nothing was selected), fails when
  folds were tuned but no ledger holds two complete trials.

The last two are evaluated only when ``overfitting`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.fold_model import FoldModel, feature_columns
from allocator_pipeline.core.allocation.policy import expected_utility
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import BUCKETS
from allocator_pipeline.settings import GateSettings

ALLOCATOR = "allocator"
BASELINE = "baseline"


def _gate(
    name: str,
    value: float | None,
    threshold: float,
    passed: bool,
    detail: str,
    interval: tuple[float, float] | None = None,
) -> dict[str, Any]:
    clean = None if value is None or math.isnan(value) else float(value)  # +inf is kept
    return {
        "name": name,
        "value": clean,
        "threshold": float(threshold),
        "passed": bool(passed),
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
        f"annualised Sharpe over cash {d['sharpe_annualised']:.3f} vs SR0 {d['sr0_annualised']:.3f} expected "
        f"from the best of N = {d['n_trials']} trials (variance of their per-session Sharpe "
        f"{d['trial_sharpe_variance'] or 0:.3g}); T = {d['n_sessions']} sessions, skew {d['skewness']:.2f}, "
        f"kurtosis {d['kurtosis']:.2f}"
        if dsr is not None
        else "undefined (no spread of returns)"
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
        gates.append(_gate("pbo", None, settings.max_pbo, True, "no fold was tuned: nothing selected among trials"))
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

    present = {f: float(monotonic[f]) for f in settings.monotonic_features if f in monotonic}
    absent = [f for f in settings.monotonic_features if f not in monotonic]
    if not present:
        gates.append(_gate("monotonic_sanity", None, 0.0, False, f"no key risk feature measured (missing: {absent})"))
    else:
        worst = max(present.values()) if all(math.isfinite(v) for v in present.values()) else math.nan
        detail = ", ".join(f"{f}: {v:+.5f}" for f, v in present.items())
        if absent:
            detail += f"; not measured: {absent}"
        gates.append(
            _gate(
                "monotonic_sanity",
                worst,
                0.0,
                math.isfinite(worst) and worst <= 0.0,
                f"change of mean predicted w_qqq per +1 std: {detail}",
            )
        )
    if overfitting is not None:
        gates.extend(_overfitting_gates(overfitting, settings))
    return gates


def accepted(gates: list[dict[str, Any]]) -> bool:
    """True only when there is at least one gate and every gate passed."""
    return bool(gates) and all(bool(g["passed"]) for g in gates)


def monotonic_response(
    predict_w: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame, feature: str, bump_std: float = 1.0
) -> float:
    """Change of the mean predicted w_qqq when ``feature`` rises by ``bump_std`` standard deviations.

    ``mean(predict_w(X with feature + bump_std * std(feature))) - mean(predict_w(X))``, with the
    sample standard deviation (ddof = 1, NaNs skipped) of the feature over ``X``; NaN feature
    values stay NaN. Returns NaN when the feature has no spread.
    """
    if feature not in X.columns:
        raise InputDataError("feature not in the feature table", column=feature)
    std = float(X[feature].std(ddof=1))
    if not math.isfinite(std) or std == 0.0:
        return float("nan")
    bumped = X.copy()
    bumped[feature] = X[feature] + bump_std * std
    before = np.asarray(predict_w(X), dtype=float)
    after = np.asarray(predict_w(bumped), dtype=float)
    return float(np.mean(after) - np.mean(before))


def policy_weight(model: FoldModel) -> Callable[[pd.DataFrame], np.ndarray]:
    """Features -> the model's own choice (argmax expected utility), for the monotonic sanity gate:
    without the turnover charge, smoothing or the out-of-range hold, which would mask the model's
    response to a feature."""

    def predict(features: pd.DataFrame) -> np.ndarray:
        return BUCKETS[np.argmax(expected_utility(model.predict_proba(features), model.m), axis=1)]

    return predict


def monotonic_sanity(
    models: Mapping[str, FoldModel], fold_datasets: Mapping[str, pd.DataFrame], features: Iterable[str]
) -> dict[str, float]:
    """Mean over folds of the change in mean raw w_qqq on the fold's test rows when each key risk
    feature rises by one standard deviation (:func:`monotonic_response`); features a fold lacks
    are skipped."""
    changes: dict[str, list[float]] = {f: [] for f in features}
    for fold, frame in sorted(fold_datasets.items()):
        test = frame[frame["split"] == "test"][feature_columns(frame)]
        for feature in changes:
            if feature in test.columns:
                changes[feature].append(monotonic_response(policy_weight(models[fold]), test, feature))
    return {f: float(np.mean(v)) for f, v in changes.items() if v}
