"""Performance metrics on hand-computed series."""

from __future__ import annotations

import math
import re
import statistics

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.evaluation.backtest import run_backtest
from allocator_pipeline.core.evaluation.metrics import (
    METRIC_NAMES,
    drawdown_curve,
    equity_curve,
    monthly_returns,
    performance_metrics,
)


def _bt(ret, realized=None, r_cash=None, traded=None, cost=None) -> pd.DataFrame:
    n = len(ret)
    ts = decision_ts_from_dates(pd.bdate_range("2024-03-04", periods=n)) if realized is None else realized
    return pd.DataFrame(
        {
            "realized_ts": pd.DatetimeIndex(ts),
            "ret": np.asarray(ret, float),
            "r_cash": np.zeros(n) if r_cash is None else np.asarray(r_cash, float),
            "traded": np.zeros(n) if traded is None else np.asarray(traded, float),
            "cost": np.zeros(n) if cost is None else np.asarray(cost, float),
        }
    )


def test_cagr_drawdown_calmar_by_hand():
    m = performance_metrics(_bt([0.10, -0.20, 0.05, 0.10]), notional=1e6)
    assert set(m) == set(METRIC_NAMES)
    end = 1.1 * 0.8 * 1.05 * 1.1  # 1.0164
    assert m["cagr"] == pytest.approx(end ** (252 / 4) - 1)
    assert m["max_drawdown"] == pytest.approx(0.88 / 1.1 - 1)  # -0.2, from the 1.1 peak
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.2)
    assert m["n_sessions"] == 4 and m["start"] == "2024-03-04" and m["end"] == "2024-03-07"
    np.testing.assert_allclose(equity_curve(_bt([0.10, -0.20, 0.05, 0.10])), [1.1, 0.88, 0.924, end])


def test_drawdown_counts_from_the_initial_capital():
    bt = _bt([-0.1, 0.05, 0.02])
    m = performance_metrics(bt, 1.0)
    assert m["max_drawdown"] == pytest.approx(-0.1)  # the first day's loss is a drawdown from 1.0
    np.testing.assert_allclose(drawdown_curve(bt), [-0.1, 0.9 * 1.05 - 1, 0.9 * 1.05 * 1.02 - 1])
    up = performance_metrics(_bt([0.01, 0.02]), 1.0)
    assert up["max_drawdown"] == 0.0 and up["calmar"] is None


def test_monthly_pnl_across_a_month_boundary_in_new_york_time():
    realized = pd.DatetimeIndex(
        ["2024-01-30 21:00", "2024-02-01 02:00", "2024-02-01 21:00", "2024-02-02 21:00"], tz="UTC"
    )  # 2024-02-01 02:00 UTC is 2024-01-31 21:00 in New York: a January session
    bt = _bt([0.01, 0.02, -0.03, 0.01], realized=realized)
    months = monthly_returns(bt)
    jan, feb = 1.01 * 1.02 - 1, 0.97 * 1.01 - 1
    assert [str(p) for p in months.index] == ["2024-01", "2024-02"]
    np.testing.assert_allclose(months, [jan, feb])
    m = performance_metrics(bt, notional=1e6)
    assert m["avg_monthly_pnl"] == pytest.approx((jan + feb) / 2)  # 0.00495
    assert m["avg_monthly_pnl_ccy"] == pytest.approx((jan + feb) / 2 * 1e6)
    assert m["monthly_hit_rate"] == 0.5 and m["worst_month"] == pytest.approx(feb)


def test_sharpe_volatility_cvar_turnover_and_cost_drag():
    rng = np.random.default_rng(1)
    ret = rng.normal(0.0005, 0.01, 40)
    cash = np.full(40, 0.0001)
    traded = rng.uniform(0, 0.2, 40)
    cost = traded * 3e-4
    m = performance_metrics(_bt(ret, r_cash=cash, traded=traded, cost=cost), 1.0)
    excess = (ret - cash).tolist()
    assert m["sharpe"] == pytest.approx(statistics.mean(excess) / statistics.stdev(excess) * math.sqrt(252))
    assert m["volatility"] == pytest.approx(statistics.stdev(ret.tolist()) * math.sqrt(252))
    worst_two = sorted(ret.tolist())[:2]  # 5% of 40 sessions
    assert m["cvar_95"] == pytest.approx(sum(worst_two) / 2)
    assert m["turnover"] == pytest.approx(traded.sum() * 252 / 40)
    assert m["cost_drag"] == pytest.approx(cost.sum() * 252 / 40)
    small = performance_metrics(_bt([0.01, -0.03, 0.02, 0.0, 0.01]), 1.0)
    assert small["cvar_95"] == pytest.approx(-0.03)  # at least one session


