"""The rule that picks the trial a fold trades (core/tuning/selection.py).

Trials are built by hand with known daily returns on the inner blocks, so each expected choice
follows from the returns: a trial that earns the defaults' return plus a constant every session
has a higher Calmar (every window's compounded return is higher: the drawdown is no deeper, the
CAGR higher) and a higher monthly PnL in every month, so in every bootstrap resample too; a trial
whose returns are the defaults' plus zero-mean noise much larger than any mean cannot show a gain.
"""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from allocator_pipeline.core.tuning.selection import select_trial
from allocator_pipeline.settings import Settings

N = 756  # three one-year inner blocks
SESSIONS = pd.Series(pd.bdate_range("2015-01-02", periods=N, tz="UTC"))
SETTINGS = Settings()
RNG = np.random.default_rng(5)
DEFAULTS = RNG.normal(0.0004, 0.01, N)


def _study(
    values: list[float], roles: list[str], turnover: list[float] | None = None
) -> list[optuna.trial.FrozenTrial]:
    """Complete trials numbered 0, 1, ... with these objective values and roles; ``turnover``: each
    trial's annualised turnover on its three inner blocks (default 5 a year)."""
    study = optuna.create_study(direction="maximize")
    for k, (value, role) in enumerate(zip(values, roles, strict=True)):
        per_block = 5.0 if turnover is None else turnover[k]
        study.add_trial(
            create_trial(
                value=value,
                params={"x": float(k)},
                distributions={"x": FloatDistribution(0.0, 100.0)},
                user_attrs={"role": role, "inner_metrics": [{"turnover": per_block}] * 3},
            )
        )
    return study.get_trials()


def test_a_trial_better_on_every_session_replaces_the_defaults():
    trials = _study([1.0, 1.4, 1.2], ["defaults", "tpe", "tpe"])
    returns = {0: DEFAULTS, 1: DEFAULTS + 0.0005, 2: DEFAULTS}
    chosen = select_trial(trials, returns, SESSIONS, SETTINGS)
    assert chosen.chosen.number == 1 and chosen.candidate.number == 1
    assert chosen.evidence["calmar"]["lower"] > 0 and chosen.evidence["avg_monthly_pnl"]["lower"] > 0
    # the point estimate of the monthly PnL gain is the constant compounded over a month, about 21 x 0.05%
    assert chosen.evidence["avg_monthly_pnl"]["point"] == pytest.approx(21 * 0.0005, rel=0.1)
    assert chosen.reason.startswith("trial 1 beats the defaults")


def test_a_lucky_top_objective_without_a_gain_on_the_inner_returns_keeps_the_defaults():
    trials = _study([1.0, 1.4], ["defaults", "tpe"])
    noise = np.random.default_rng(6).normal(0.0, 0.02, N)
    chosen = select_trial(trials, {0: DEFAULTS, 1: DEFAULTS + noise - noise.mean()}, SESSIONS, SETTINGS)
    assert chosen.candidate.number == 1 and chosen.chosen.number == 0  # the study's top trial is not traded
    assert chosen.evidence["avg_monthly_pnl"]["lower"] < 0 < chosen.evidence["avg_monthly_pnl"]["upper"]
    assert "does not beat the defaults" in chosen.reason
    # better in monthly PnL but not in Calmar (a constant gain with a crash the defaults avoid): kept too
    crash = DEFAULTS + 0.0005
    crash[300:320] -= 0.03
    chosen = select_trial(trials, {0: DEFAULTS, 1: crash}, SESSIONS, SETTINGS)
    assert chosen.evidence["calmar"]["lower"] <= 0 and chosen.chosen.number == 0


def test_the_highest_rule_trades_the_top_trial_whatever_its_margin():
    trials = _study([1.0, 1.4], ["defaults", "tpe"])
    rule = Settings(tuning={"selection": "highest"})
    assert select_trial(trials, {0: DEFAULTS, 1: DEFAULTS - 0.001}, SESSIONS, rule).chosen.number == 1


