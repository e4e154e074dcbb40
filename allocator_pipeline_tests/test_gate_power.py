"""Gates that can fail: a fixture built to fail each skill or robustness gate, the research
ledger counted in the deflated Sharpe, PBO not evaluated (never a silent pass) without tuning,
and do-nothing strategies (the baseline, QQQ only, pure noise) in the allocator's seat."""

from __future__ import annotations

import csv
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.allocation.policy import allocator_path
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.grid import BUCKETS, N_CLASSES, OUT_OF_RANGE_COLUMN
from allocator_pipeline.core.common.sessions import decision_ts_from_dates, session_dates
from allocator_pipeline.core.evaluation.backtest import baseline_decisions, run_backtest
from allocator_pipeline.core.evaluation.bootstrap import paired_bootstrap
from allocator_pipeline.core.evaluation.gates import (
    TRADED_SUFFIX,
    accepted,
    evaluate_gates,
    monotonic_response,
    monotonic_sanity,
    not_evaluated,
    policy_weight,
    risk_features,
    traded_weight,
)
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.core.evaluation.overfitting import (
    RESEARCH_LEDGER,
    overfitting_statistics,
    research_ledger,
    research_trials,
)
from allocator_pipeline.core.inputs.market import load_embedded, market_panel
from allocator_pipeline.settings import BootstrapSettings, Settings
from allocator_pipeline_tests.test_gates import SETTINGS, _inputs

GAMMA = 0.5772156649015329


def _by_name(gates):
    return {g["name"]: g for g in gates}


# --- monotonic sanity on the features the models use -------------------------------------------


class LinearChoice:
    """A fold model whose chosen bucket is a known linear function of its inputs: the bucket
    nearest ``0.5 + sum_f slope_f * (x_f - centre_f)`` gets probability 0.9, the others share the
    rest; ``M`` is the identity, so the expected-utility argmax is that bucket; the class prior is
    uniform, so the expected-weight sizing tilts by the same linear function (shrunk by the 0.1
    spread over the other buckets)."""

    def __init__(self, slopes: dict[str, float], centres: dict[str, float], highest: dict[str, float] | None = None):
        self.slopes, self.centres, self.highest = slopes, centres, highest or {}
        self.m = np.eye(N_CLASSES)
        self.prior = np.full(N_CLASSES, 1.0 / N_CLASSES)

    @property
    def feature_names(self) -> list[str]:
        return list(self.slopes)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        w = 0.5 + sum(s * (features[f].to_numpy() - self.centres[f]) for f, s in self.slopes.items())
        k = np.rint(np.clip(w, 0.0, 1.0) * 10).astype(int)
        p = np.full((len(features), N_CLASSES), 0.1 / (N_CLASSES - 1))
        p[np.arange(len(features)), k] = 0.9
        return p

    def decision_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame(
            self.predict_proba(features), index=features.index, columns=[f"p_{k:02d}" for k in range(11)]
        )
        # out of range: an input above its ``highest`` training value
        frame[OUT_OF_RANGE_COLUMN] = np.zeros(len(features), dtype=bool)
        for f, top in self.highest.items():
            frame[OUT_OF_RANGE_COLUMN] |= features[f].to_numpy() > top
        return frame


