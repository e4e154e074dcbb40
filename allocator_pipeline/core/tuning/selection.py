"""Which trial of a fold's study trades: the defaults, unless a trial beats them as the allocator must beat the baseline.

A study's highest objective is an optimistic estimate: with a dozen trials scored on three inner
blocks, the top trial is partly the luckiest one. So the highest trial replaces the run's own
parameters (the ``defaults`` trial, enqueued first) only on evidence of the kind the verdict asks of the
allocator against the baseline (``tuning.selection = "beats_defaults"``, the default):

* the two trials' daily net returns on the inner held-out blocks (the trial-returns ledger,
  ``trial_<n>``; the blocks one after the other, their sessions ``realized_ts``), paired session by
  session;
* the verdict's paired stationary block bootstrap (``core/evaluation/bootstrap.py``, the
  ``bootstrap`` settings: mean block, resamples, seed, confidence) of ``metric(highest) -
  metric(defaults)`` for the Calmar ratio and the average monthly PnL;
* the intervals are those of the best of ``k`` candidates (the complete trials but the defaults;
  a pruned trial cannot be adopted): the bootstrap's one-sided error level, ``(1 -
  bootstrap.confidence) / 2`` (5% at the default 0.90), is split over the ``k`` (Bonferroni), so
  the chance that any of ``k`` trials no better than the defaults is adopted stays at most that
  level. With many trials the split level reaches the bootstrap's tail (``bootstrap.resamples``
  2000 and ``k`` 59 put the bound near the second-smallest resample): raise the resamples with
  the trial budget;
* the candidate is the highest objective among the trials that trade no more than the turnover
  gate allows or the defaults do: mean inner-block turnover at most ``max(tuning.turnover_cap,
  the defaults')`` (a trial that earns more on the inner blocks by trading twice the cap would
  fail the verdict's turnover gate out of sample);
* the candidate trades when **both lower bounds are above 0**, else the defaults do.

This is the one-standard-error idea (Breiman et al. 1984; Hastie, Tibshirani and Friedman, *The
Elements of Statistical Learning*, 2nd ed., section 7.10: keep the simpler model unless the
better one is clearly better) with the uncertainty taken from the inner sessions rather than from
two or three block scores, and for the search: on pure-noise fixtures a paired t-statistic above 1
over the three block scores let the study replace the defaults in 7 to 9 of 18 folds, the
bootstrap without the split over ``k`` in 3 to 6, with it in 0 to 2 (docs/research.md).

``"highest"`` trades the highest objective whatever its margin (ties go to the earliest trial, the
defaults). Either way the ledger, the trial returns, PBO and the deflated Sharpe see every trial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from optuna.trial import FrozenTrial

from allocator_pipeline.core.evaluation.bootstrap import paired_bootstrap
from allocator_pipeline.settings import Settings

__all__ = ["TrialSelection", "mean_turnover", "select_trial"]

METRICS = ("calmar", "avg_monthly_pnl")
BOUNDS = ("point", "lower", "upper")


def _fmt(x: float | None) -> str:
    return "undefined" if x is None else f"{x:+.4g}"


@dataclass(frozen=True)
class TrialSelection:
    """The trial a fold trades and why. ``candidate``: the trial that had to beat the defaults (the
    highest objective within the turnover budget; the highest objective under ``"highest"``);
    ``evidence``: its bootstrap over the defaults (``{metric: {point, lower, upper}}``; empty when
    it was not needed)."""

    rule: str
    chosen: FrozenTrial
    candidate: FrozenTrial
    evidence: dict[str, dict[str, float | None]]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "chosen_trial": self.chosen.number,
            "chosen_role": self.chosen.user_attrs.get("role", "tpe"),
            "candidate_trial": self.candidate.number,
            "candidate_value": float(cast(float, self.candidate.value)),
            "evidence": self.evidence,
            "reason": self.reason,
        }


def _highest(trials: Sequence[FrozenTrial]) -> FrozenTrial:
    return max(trials, key=lambda t: (cast(float, t.value), -t.number))  # ties: the earliest (the defaults)


def mean_turnover(trial: FrozenTrial) -> float:
    """A trial's annualised turnover averaged over its inner blocks (``inner_metrics``); inf when
    it has none recorded."""
    blocks = trial.user_attrs.get("inner_metrics") or []
    return float(np.mean([float(m["turnover"]) for m in blocks])) if blocks else float("inf")


def select_trial(
    complete: Sequence[FrozenTrial], returns: Mapping[int, np.ndarray], realized_ts: pd.Series, settings: Settings
) -> TrialSelection:
    """The trial to trade among a study's complete trials, by ``settings.tuning.selection``.

    Parameters
    ----------
    complete : sequence of FrozenTrial
        The study's complete trials (the defaults trial has user attribute ``role`` ``defaults``).
    returns : mapping of int to ndarray, shape (n,)
        Per trial number, its daily net returns (fractions) on the inner held-out blocks, earned in
        the sessions ``realized_ts`` (the trial-returns ledger's ``trial_<number>``).
    realized_ts : Series, shape (n,)
        The sessions (tz-aware UTC), sorted.
    settings : Settings
        ``tuning.selection`` and the ``bootstrap`` section.
    """
    if not complete:
        raise ValueError("no complete trial to select from")
    rule = settings.tuning.selection
    defaults = next((t for t in complete if t.user_attrs.get("role") == "defaults"), None)
    if rule == "highest" or defaults is None:
        highest = _highest(complete)
        why = "the highest objective" if defaults is not None else "no defaults trial completed: the highest objective"
        return TrialSelection(rule, highest, highest, {}, why)
    budget = max(settings.tuning.turnover_cap, mean_turnover(defaults))
    within = [t for t in complete if t is defaults or mean_turnover(t) <= budget]
    candidate = _highest(within)
    if candidate is defaults:
        why = f"the defaults have the highest objective of the trials trading at most {budget:.3g} a year"
        return TrialSelection(rule, defaults, candidate, {}, why)
    if candidate.number not in returns or defaults.number not in returns:
        return TrialSelection(rule, defaults, candidate, {}, "no inner returns recorded to compare: the defaults")
    a, b = (np.asarray(returns[t.number], dtype=float) for t in (candidate, defaults))
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return TrialSelection(rule, defaults, candidate, {}, "non-finite inner returns to compare: the defaults")
    # the best of k candidates (the complete trials but the defaults): the one-sided level split over the k (Bonferroni)
    alpha = (1.0 - settings.bootstrap.confidence) / 2.0 / (len(complete) - 1)
    family = settings.bootstrap.model_copy(update={"confidence": 1.0 - 2.0 * alpha})
    boot = paired_bootstrap(a, b, realized_ts, family)
    # a bound is None when the metric is undefined on every resample (a Calmar without a drawdown): no evidence
    evidence = {m: {k: None if boot[m][k] is None else float(boot[m][k]) for k in BOUNDS} for m in METRICS}
    shown = ", ".join(
        f"{m} {_fmt(evidence[m]['point'])} [{_fmt(evidence[m]['lower'])}, {_fmt(evidence[m]['upper'])}]"
        for m in METRICS
    )
    lowers = [evidence[m]["lower"] for m in METRICS]
    if all(lower is not None and lower > 0 for lower in lowers):
        return TrialSelection(
            rule, candidate, candidate, evidence, f"trial {candidate.number} beats the defaults: {shown}"
        )
    why = f"trial {candidate.number} does not beat the defaults on the inner blocks: {shown}"
    return TrialSelection(rule, defaults, candidate, evidence, why)
