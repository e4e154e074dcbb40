"""The vectorised backtest engine and the baseline decision frames."""

from __future__ import annotations

import re
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


# ----------------------------------------------------------------------------- errors that say where, by hand


def _raises(expected: str):
    """The whole message: ``file/column, row, value: problem`` (InputDataError's format)."""
    return pytest.raises(InputDataError, match=f"^{re.escape(expected)}$")


def test_bad_weights_exposures_and_returns_are_named_by_column_session_and_value():
    """The first offending row is named (a valid row before it is passed over); 0 and
    MAX_EXPOSURE = 3.0 are allowed exposures, the bounds included."""
    rets = _returns([0.0, 0.01, 0.02, 0.03], [0.0] * 4)
    idx = rets.index
    with _raises(f"column 'w', row {idx[1]}, value 1.2: must be a number in [0, 1]"):
        run_backtest(_decisions(idx, [0.5, 1.2, -0.1, 0.5]), rets, COSTS)
    with _raises(f"column 'exposure', row {idx[1]}, value 3.5: must be a number in [0, 3.0]"):
        run_backtest(_decisions(idx, [0.5] * 4, [1.0, 3.5, -1.0, 1.0]), rets, COSTS)
    bounds = run_backtest(_decisions(idx, [0.5] * 4, [0.0, 3.0, 1.0, 1.0]), rets, COSTS)
    assert bounds["exposure"].tolist() == [0.0, 3.0, 1.0]
    broken = rets.copy()
    broken.iloc[2, 0] = np.nan  # realised at idx[2]: the return the decision of idx[1] earns
    with _raises(f"column 'qqq_leg_return', row {idx[2]}, value nan: return must be a finite number"):
        run_backtest(_decisions(idx, [0.5] * 4), broken, COSTS)


def test_missing_columns_and_bad_calendars_are_named():
    rets = _returns([0.0, 0.01, 0.02, 0.03], [0.0] * 4)
    idx = rets.index
    dec = _decisions(idx, [0.5] * 4)
    # the decisions' columns come first, then the returns'
    with _raises("column 'exposure': backtest input lacks a column"):
        run_backtest(dec.drop(columns="exposure"), rets.drop(columns="cash_return"), COSTS)
    with _raises("column 'cash_return': backtest input lacks a column"):
        run_backtest(dec, rets.drop(columns="cash_return"), COSTS)
    sorted_message = "column 'decision_ts': returns index (decision_ts) must be sorted and unique"
    with _raises(sorted_message):
        run_backtest(dec, rets.iloc[::-1], COSTS)
    with _raises(sorted_message):  # sorted, but a session twice
        run_backtest(dec.iloc[:2], rets.iloc[[0, 1, 1, 2]], COSTS)
    foreign = idx[-1] + pd.Timedelta(days=7)
    outside = _decisions(idx[:2].append(pd.DatetimeIndex([foreign])), [0.5] * 3)
    with _raises(f"column 'decision_ts', row {foreign}: decision session not in the returns calendar"):
        run_backtest(outside, rets, COSTS)
    gap = "decisions must be consecutive sessions of the returns calendar (gap or disorder)"
    with _raises(f"column 'decision_ts', row {idx[3]}: {gap}"):
        run_backtest(_decisions(idx[[0, 1, 3]], [0.5] * 3), rets, COSTS)
    with _raises("value -1: execution_lag must be >= 0 sessions"):
        run_backtest(dec, rets, COSTS, execution_lag=-1)


def test_a_session_return_of_minus_100_percent_is_refused_at_its_decision():
    """All in QQQ: the decision of idx[0] loses 1% (allowed), that of idx[1] earns QQQ's -100%
    (gross -1.0 exactly: no book is left to drift), that of idx[2] -150%; the first is named."""
    rets = _returns([0.0, -0.01, -1.0, -1.5, 0.0], [0.0] * 5)
    idx = rets.index
    with _raises(
        f"column 'gross_return', row {idx[1]}, value -1.0: a session return of -100% or worse leaves no book to drift"
    ):
        run_backtest(_decisions(idx, [1.0] * 5), rets, COSTS)
    exactly = _returns([0.0, 0.01, -1.0, 0.0], [0.0] * 4)  # -100% alone, nothing worse after it
    with _raises(
        f"column 'gross_return', row {exactly.index[1]}, value -1.0: a session return of -100% or worse leaves no book to drift"
    ):
        run_backtest(_decisions(exactly.index, [1.0] * 4), exactly, COSTS)