def test_turnover_and_costs_against_the_drifted_book_by_hand():
    idx = decision_ts_from_dates(pd.bdate_range("2024-05-06", periods=4))
    returns = pd.DataFrame(
        {
            "qqq_leg_return": [0.0, 0.10, -0.05, 0.02],
            "spy_leg_return": [0.0, 0.00, 0.02, 0.01],
            "cash_return": [0.0, 0.0, 0.0, 0.0],
        },
        index=idx,
    )
    decisions = pd.DataFrame({"w": [0.5, 0.6, 0.6], "exposure": [1.0, 1.0, 1.0]}, index=idx[:3])
    costs = CostModel(fee_bps=1.0, slippage_bps=2.0, impact_bps=5.0)
    bt = run_backtest(decisions, returns, costs, initial_book=(0.5, 0.5))
    # Day 0: no trade; earns 0.5*10% = 5%; the book drifts to 0.55/1.05 QQQ, 0.5/1.05 SPY.
    q1, s1 = 0.55 / 1.05, 0.5 / 1.05  # 0.5238, 0.4762
    t1 = abs(0.6 - q1) + abs(0.4 - s1)  # 0.1524: the drift already did part of the trade
    # Day 1 earns 0.6*(-5%) + 0.4*2% = -2.2%; the book drifts to 0.57/0.978, 0.408/0.978.
    q2, s2 = 0.57 / 0.978, 0.408 / 0.978
    t2 = abs(0.6 - q2) + abs(0.4 - s2)
    np.testing.assert_allclose(bt["traded"], [0.0, t1, t2], rtol=1e-12, atol=1e-16)
    c = [0.0, t1 * 3e-4 + 5e-4 * t1**2, t2 * 3e-4 + 5e-4 * t2**2]
    np.testing.assert_allclose(bt["cost"], c, rtol=1e-12, atol=1e-16)
    net = [0.05, -0.022 - c[1], 0.6 * 0.02 + 0.4 * 0.01 - c[2]]
    np.testing.assert_allclose(bt["ret"], net, rtol=1e-12)
    m = performance_metrics(bt, 1.0)
    assert m["turnover"] == pytest.approx((t1 + t2) * 252 / 3)
    assert m["cost_drag"] == pytest.approx(sum(c) * 252 / 3)
    assert m["cagr"] == pytest.approx((1.05 * (1 + net[1]) * (1 + net[2])) ** (252 / 3) - 1)


def test_bad_backtest_frames_are_refused():
    with pytest.raises(InputDataError, match="empty"):
        performance_metrics(_bt([]), 1.0)
    with pytest.raises(InputDataError, match="'ret'"):
        performance_metrics(_bt([0.01, np.nan]), 1.0)
    naive = _bt([0.01]).assign(realized_ts=pd.DatetimeIndex(["2024-01-02 21:00"]))
    with pytest.raises(InputDataError, match="tz-aware"):
        performance_metrics(naive, 1.0)


# ----------------------------------------------------------------------------- names, edges and errors, by hand


def test_the_curves_are_named_series_on_the_realised_sessions():
    bt = _bt([0.10, -0.20])
    eq, dd = equity_curve(bt), drawdown_curve(bt)
    assert eq.name == "equity" and dd.name == "drawdown"
    np.testing.assert_allclose(dd, [0.0, 0.88 / 1.1 - 1])  # from the 1.1 peak: -0.2
    assert list(eq.index) == list(bt["realized_ts"]) and list(dd.index) == list(bt["realized_ts"])
    months = monthly_returns(bt)
    assert months.name == "monthly_return" and months.index.name == "month" and str(months.index[0]) == "2024-03"


def test_a_wiped_out_book_has_cagr_minus_one_and_a_full_drawdown():
    """A -100% session leaves equity 0: CAGR -1 (not 0 ** x - 1 by accident), drawdown -1,
    Calmar -1 / 1."""
    m = performance_metrics(_bt([0.05, -1.0]), 1.0)
    assert m["cagr"] == -1.0 and m["max_drawdown"] == -1.0 and m["calmar"] == -1.0


