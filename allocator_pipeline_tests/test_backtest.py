"""The vectorised backtest engine and the baseline decision frames."""

from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.evaluation.backtest import (
    BACKTEST_COLUMNS,
    baseline_decisions,
    inverse_vol_weight,
    run_backtest,
)

COSTS = CostModel(fee_bps=1.0, slippage_bps=2.0, impact_bps=5.0)


def _returns(r_q, r_s, r_c=None) -> pd.DataFrame:
    n = len(r_q)
    return pd.DataFrame(
        {
            "qqq_leg_return": np.asarray(r_q, float),
            "spy_leg_return": np.asarray(r_s, float),
            "cash_return": np.zeros(n) if r_c is None else np.asarray(r_c, float),
        },
        index=decision_ts_from_dates(pd.bdate_range("2023-06-01", periods=n)),
    )


def _decisions(index, w, e=None) -> pd.DataFrame:
    w = np.asarray(w, float)
    return pd.DataFrame({"w": w, "exposure": np.ones(len(w)) if e is None else np.asarray(e, float)}, index=index)


def _cost(traded: float) -> float:
    return traded * 3.0 / 1e4 + 5.0 * traded**2 / 1e4


def test_static_weight_trades_the_drift_back_by_hand():
    rets = _returns([0.0, 0.02, -0.01, 0.03], [0.0, 0.01, 0.0, -0.02])
    bt = run_backtest(_decisions(rets.index[:3], [0.5] * 3), rets, COSTS)
    assert list(bt.columns) == BACKTEST_COLUMNS
    assert list(bt["realized_ts"]) == list(rets.index[1:])
    # Day 0: book = targets (no entry trade); earns 0.5*2% + 0.5*1% = 1.5%.
    # Day 1: the book drifted to 0.5*1.02/1.015 and 0.5*1.01/1.015; trade back to 0.5/0.5.
    q1, s1 = 0.51 / 1.015, 0.505 / 1.015
    traded1 = (q1 - 0.5) + (0.5 - s1)
    # Day 1 earns 0.5*(-1%) + 0.5*0% = -0.5%; day 2's book drifted to 0.495/0.995, 0.5/0.995.
    q2, s2 = 0.495 / 0.995, 0.5 / 0.995
    traded2 = (0.5 - q2) + (s2 - 0.5)
    np.testing.assert_allclose(bt["gross_return"], [0.015, -0.005, 0.005], atol=1e-15)
    np.testing.assert_allclose(bt["drifted_q"], [0.5, q1, q2], rtol=1e-14)
    np.testing.assert_allclose(bt["drifted_s"], [0.5, s1, s2], rtol=1e-14)
    np.testing.assert_allclose(bt["traded"], [0.0, traded1, traded2], rtol=1e-12, atol=1e-16)
    assert traded1 == pytest.approx(0.004926108, rel=1e-6)  # 2 * 0.0025 / 1.015
    np.testing.assert_allclose(bt["cost"], [0.0, _cost(traded1), _cost(traded2)], rtol=1e-12)
    np.testing.assert_allclose(bt["ret"], bt["gross_return"] - bt["cost"])


def test_qqq_only_is_the_qqq_leg_minus_costs():
    rng = np.random.default_rng(2)
    rets = _returns(rng.normal(0, 0.02, 30), rng.normal(0, 0.01, 30), np.full(30, 0.0001))
    idx = rets.index[:-1]
    bt = run_backtest(baseline_decisions(idx, "qqq_only", rets), rets, COSTS)
    np.testing.assert_array_equal(bt["traded"], 0.0)  # a one-leg book never drifts away from 100%
    np.testing.assert_allclose(bt["ret"], rets["qqq_leg_return"].iloc[1:].to_numpy(), rtol=0, atol=1e-17)
    entry = run_backtest(baseline_decisions(idx, "qqq_only", rets), rets, COSTS, initial_book=(0.5, 0.5))
    assert entry["traded"].iloc[0] == pytest.approx(1.0)  # sell all SPY (0.5), buy 0.5 QQQ
    assert entry["ret"].iloc[0] == pytest.approx(rets["qqq_leg_return"].iloc[1] - _cost(1.0))
    np.testing.assert_allclose(entry["ret"].iloc[1:], rets["qqq_leg_return"].iloc[2:], atol=1e-17)