def test_the_execution_lag_holds_the_first_decision_or_the_initial_books_share():
    """Lag 1 without an initial book: the first row holds the first decision's targets (w 0.2,
    exposure 1.0, not the second row's 0.8 / 0.5); with an empty initial book (0, 0) the share
    0 / 0 is undefined, so the first decision's weight is held, at the book's exposure 0."""
    rets = _returns([0.0, 0.01, 0.02, 0.03], [0.0] * 4)
    dec = _decisions(rets.index, [0.2, 0.8, 0.4, 0.6], [1.0, 0.5, 1.0, 1.0])
    lagged = run_backtest(dec, rets, COSTS, execution_lag=1)
    assert lagged["w"].tolist() == [0.2, 0.2, 0.8] and lagged["exposure"].tolist() == [1.0, 1.0, 0.5]
    empty = run_backtest(dec, rets, COSTS, initial_book=(0.0, 0.0), execution_lag=1)
    assert empty["w"].tolist() == [0.2, 0.2, 0.8] and empty["exposure"].tolist() == [0.0, 1.0, 0.5]


def test_without_an_initial_book_the_first_decision_trades_nothing():
    """The book before the first trade is the first targets: no entry trade, whatever the weight;
    the second row trades the drifted book back (here 0.3 / 0.7, flat returns: 2 x 0.4)."""
    rets = _returns([0.0] * 3, [0.0] * 3)
    bt = run_backtest(_decisions(rets.index, [0.3, 0.7, 0.7]), rets, COSTS)
    assert bt["traded"].tolist() == pytest.approx([0.0, 0.8])
    assert bt["drifted_q"].tolist() == pytest.approx([0.3, 0.3]) and bt["drifted_s"].tolist() == pytest.approx(
        [0.7, 0.7]
    )


def test_inverse_vol_by_hand_with_the_default_window_and_flat_legs():
    """SPY's returns are half QQQ's: vol_s / (vol_q + vol_s) = 1/3 exactly, from row 62 (the
    default 63-session window's first full one); 0.5 before it, and 0.5 where both legs are flat
    (0 / 0). The baseline frame has the same default, and 0.5 on sessions the returns do not cover."""
    n = 70
    r_q = 0.01 * np.sin(np.arange(n))
    rets = _returns(r_q, 0.5 * r_q)
    w = inverse_vol_weight(rets)
    assert w.name == "w" and (w.iloc[:62] == 0.5).all()
    np.testing.assert_allclose(w.iloc[62:], 1 / 3, rtol=1e-12)
    later = decision_ts_from_dates(pd.bdate_range(rets.index[-1].date() + pd.Timedelta(days=7), periods=2))
    dec = baseline_decisions(rets.index[60:].append(later), "inverse_vol", rets)
    np.testing.assert_allclose(dec["w"], [0.5, 0.5] + [1 / 3] * 8 + [0.5, 0.5], rtol=1e-12)
    flat = inverse_vol_weight(_returns([0.0] * 6, [0.0] * 6), vol_window=3)
    assert flat.tolist() == [0.5] * 6


def test_the_oracle_reads_its_labels_by_session_and_says_what_it_needs():
    rets = _returns([0.0] * 4, [0.0] * 4)
    idx = rets.index
    labels = pd.DataFrame({"best_weight": [0.1, 0.2, 0.3, 0.4]}, index=idx)
    oracle = baseline_decisions(idx[2:], "oracle", rets, labels=labels)
    assert oracle["w"].tolist() == [0.3, 0.4]
    with _raises("column 'best_weight': the oracle baseline needs labels with a best_weight column"):
        baseline_decisions(idx, "oracle", rets, labels=labels.rename(columns={"best_weight": "w"}))