def test_one_session_or_no_spread_leaves_the_ratios_undefined():
    """One session: no standard deviation (ddof 1), so no volatility and no Sharpe; a constant
    excess return (here exactly 0.001 over cash 0): a volatility of 0 and no Sharpe."""
    one = performance_metrics(_bt([0.01]), 1.0)
    assert one["volatility"] is None and one["sharpe"] is None and one["n_sessions"] == 1
    flat = performance_metrics(_bt([0.001] * 5), 1.0)
    assert flat["sharpe"] is None and flat["volatility"] == pytest.approx(0.0, abs=1e-15)
    assert flat["max_drawdown"] == 0.0 and flat["calmar"] is None


def test_cvar_takes_the_ceiling_of_five_percent_of_the_sessions():
    """41 sessions: ceil(2.05) = 3 worst; 20 sessions: exactly 1."""
    ret = [0.01] * 38 + [-0.05, -0.04, -0.03]
    assert performance_metrics(_bt(ret), 1.0)["cvar_95"] == pytest.approx(-0.04)
    assert performance_metrics(_bt([0.01] * 19 + [-0.02]), 1.0)["cvar_95"] == pytest.approx(-0.02)


def test_start_and_end_are_new_york_dates():
    """02:00 UTC is the previous evening in New York: the session dates, not the UTC ones."""
    realized = pd.DatetimeIndex(["2024-02-01 02:00", "2024-02-03 02:00"], tz="UTC")
    m = performance_metrics(_bt([0.01, 0.01], realized=realized), 1.0)
    assert m["start"] == "2024-01-31" and m["end"] == "2024-02-02"


def test_bad_frames_are_refused_with_the_column_and_row():
    bt = _bt([0.01, 0.02, 0.03])
    for col in ("ret", "realized_ts"):
        with pytest.raises(InputDataError, match=f"^column '{col}': backtest frame lacks a column$"):
            equity_curve(bt.drop(columns=col))
    for col in ("r_cash", "traded", "cost"):
        with pytest.raises(InputDataError, match=f"^column '{col}': backtest frame lacks a column$"):
            performance_metrics(bt.drop(columns=col), 1.0)
    with pytest.raises(InputDataError, match=r"^column 'ret': cannot compute metrics of an empty backtest$"):
        performance_metrics(_bt([]), 1.0)
    naive = bt.assign(realized_ts=pd.DatetimeIndex(bt["realized_ts"]).tz_localize(None))
    with pytest.raises(InputDataError, match=r"^column 'realized_ts': realized_ts must be tz-aware UTC$"):
        monthly_returns(naive)
    broken = bt.copy()
    broken.loc[2, "ret"] = np.inf
    expected = f"column 'ret', row {bt['realized_ts'].iloc[2]}, value inf: return must be a finite number"
    with pytest.raises(InputDataError, match=f"^{re.escape(expected)}$"):
        drawdown_curve(broken)


def test_months_are_in_calendar_order_and_a_flat_month_is_no_hit():
    """Sessions given out of order still give January before February; a month whose compounded
    return is exactly 0 is not a positive month."""
    realized = pd.DatetimeIndex(["2024-02-05 21:00", "2024-01-03 21:00", "2024-01-04 21:00"], tz="UTC")
    months = monthly_returns(_bt([0.02, 0.0, 0.0], realized=realized))
    assert [str(p) for p in months.index] == ["2024-01", "2024-02"] and months.tolist() == pytest.approx([0.0, 0.02])
    assert performance_metrics(_bt([0.02, 0.0, 0.0], realized=realized), 1.0)["monthly_hit_rate"] == 0.5


def test_two_sessions_suffice_for_volatility_and_sharpe_and_a_losing_path_has_negative_cagr():
    m = performance_metrics(_bt([0.01, 0.03]), 1.0)
    assert m["volatility"] == pytest.approx(statistics.stdev([0.01, 0.03]) * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(0.02 / statistics.stdev([0.01, 0.03]) * math.sqrt(252))
    loss = performance_metrics(_bt([-0.1, 0.05, 0.02]), 1.0)
    assert loss["cagr"] == pytest.approx((0.9 * 1.05 * 1.02) ** (252 / 3) - 1)  # about -0.96
    below = performance_metrics(_bt([0.5, -1.5]), 1.0)  # a -150% session: equity below 0, CAGR -1
    assert below["cagr"] == -1.0


def test_an_overflowing_equity_leaves_cagr_undefined():
    """Two sessions of 1e200: the equity overflows to +inf; its CAGR is undefined (None, JSON-ready)."""
    with np.errstate(over="ignore", invalid="ignore"):
        m = performance_metrics(_bt([1e200, 1e200]), 1.0)
    assert m["cagr"] is None