def test_partial_exposure_earns_cash_and_trades_per_leg():
    rets = _returns([0.0, 0.04, 0.0], [0.0, -0.02, 0.0], [0.0, 0.001, 0.001])
    bt = run_backtest(_decisions(rets.index[:2], [0.5, 0.5], [0.5, 0.5]), rets, COSTS, initial_book=(0.5, 0.5))
    # Day 0: sell 0.25 of each leg into cash; earns 0.25*4% - 0.25*2% + 0.5*0.1% = 0.55%.
    assert bt["traded"].iloc[0] == pytest.approx(0.5)
    assert bt["gross_return"].iloc[0] == pytest.approx(0.0055)
    q1, s1 = 0.25 * 1.04 / 1.0055, 0.25 * 0.98 / 1.0055
    assert bt["drifted_q"].iloc[1] == pytest.approx(q1) and bt["drifted_s"].iloc[1] == pytest.approx(s1)
    assert bt["traded"].iloc[1] == pytest.approx(abs(0.25 - q1) + abs(0.25 - s1))


def test_vectorised_engine_matches_a_day_by_day_book():
    rng = np.random.default_rng(9)
    n = 40
    rets = _returns(rng.normal(0, 0.02, n), rng.normal(0, 0.01, n), np.full(n, 0.0002))
    dec = _decisions(rets.index[5:30], rng.uniform(0, 1, 25), rng.uniform(0.3, 1, 25))
    bt = run_backtest(dec, rets, COSTS, initial_book=(0.2, 0.7))
    q_book, s_book = 0.2, 0.7  # a day-by-day simulation of the held book, in fractions of capital
    for i, (ts, row) in enumerate(dec.iterrows()):
        q, s = row["exposure"] * row["w"], row["exposure"] * (1 - row["w"])
        traded = abs(q - q_book) + abs(s - s_book)
        nxt = rets.iloc[rets.index.get_loc(ts) + 1]
        gross = q * nxt["qqq_leg_return"] + s * nxt["spy_leg_return"] + (1 - q - s) * nxt["cash_return"]
        assert bt["traded"].iloc[i] == pytest.approx(traded, rel=1e-12, abs=1e-15)
        assert bt["ret"].iloc[i] == pytest.approx(gross - _cost(traded), rel=1e-12, abs=1e-15)
        q_book = q * (1 + nxt["qqq_leg_return"]) / (1 + gross)
        s_book = s * (1 + nxt["spy_leg_return"]) / (1 + gross)


def test_last_decision_without_next_session_is_dropped_and_bad_input_refused():
    rets = _returns([0.01, 0.02, 0.03], [0.0, 0.0, 0.0])
    bt = run_backtest(_decisions(rets.index, [0.5] * 3), rets, COSTS)
    assert list(bt.index) == list(rets.index[:2])
    with pytest.raises(InputDataError, match="consecutive"):
        run_backtest(_decisions(rets.index[[0, 2]], [0.5, 0.5]), rets, COSTS)
    with pytest.raises(InputDataError, match="'w'"):
        run_backtest(_decisions(rets.index[:2], [0.5, 1.5]), rets, COSTS)
    broken = rets.copy()
    broken.iloc[1, 0] = np.nan
    with pytest.raises(InputDataError, match="qqq_leg_return"):
        run_backtest(_decisions(rets.index[:2], [0.5, 0.5]), broken, COSTS)


def test_inverse_vol_is_causal_and_matches_hand_value():
    rng = np.random.default_rng(5)
    rets = _returns(rng.normal(0, 0.02, 12), rng.normal(0, 0.01, 12))
    w = inverse_vol_weight(rets, vol_window=4)
    assert (w.iloc[:3] == 0.5).all()  # warm-up
    for d in range(3, 12):
        vq = statistics.stdev(rets["qqq_leg_return"].iloc[d - 3 : d + 1])
        vs = statistics.stdev(rets["spy_leg_return"].iloc[d - 3 : d + 1])
        assert w.iloc[d] == pytest.approx((1 / vq) / (1 / vq + 1 / vs), rel=1e-10)
    changed = rets.copy()
    changed.iloc[8:] = changed.iloc[8:] * 5.0 + 0.01
    after = inverse_vol_weight(changed, vol_window=4)
    pd.testing.assert_series_equal(after.iloc[:8], w.iloc[:8], check_exact=True)
    assert not after.iloc[8:].equals(w.iloc[8:])
    dec = baseline_decisions(rets.index[6:], "inverse_vol", rets, vol_window=4)
    np.testing.assert_array_equal(dec["w"], w.iloc[6:])  # the history before the window warms it up