def _fold(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    index = decision_ts_from_dates(pd.bdate_range("2019-01-02", periods=n))
    frame = pd.DataFrame(
        {
            "split": "test",
            "qqq_vol_63": rng.uniform(0.1, 0.4, n),
            "qqq_vol_21": rng.uniform(0.1, 0.4, n),  # configured, never read by the model
            "spy_dd_63": rng.uniform(0.0, 0.2, n),
            "spread_vol_21": rng.uniform(0.0, 0.1, n),  # no sign implied by the seed
            "label_class": 5,
            "best_weight": 0.5,
        },
        index=index,
    )
    context = pd.DataFrame(
        {
            "qqq_leg_return": rng.normal(4e-4, 0.015, n),
            "spy_leg_return": rng.normal(3e-4, 0.01, n),
            "cash_return": np.full(n, 1e-4),
        },
        index=index,
    )
    return frame, context


def test_risk_features_are_the_legs_volatility_and_drawdown_inputs():
    names = [
        "qqq_vol_63",
        "qqq_downvol_21",
        "spy_dd_252",
        "qqq_dd_now",
        "spread_vol_21",
        "qqq_ret_5",
        "log_vol_ratio_63",
    ]
    assert risk_features(names) == ["qqq_vol_63", "qqq_downvol_21", "spy_dd_252", "qqq_dd_now"]


def test_monotonic_sanity_fails_on_a_model_that_chases_risk_in_the_features_it_uses():
    """The model raises w_qqq with QQQ's 63-session volatility (forbidden) and with SPY's drawdown
    (sane: SPY's own weight falls). The configured qqq_vol_21 is not read by the model: it is not
    measured (it would read 0 by construction) and the gate says so."""
    frame, context = _fold()
    test = frame.drop(columns=["split", "label_class", "best_weight"])
    chaser = LinearChoice(
        {"qqq_vol_63": 2.0, "spy_dd_63": 1.0, "spread_vol_21": 3.0}, {f: float(test[f].mean()) for f in test}
    )
    settings = Settings()
    traded = {"2019": traded_weight(chaser, context, settings)}  # type: ignore[arg-type]
    monotonic = monotonic_sanity({"2019": chaser}, {"2019": frame}, ("qqq_vol_21", "qqq_dd_63"), traded)  # type: ignore[dict-item]
    assert set(monotonic) == {"qqq_vol_63", "spy_dd_63", "qqq_vol_63" + TRADED_SUFFIX, "spy_dd_63" + TRADED_SUFFIX}
    # from first principles: +1 std of qqq_vol_63 moves w by 2 * std (rounded to the 0.1 grid,
    # clipped to [0, 1]); the raw response is close to it and positive
    std = float(test["qqq_vol_63"].std(ddof=1))
    assert 0.5 * 2.0 * std < monotonic["qqq_vol_63"] < 1.2 * 2.0 * std
    # spy_dd_63 raises w_qqq, so SPY's own weight (1 - w_qqq) falls: sane, negative
    assert monotonic["spy_dd_63"] < 0
    # the traded weight (turnover charge, smoothing, envelope) follows the same sign
    assert monotonic["qqq_vol_63" + TRADED_SUFFIX] > 0 and monotonic["spy_dd_63" + TRADED_SUFFIX] < 0
    overall, folds, importance, _ = _inputs()
    gate = _by_name(evaluate_gates(overall, folds, importance, monotonic, SETTINGS))["monotonic_sanity"]
    assert gate["passed"] is False and gate["value"] == pytest.approx(max(monotonic.values()))
    assert "configured, not used by any fold: ['qqq_vol_21', 'qqq_dd_63']" in gate["detail"]
    # a model that lowers w_qqq with QQQ's volatility passes
    sane = LinearChoice({"qqq_vol_63": -2.0}, {"qqq_vol_63": float(test["qqq_vol_63"].mean())})
    ok = monotonic_sanity({"2019": sane}, {"2019": frame}, ("qqq_vol_21",))  # type: ignore[dict-item]
    assert list(ok) == ["qqq_vol_63"] and ok["qqq_vol_63"] < 0
    assert _by_name(evaluate_gates(overall, folds, importance, ok, SETTINGS))["monotonic_sanity"]["passed"] is True


def test_monotonic_sanity_moves_a_legs_risk_inputs_together():
    """QQQ's 5-session volatility and downside volatility move together (downvol = 0.7 vol + a
    little noise). A model that lowers w_qqq with the volatility and raises it a little with the
    downside volatility chases nothing: when the leg's risk rises both rise and its weight falls,
    which the gate measures (the downside volatility's bump carries the volatility by its slope,
    about 1 / 0.7); bumped alone, the downside volatility would read as risk-chasing. A model
    whose weight rises with both is still caught."""
    frame, _ = _fold()
    rng = np.random.default_rng(7)
    vol = rng.uniform(0.1, 0.4, len(frame))
    frame = frame.assign(qqq_vol_5=vol, qqq_downvol_5=0.7 * vol + rng.normal(0.0, 0.005, len(frame)))
    test = frame.drop(columns=["split", "label_class", "best_weight"])
    centres = {f: float(test[f].mean()) for f in test}
    sane = LinearChoice({"qqq_vol_5": -2.0, "qqq_downvol_5": 1.0}, centres)
    measured = monotonic_sanity({"2019": sane}, {"2019": frame}, ())  # type: ignore[dict-item]
    assert measured["qqq_vol_5"] < 0 and measured["qqq_downvol_5"] < 0
    # the same bump without the leg's other input moving: +1.0 * std up, what the gate no longer measures
    alone = monotonic_response(policy_weight(sane), test, "qqq_downvol_5")  # type: ignore[arg-type]
    assert alone > 0.5 * float(test["qqq_downvol_5"].std(ddof=1))
    chaser = LinearChoice({"qqq_vol_5": 1.0, "qqq_downvol_5": 1.0}, centres)
    caught = monotonic_sanity({"2019": chaser}, {"2019": frame}, ())  # type: ignore[dict-item]
    assert caught["qqq_vol_5"] > 0 and caught["qqq_downvol_5"] > 0


def test_traded_response_holds_where_the_session_itself_is_out_of_range():
    """A +1 std bump carries a third of the rows past the highest training value of qqq_vol_63.
    Without ``hold_on`` the out-of-range hold (the previous weight kept) decides those rows and the
    gate would measure the hold; with the sessions' own inputs as ``hold_on`` the bumped path is
    the path with no row held (no actual session is out of range here)."""
    frame, context = _fold()
    test = frame.drop(columns=["split", "label_class", "best_weight"])
    top = float(test["qqq_vol_63"].max())
    model = LinearChoice({"qqq_vol_63": -2.0}, {"qqq_vol_63": float(test["qqq_vol_63"].mean())}, {"qqq_vol_63": top})
    settings = Settings()
    bumped = test.copy()
    bumped["qqq_vol_63"] += float(test["qqq_vol_63"].std(ddof=1))
    flagged = model.decision_frame(bumped)[OUT_OF_RANGE_COLUMN].to_numpy()
    assert 0.2 < flagged.mean() < 0.5 and not model.decision_frame(test)[OUT_OF_RANGE_COLUMN].any()

    def path(flags: np.ndarray) -> np.ndarray:
        proba = model.predict_proba(bumped)
        return allocator_path(proba, model.m, context, settings, 0.5, out_of_range=flags, prior=model.prior)[
            "w_final"
        ].to_numpy()

    held = traded_weight(model, context, settings)(bumped)  # type: ignore[arg-type]
    actual = traded_weight(model, context, settings, hold_on=test)(bumped)  # type: ignore[arg-type]
    np.testing.assert_array_equal(held, path(flagged))
    np.testing.assert_array_equal(actual, path(np.zeros(len(test), dtype=bool)))
    assert not np.array_equal(held, actual)


def test_monotonic_sanity_fails_at_the_traded_weight_alone():
    overall, folds, importance, _ = _inputs()
    monotonic = {"qqq_vol_63": -0.01, "qqq_vol_63" + TRADED_SUFFIX: 0.02}
    gate = _by_name(evaluate_gates(overall, folds, importance, monotonic, SETTINGS))["monotonic_sanity"]
    assert gate["passed"] is False and gate["value"] == 0.02 and "qqq_vol_63@traded: +0.02000" in gate["detail"]


def test_no_model_input_measured_fails_monotonic_sanity():
    overall, folds, importance, _ = _inputs()
    gate = _by_name(evaluate_gates(overall, folds, importance, {}, SETTINGS))["monotonic_sanity"]
    assert gate["passed"] is False and gate["value"] is None


# --- the deflated Sharpe counts the research ledger ---------------------------------------------


def test_the_research_ledger_is_counted_in_the_deflated_sharpe():
    with open(RESEARCH_LEDGER, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == research_trials() >= 40 and all(r["date"] and r["variant"] and r["outcome"] for r in rows)
    rng = np.random.default_rng(7)
    t = 4500
    noise = rng.normal(size=t)
    noise = (noise - noise.mean()) / noise.std(ddof=1)
    excess = 0.012 * noise + 0.8 / math.sqrt(252) * 0.012  # a sample annualised Sharpe of exactly 0.8
    out = overfitting_statistics(excess, {}, n_trials=0, n_blocks=16)["deflated_sharpe"]
    assert out["sharpe_annualised"] == pytest.approx(0.8, rel=1e-9)
    n = len(rows)
    assert out["n_trials"] == n and out["n_research_trials"] == n and out["n_study_trials"] == 0
    assert out["variance_source"] == "null" and out["trial_sharpe_variance"] == pytest.approx(1.0 / t)
    z = NormalDist().inv_cdf
    sr0 = math.sqrt(1.0 / t) * ((1 - GAMMA) * z(1 - 1 / n) + GAMMA * z(1 - 1 / (n * math.e)))
    assert out["sr0"] == pytest.approx(sr0, rel=1e-12)
    # the fixture fails the gate with the ledger counted ...
    overall, folds, importance, monotonic = _inputs()
    over = overfitting_statistics(excess, {}, 0, 16)
    gates = _by_name(
        evaluate_gates(overall, folds, importance, monotonic, SETTINGS, overfitting={**over, "tuned_folds": 0})
    )
    assert gates["deflated_sharpe"]["passed"] is False and gates["deflated_sharpe"]["value"] < 0.95
    # ... and passed by construction when N counted only the (absent) tuning trials: SR0 = 0
    free = overfitting_statistics(excess, {}, 0, 16, research_trials_count=0)
    assert free["deflated_sharpe"]["sr0"] == 0.0 and free["deflated_sharpe"]["dsr"] > 0.95
    # a weight choice with the planted rule's skill (an information ratio of 2.2 a year over the
    # baseline, the rule's lowest on the resampled fixtures) passes with the ledger counted:
    # (2.2 - SR0) * sqrt(T / 252) = (2.2 - 0.64) * 4.2 standard errors
    skilled = 0.004 * noise + 2.2 / math.sqrt(252) * 0.004
    strong = overfitting_statistics(skilled, {}, 0, 16)["deflated_sharpe"]
    assert strong["n_trials"] == n and strong["sr0_annualised"] == pytest.approx(sr0 * math.sqrt(252), rel=1e-12)
    gate = _by_name(
        evaluate_gates(
            overall, folds, importance, monotonic, SETTINGS, overfitting={"deflated_sharpe": strong, "pbo": over["pbo"]}
        )
    )["deflated_sharpe"]
    assert gate["passed"] is True and strong["dsr"] > 0.999


def test_a_broken_research_ledger_is_refused(tmp_path):
    bad = tmp_path / "ledger.csv"
    bad.write_text("date,section,variant,outcome\n2026-13-01,x,y,z\n")
    with pytest.raises(Exception, match="YYYY-MM-DD"):
        research_ledger(bad)
    bad.write_text("date,section,variant\n2026-12-01,x,y\n")
    with pytest.raises(Exception, match="lacks columns"):
        research_ledger(bad)
    bad.write_text("date,section,variant,outcome\n2026-12-01,x,,z\n")
    with pytest.raises(Exception, match="empty cell"):
        research_ledger(bad)


# --- PBO: fails on an overfit study, not evaluated without one -----------------------------------


def test_pbo_fails_when_the_in_sample_winner_is_the_out_of_sample_loser():
    """Trials whose block means sum to the same total: the best on any half of the blocks is the
    worst on the other half (a common noise dominates each block's spread, so the Sharpe ranks
    follow the means). CSCV must put the PBO near 1 and the gate must fail."""
    rng = np.random.default_rng(11)
    n_trials, blocks, length = 6, 16, 40
    means = rng.normal(0.0, 2e-4, (n_trials, blocks))
    means -= means.mean(axis=1, keepdims=True)  # every trial's total is the same
    common = rng.normal(3e-4, 0.01, blocks * length)
    ledger = pd.DataFrame({"inner": 0, "cash_return": np.zeros(blocks * length)})
    for j in range(n_trials):
        ledger[f"trial_{j}"] = common + np.repeat(means[j], length)
    over = overfitting_statistics(rng.normal(5e-4, 0.01, 2000), {"2019": ledger}, n_trials, blocks)
    assert over["pbo"]["value"] > 0.9
    overall, folds, importance, monotonic = _inputs()
    gate = _by_name(
        evaluate_gates(overall, folds, importance, monotonic, SETTINGS, overfitting={**over, "tuned_folds": 1})
    )["pbo"]
    assert gate["passed"] is False and gate["evaluated"] is True


def test_pbo_without_tuning_is_not_evaluated_never_a_silent_pass():
    overall, folds, importance, monotonic = _inputs()
    rng = np.random.default_rng(2)
    over = overfitting_statistics(rng.normal(2e-3, 0.01, 3000), {}, 0, 16)
    gates = evaluate_gates(overall, folds, importance, monotonic, SETTINGS, overfitting={**over, "tuned_folds": 0})
    pbo = _by_name(gates)["pbo"]
    assert pbo["passed"] is None and pbo["evaluated"] is False and pbo["value"] is None
    assert "not evaluated" in pbo["detail"]
    assert not_evaluated(gates) == ["pbo"]
    # every evaluated gate passed: accepted, with PBO named as not evaluated (neither pass nor fail)
    assert all(g["passed"] for g in gates if g["evaluated"]) and accepted(gates)
    assert not accepted([pbo])  # nothing evaluated: nothing accepted


# --- do-nothing strategies in the allocator's seat ----------------------------------------------


@pytest.fixture(scope="module")
def real_returns() -> pd.DataFrame:
    market = market_panel(load_embedded(), "QQQ", "SPY")
    return pd.DataFrame(
        {
            "qqq_leg_return": market["qqq_adj_close"].pct_change(),
            "spy_leg_return": market["spy_adj_close"].pct_change(),
            "cash_return": market["cash_return"],
        }
    ).dropna()


def _seat_gates(decisions: pd.DataFrame, returns: pd.DataFrame, settings: Settings) -> list[dict]:
    """The gates of a strategy put in the allocator's seat, over 2008.. on the real legs, with the
    pipeline's own backtest, metrics, bootstrap and overfitting statistics (no model: no
    importance, no monotonic response; tuning off as in the default profile)."""
    cost = CostModel.from_settings(settings.costs)
    base = run_backtest(baseline_decisions(decisions.index, "baseline", returns), returns, cost)
    bt = run_backtest(decisions, returns, cost)
    notional = settings.report.notional
    overall = {"allocator": performance_metrics(bt, notional), "baseline": performance_metrics(base, notional)}
    years = session_dates(bt.index).year
    folds = {str(y): {"allocator": performance_metrics(bt[years == y], notional)} for y in sorted(set(years))}
    boot = paired_bootstrap(bt["ret"], base["ret"], bt["realized_ts"], BootstrapSettings(resamples=300))
    # the deflated Sharpe's subject: the weight choice fully invested (these seats are) over the baseline
    over = overfitting_statistics((bt["ret"] - base["ret"]).to_numpy(), {}, 0, settings.gates.pbo_blocks)
    return evaluate_gates(
        overall, folds, pd.DataFrame(), {}, settings.gates, bootstrap=boot, overfitting={**over, "tuned_folds": 0}
    )


# which gates reject each do-nothing strategy (recorded 2026-12-02, the deflated Sharpe's subject the
# weight choice over the baseline since 2026-12-03; the README's "What the verdict can
# tell from a do-nothing strategy" section quotes this table)
NO_MODEL = {"importance_stability", "monotonic_sanity"}  # no model: nothing to measure, they fail
SEAT_REJECTIONS = {
    "baseline": {"avg_monthly_pnl_vs_baseline", "calmar_vs_baseline", "deflated_sharpe"} | NO_MODEL,
    "qqq_only": {"calmar_vs_baseline", "deflated_sharpe"} | NO_MODEL,
    "noise": {
        "avg_monthly_pnl_vs_baseline",
        "calmar_vs_baseline",
        "max_drawdown_vs_baseline",
        "turnover",
        "negative_fold_rate",
        "p25_fold_calmar",
        "deflated_sharpe",
    }
    | NO_MODEL,
}


@pytest.mark.parametrize("seat", sorted(SEAT_REJECTIONS))
def test_do_nothing_strategies_in_the_allocators_seat_are_rejected(real_returns, seat):
    settings = Settings()
    index = real_returns.index[session_dates(real_returns.index).year >= 2008]
    if seat == "noise":
        rng = np.random.default_rng(0)
        decisions = pd.DataFrame({"w": BUCKETS[rng.integers(0, 11, len(index))], "exposure": 1.0}, index=index)
    else:
        decisions = baseline_decisions(index, seat, real_returns)
    gates = _seat_gates(decisions, real_returns, settings)
    rejected = {g["name"] for g in gates if g["passed"] is False}
    assert rejected == SEAT_REJECTIONS[seat] and not accepted(gates)
    assert not_evaluated(gates) == ["pbo"]
    g = _by_name(gates)
    if seat == "baseline":  # against itself: a difference of exactly 0, which is no beat
        assert g["avg_monthly_pnl_vs_baseline"]["value"] == 0.0 and g["calmar_vs_baseline"]["value"] == 0.0
        assert g["max_drawdown_vs_baseline"]["passed"] and g["turnover"]["value"] < 0.5
    # the deflated Sharpe of the weight choice over the baseline with the research ledger's N: the
    # baseline has no spread over itself (undefined, a failure); QQQ only and noise fall short of SR0
    # (taken over cash it passed the baseline and QQQ by construction with N = 0)
    d = g["deflated_sharpe"]
    assert d["passed"] is False
    if seat == "baseline":
        assert d["value"] is None and "never leaves the baseline" in d["detail"]
    else:
        assert f"N = {research_trials()} trials" in d["detail"] and d["value"] < 0.5