def test_defaults_on_top_ties_missing_returns_and_no_defaults():
    assert select_trial(_study([2.0, 1.0], ["defaults", "tpe"]), {}, SESSIONS, SETTINGS).chosen.number == 0
    tie = _study([1.0, 1.0], ["defaults", "tpe"])
    for rule in ("beats_defaults", "highest"):
        assert select_trial(tie, {}, SESSIONS, Settings(tuning={"selection": rule})).chosen.number == 0
    # a study stored before the trial returns were recorded: nothing to compare, the defaults trade
    assert select_trial(_study([1.0, 2.0], ["defaults", "tpe"]), {}, SESSIONS, SETTINGS).chosen.number == 0
    no_defaults = _study([1.0, 2.0], ["tpe", "tpe"])
    assert select_trial(no_defaults, {}, SESSIONS, SETTINGS).chosen.number == 1  # nothing to fall back to
    with pytest.raises(ValueError, match="no complete trial"):
        select_trial([], {}, SESSIONS, SETTINGS)


def test_a_trial_trading_over_the_turnover_budget_is_not_a_candidate():
    # trial 1 earns more on every session but trades 25 a year (cap 12, defaults 10): the candidate
    # is trial 2, the highest of those within max(12, 10); it has no gain, so the defaults trade
    trials = _study([1.0, 1.5, 1.2], ["defaults", "tpe", "tpe"], turnover=[10.0, 25.0, 11.0])
    returns = {0: DEFAULTS, 1: DEFAULTS + 0.0005, 2: DEFAULTS}
    chosen = select_trial(trials, returns, SESSIONS, SETTINGS)
    assert chosen.candidate.number == 2 and chosen.chosen.number == 0
    # defaults over the cap set the budget: 14 a year allowed when the defaults trade 14
    trials = _study([1.0, 1.5], ["defaults", "tpe"], turnover=[14.0, 14.0])
    assert select_trial(trials, {0: DEFAULTS, 1: DEFAULTS + 0.0005}, SESSIONS, SETTINGS).chosen.number == 1
    trials = _study([1.0, 1.5], ["defaults", "tpe"], turnover=[14.0, 14.5])
    assert select_trial(trials, {0: DEFAULTS, 1: DEFAULTS + 0.0005}, SESSIONS, SETTINGS).chosen.number == 0


def test_the_level_is_split_over_the_candidates():
    """The same noisy gain (0.04% a day plus noise of 0.4% a day) is adopted when it is the only
    candidate and refused as the best of eleven: the lower bounds come from further in the
    bootstrap's tail (5% / 11 instead of 5%), so they move down and cross 0."""
    gain = DEFAULTS + 0.0004 + np.random.default_rng(101).normal(0.0, 0.004, N)
    alone = select_trial(_study([1.0, 1.5], ["defaults", "tpe"]), {0: DEFAULTS, 1: gain}, SESSIONS, SETTINGS)
    eleven = _study([1.0, 1.5, *[1.1] * 10], ["defaults", *["tpe"] * 11])
    among = select_trial(eleven, {**dict.fromkeys(range(12), DEFAULTS), 1: gain}, SESSIONS, SETTINGS)
    assert alone.chosen.number == 1 and among.candidate.number == 1 and among.chosen.number == 0
    for metric in ("calmar", "avg_monthly_pnl"):
        assert among.evidence[metric]["point"] == alone.evidence[metric]["point"]  # the same two paths
        assert among.evidence[metric]["lower"] < alone.evidence[metric]["lower"]
    assert alone.to_dict()["chosen_role"] == "tpe" and among.to_dict()["chosen_role"] == "defaults"


def test_non_finite_inner_returns_keep_the_defaults():
    broken = DEFAULTS + 0.0005
    broken[10] = np.nan
    chosen = select_trial(_study([1.0, 1.5], ["defaults", "tpe"]), {0: DEFAULTS, 1: broken}, SESSIONS, SETTINGS)
    assert chosen.chosen.number == 0 and "non-finite" in chosen.reason