def test_static_and_oracle_baselines():
    rets = _returns([0.0] * 6, [0.0] * 6)
    idx = rets.index
    assert (baseline_decisions(idx, "baseline", rets, weight=0.3)["w"] == 0.3).all()
    assert (baseline_decisions(idx, "spy_only", rets)["w"] == 0.0).all()
    labels = pd.DataFrame({"best_weight": [np.nan, 0.8, 0.25, np.nan, 0.6, np.nan]}, index=idx)
    oracle = baseline_decisions(idx, "oracle", rets, labels=labels, weight=0.5)
    np.testing.assert_array_equal(oracle["w"], [0.5, 0.8, 0.25, 0.25, 0.6, 0.6])
    assert (oracle["exposure"] == 1.0).all()
    with pytest.raises(InputDataError, match="best_weight"):
        baseline_decisions(idx, "oracle", rets)
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_decisions(idx, "momentum", rets)  # type: ignore[arg-type]


def test_execution_lag_holds_the_previous_decision_over_the_next_session():
    """Lag 1: the book held over the session after row d is the decision of row d - 1 (the first
    row holds the initial book); by hand, without costs."""
    returns = _returns([0.0, 0.02, -0.01, 0.03, 0.01], [0.0, 0.01, 0.0, -0.01, 0.02])
    decisions = _decisions(returns.index, [0.0, 1.0, 0.0, 1.0, 0.0])
    free = CostModel(fee_bps=0.0, slippage_bps=0.0, impact_bps=0.0)
    lag0 = run_backtest(decisions, returns, free, initial_book=(0.5, 0.5))
    lag1 = run_backtest(decisions, returns, free, initial_book=(0.5, 0.5), execution_lag=1)
    r_q, r_s = returns["qqq_leg_return"].to_numpy(), returns["spy_leg_return"].to_numpy()
    held0 = np.array([0.0, 1.0, 0.0, 1.0])  # decisions of rows 0..3 (row 4 has no next session)
    held1 = np.array([0.5, 0.0, 1.0, 0.0])  # the initial book, then the decision of the row before
    assert np.allclose(lag0["ret"], held0 * r_q[1:] + (1 - held0) * r_s[1:], rtol=0, atol=1e-15)
    assert np.allclose(lag1["ret"], held1 * r_q[1:] + (1 - held1) * r_s[1:], rtol=0, atol=1e-15)
    assert np.array_equal(lag1["w"].to_numpy(), held1)
    with pytest.raises(InputDataError, match="execution_lag"):
        run_backtest(decisions, returns, free, execution_lag=-1)


def test_exposure_above_one_borrows_at_cash_plus_the_financing_spread():
    """e = 1.5: the legs earn 1.5 x, the cash leg is -0.5 (borrowed at the T-bill rate) and the
    borrowed half pays financing_spread_bps a year on top, charged in ``cost``."""
    idx = decision_ts_from_dates(pd.bdate_range("2024-01-02", periods=3))
    returns = pd.DataFrame(
        {"qqq_leg_return": [0.0, 0.02, 0.01], "spy_leg_return": [0.0, 0.01, -0.01], "cash_return": 0.0002}, index=idx
    )
    decisions = pd.DataFrame({"w": [0.5, 0.5, 0.5], "exposure": [1.5, 1.5, 1.5]}, index=idx)
    cm = CostModel(fee_bps=0.0, slippage_bps=0.0, impact_bps=0.0, financing_spread_bps=252.0)
    bt = run_backtest(decisions, returns, cm)
    assert bt["gross_return"].iloc[0] == pytest.approx(1.5 * 0.015 - 0.5 * 0.0002, rel=1e-12)
    assert bt["financing"].iloc[0] == pytest.approx(0.5 * 252.0 / 1e4 / 252, rel=1e-12)  # 0.5 bp a session
    assert bt["cost"].iloc[0] == bt["financing"].iloc[0]
    assert bt["ret"].iloc[1] == pytest.approx(1.5 * 0.0 - 0.5 * 0.0002 - 0.5e-4, rel=1e-12)
    with pytest.raises(InputDataError, match="exposure"):
        run_backtest(decisions.assign(exposure=3.5), returns, cm)
