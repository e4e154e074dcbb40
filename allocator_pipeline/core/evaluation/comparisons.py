"""The three-way verdict: what the envelope earns, what the model adds beyond it, and how it fares
against the simplest use of the user's own Step 3 confidence.

The seed's gates (``gates.py``) compare the allocator with the Step 3 baseline and decide
promotion. Once the risk envelope can earn on its own, an acceptance no longer says whether the
*model* found anything, so beside them every run reports, with the verdict's own paired
stationary block bootstrap (``bootstrap.py``, same block length, resamples, seed and confidence):

``envelope``
    ``envelope_only`` (the baseline weight through the allocator's envelope) against the baseline:
    does the risk envelope earn on its own?
``model_increment``
    the allocator against ``envelope_only``: does the weight choice add anything once the envelope
    is there? This is the comparison that says whether the model found skill in the Step 3 inputs.
``confidence_rule``
    the allocator against ``confidence_rule`` (``ablations.py``: the baseline weight tilted by the
    trailing mean of the QQQ-minus-SPY confidence spread, fixed parameters, same costs and
    envelope): does the model beat a rule a user can write in one line?

A comparison **passes** when the lower bounds of both intervals (Calmar and average monthly PnL,
``a`` minus ``b``) are above 0, the rule of the seed's two "beats the baseline" gates. A comparison
whose strategy is missing (no confidence columns for the rule) is reported as not evaluated.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from allocator_pipeline.core.evaluation.bootstrap import BOOTSTRAP_METRICS, paired_bootstrap
from allocator_pipeline.settings import BootstrapSettings

# name -> (strategy a, strategy b, the sentence when it passes, the sentence when it does not)
COMPARISONS: dict[str, tuple[str, str, str, str]] = {
    "envelope": (
        "envelope_only",
        "baseline",
        "the envelope earns on its own",
        "the envelope does not beat the baseline on its own",
    ),
    "model_increment": (
        "allocator",
        "envelope_only",
        "the model adds to the envelope",
        "the model adds nothing beyond the envelope",
    ),
    "confidence_rule": (
        "allocator",
        "confidence_rule",
        "the model beats the confidence rule",
        "the model does not beat the confidence rule",
    ),
}


def compare(oos_daily: pd.DataFrame, a: str, b: str, settings: BootstrapSettings) -> dict[str, Any] | None:
    """Paired bootstrap of strategy ``a`` minus ``b`` on ``oos_daily`` (``ret_<name>`` columns).

    Returns ``None`` when a column is missing, else ``{a, b, passed, calmar, avg_monthly_pnl}``
    with ``{point, lower, upper, share_positive}`` per metric (fractions; Calmar a ratio).
    """
    if f"ret_{a}" not in oos_daily.columns or f"ret_{b}" not in oos_daily.columns:
        return None
    boot = paired_bootstrap(oos_daily[f"ret_{a}"], oos_daily[f"ret_{b}"], oos_daily["realized_ts"], settings)
    out: dict[str, Any] = {"a": a, "b": b}
    lowers = []
    for m in BOOTSTRAP_METRICS:
        entry = boot[m]
        out[m] = {k: entry.get(k) for k in ("point", "lower", "upper", "share_positive")}
        lowers.append(entry.get("lower"))
    out["passed"] = all(lo is not None and lo > 0 for lo in lowers)
    return out


def three_way_verdict(
    oos_daily: pd.DataFrame, seed_accepted: bool, settings: BootstrapSettings, max_exposure: float
) -> dict[str, Any]:
    """Every comparison of the module docstring, the seed's verdict and a summary in words.

    Parameters
    ----------
    oos_daily : DataFrame
        The walk-forward evaluation's daily frame (``ret_allocator``, ``ret_baseline``,
        ``ret_envelope_only``, ``ret_confidence_rule``, ``realized_ts``).
    seed_accepted : bool
        The seed's gates' verdict (it alone decides promotion).
    settings : BootstrapSettings
        The verdict's bootstrap settings.
    max_exposure : float
        ``envelope.max_exposure`` (the summary says whether the envelope may borrow).

    Returns
    -------
    dict
        ``seed`` ({accepted}), one entry per :data:`COMPARISONS` name (None when not evaluated, else
        :func:`compare` plus ``sentence``), ``borrowing`` (a sentence) and ``summary`` (one line).
    """
    out: dict[str, Any] = {"seed": {"accepted": bool(seed_accepted)}}
    words = ["accepted by the seed's gates" if seed_accepted else "rejected by the seed's gates"]
    for name, (a, b, yes, no) in COMPARISONS.items():
        result = compare(oos_daily, a, b, settings)
        if result is None:
            out[name] = None
            words.append(f"{name.replace('_', ' ')} not evaluated ({a} or {b} missing)")
            continue
        result["sentence"] = yes if result["passed"] else no
        out[name] = result
        words.append(result["sentence"])
    out["borrowing"] = (
        f"gross exposure up to {max_exposure:g}, the part above 1 borrowed at the T-bill rate plus the financing spread"
        if max_exposure > 1
        else f"gross exposure up to {max_exposure:g}: no borrowing"
    )
    out["summary"] = "; ".join(words) + "."
    return out


def model_found_skill(comparisons: dict[str, Any]) -> bool:
    """A planted signal counts as found when the seed accepts and the model's increment passes."""
    inc = comparisons.get("model_increment")
    return bool(comparisons["seed"]["accepted"]) and bool(inc and inc["passed"])
