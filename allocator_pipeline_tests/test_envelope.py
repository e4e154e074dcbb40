"""Risk envelope: each stage on a hand example, causality, and continuation from a state."""

from __future__ import annotations

import json
import math
import re
import statistics

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.allocation.envelope import (
    ENVELOPE_COLUMNS,
    EnvelopeState,
    apply_envelope,
    trailing_portfolio_vol,
)
from allocator_pipeline.core.allocation.path import state_after
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.evaluation.backtest import run_backtest
from allocator_pipeline.settings import EnvelopeSettings

OFF = dict(dd_guard=False, vol_scaling=False, drift_throttle=False)
ON = dict(dd_guard=True, vol_scaling=True, drift_throttle=True)


def _ctx(r_q, r_s=None, r_c=None) -> pd.DataFrame:
    n = len(r_q)
    return pd.DataFrame(
        {
            "qqq_leg_return": np.asarray(r_q, float),
            "spy_leg_return": np.zeros(n) if r_s is None else np.asarray(r_s, float),
            "cash_return": np.full(n, 0.001) if r_c is None else np.asarray(r_c, float),
        },
        index=decision_ts_from_dates(pd.bdate_range("2022-03-01", periods=n)),
    )


def _random_ctx(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ctx = _ctx(rng.normal(0.0, 0.02, n), rng.normal(0.0, 0.012, n), np.full(n, 0.0001))
    ctx["qqq_drift_psi"] = rng.uniform(0, 0.5, n)
    ctx["spy_drift_psi"] = rng.uniform(0, 0.5, n)
    return ctx


def test_drawdown_guard_hand_example():
    """The guard cuts the tilt first, then the exposure, on equity the held book earned."""
    ctx = _ctx([0.0, -0.05, -0.06, -0.20, -0.03, 0.30])
    s = EnvelopeSettings(
        **{**OFF, "dd_guard": True},
        dd_soft=0.10,
        dd_hard=0.20,
        dd_soft_tilt_cut=0.5,
        dd_soft_exposure=0.75,
        dd_hard_exposure=0.5,
    )
    out = apply_envelope(np.ones(6), ctx, s, baseline_weight=0.5)
    # Row d's return is earned by row d-1's decision (SPY flat, cash 0.1%); exposure 1 without
    # volatility scaling (only that stage levers up).
    eq = [1.0]
    eq.append(eq[-1] * (1 - 0.05))  # row 0: w 1, exposure 1                      -> dd 5%
    eq.append(eq[-1] * (1 - 0.06))  # row 1: untouched                            -> dd 10.7%
    eq.append(eq[-1] * (1 + 0.75 * 0.75 * -0.20 + 0.25 * 0.001))  # row 2: soft: w 0.75 (half the tilt), e 0.75
    eq.append(eq[-1] * (1 + 0.5 * 0.5 * -0.03 + 0.5 * 0.001))  # row 3: dd 20.7%: hard, w 0.5, e 0.5
    eq.append(eq[-1] * (1 + 0.5 * 0.5 * 0.30 + 0.5 * 0.001))  # row 4: dd 21.2%: still hard
    np.testing.assert_allclose(out["equity"], eq, rtol=1e-14)
    dd = [1 - e / max(eq[: i + 1]) for i, e in enumerate(eq)]
    np.testing.assert_allclose(out["dd"], dd, atol=1e-14)
    assert 0.10 < dd[5] < 0.20
    assert out["guard_level"].tolist() == [0, 0, 1, 2, 2, 1]
    np.testing.assert_array_equal(out["w_final"], [1.0, 1.0, 0.75, 0.5, 0.5, 0.75])
    np.testing.assert_array_equal(out["exposure"], [1.0, 1.0, 0.75, 0.5, 0.5, 0.75])

    off = apply_envelope(np.ones(6), ctx, EnvelopeSettings(**OFF), baseline_weight=0.5)
    assert (off["exposure"] == 1.0).all() and off["dd"].iloc[2] > 0.10  # tracked, not acted on


def test_drawdown_guard_re_risks_after_its_reset_clock():
    """After dd_reset_sessions sessions beyond dd_soft the peak resets and the caps lift."""
    ctx = _ctx([0.0, -0.3] + [0.0] * 6)
    s = EnvelopeSettings(**{**OFF, "dd_guard": True}, max_exposure=1.0, dd_reset_sessions=3)
    out = apply_envelope(np.full(8, 0.9), ctx, s, baseline_weight=0.5)
    assert out["guard_level"].tolist() == [0, 2, 2, 0, 0, 0, 0, 0]
    assert out["guard_sessions"].tolist() == [0, 1, 2, 0, 0, 0, 0, 0]
    # the reset takes the loss: a new peak at the current equity, full exposure and tilt for a day
    assert out["peak"].iloc[3] == out["equity"].iloc[3] and out["exposure"].iloc[3] == 1.0
    assert out["dd"].iloc[3] == 0.0 and out["dd"].iloc[2] > 0.05  # measured from the new peak: none
    assert out["w_final"].iloc[3] == 0.9 and out["w_final"].iloc[2] == 0.5
    # without the reset the flat legs never bring the equity back: the guard would hold for ever
    held = apply_envelope(np.full(8, 0.9), ctx, s.model_copy(update={"dd_reset_sessions": 100}), 0.5)
    assert (held["guard_level"].iloc[1:] == 2).all()


def test_volatility_scaling_hand_example():
    r_q = [0.01, -0.02, 0.015, 0.0, -0.01, 0.03, -0.025, 0.001]
    r_s = [0.005, -0.01, 0.004, 0.002, -0.006, 0.01, -0.012, 0.0]
    w = np.array([0.5] * 6 + [1.0, 0.0])
    s = EnvelopeSettings(
        **{**OFF, "vol_scaling": True}, vol_window=5, vol_target=0.2, max_exposure=1.2, exposure_band=0
    )
    out = apply_envelope(w, _ctx(r_q, r_s), s, baseline_weight=0.5)
    assert out["vol"].iloc[:4].isna().all() and (out["exposure_vol"].iloc[:4] == 1.0).all()  # warm-up
    for d in range(4, 8):
        port = [w[d] * r_q[i] + (1 - w[d]) * r_s[i] for i in range(d - 4, d + 1)]  # today's weight
        vol = statistics.stdev(port) * math.sqrt(252)
        assert out["vol"].iloc[d] == pytest.approx(vol, rel=1e-12)
        assert out["exposure_vol"].iloc[d] == pytest.approx(min(1.2, 0.2 / vol), rel=1e-12)
    assert out["exposure_vol"].iloc[6] < 1.0 < out["vol"].iloc[6] / 0.2  # the all-QQQ row is scaled down
    assert out["exposure_vol"].iloc[7] == 1.2  # the calm all-SPY row is levered up to the cap
    np.testing.assert_allclose(out["exposure"], np.minimum(out["exposure_dd"], out["exposure_vol"]))


def test_the_exposure_band_keeps_the_previous_exposure_for_small_moves():
    """exposure_band 0.1: a target within 0.1 of the exposure decided last keeps it; a larger move,
    or the guard's cap below it, goes through whole."""
    ctx = _ctx([0.0] * 6)
    s = EnvelopeSettings(**OFF, exposure_band=0.1)
    targets = [1.05, 0.97, 1.2, 1.13, 1.35, 0.9]
    out = apply_envelope(np.full(6, 0.5), ctx, s.model_copy(update={"vol_scaling": True}), 0.5)
    assert (out["exposure"] == 1.0).all()  # no volatility in the flat legs: every target is 1
    from unittest import mock

    import allocator_pipeline.core.allocation.envelope as envelope

    path = []
    last = 1.0  # the fresh path's baseline book
    for t in targets:
        last = last if abs(t - last) <= 0.1 else t
        path.append(last)
    assert path == [1.0, 1.0, 1.2, 1.2, 1.35, 0.9]
    with mock.patch.object(envelope, "trailing_portfolio_vol", return_value=np.array([0.2 / t for t in targets])):
        banded = apply_envelope(
            np.full(6, 0.5), ctx, s.model_copy(update={"vol_scaling": True, "vol_target": 0.2}), 0.5
        )
    np.testing.assert_allclose(banded["exposure_vol"], targets, rtol=1e-12)
    np.testing.assert_allclose(banded["exposure"], path, rtol=1e-12)


def test_volatility_target_is_the_baseline_portfolios_trailing_volatility():
    """vol_target None: the target is the baseline portfolio's volatility over the trailing
    vol_target_window rows (at least 252), from rows <= d only."""
    rng = np.random.default_rng(3)
    n = 400
    r_q, r_s = rng.normal(0, 0.015, n), rng.normal(0, 0.01, n)
    s = EnvelopeSettings(**{**OFF, "vol_scaling": True}, vol_window=10, vol_target_window=300, vol_target_scale=0.8)
    out = apply_envelope(np.full(n, 0.8), _ctx(r_q, r_s), s, baseline_weight=0.4)
    assert out["vol_target"].iloc[:251].isna().all() and (out["exposure_vol"].iloc[:251] == 1.0).all()
    for d in (251, 299, 350, 399):
        base = 0.4 * r_q[max(0, d - 299) : d + 1] + 0.6 * r_s[max(0, d - 299) : d + 1]
        target = 0.8 * statistics.stdev(base) * math.sqrt(252)
        assert out["vol_target"].iloc[d] == pytest.approx(target, rel=1e-12)
        assert out["exposure_vol"].iloc[d] == pytest.approx(min(1.5, target / out["vol"].iloc[d]), rel=1e-12)


def test_drift_throttle_hand_example_and_missing_data():
    ctx = _ctx([0.0] * 4)
    ctx["qqq_drift_psi"] = [0.1, 0.4, np.nan, 0.3]
    ctx["spy_drift_psi"] = [0.1, 0.2, np.nan, 0.1]
    s = EnvelopeSettings(**{**OFF, "drift_throttle": True}, drift_psi_threshold=0.25, drift_shrink=0.5)
    w = np.array([0.9, 0.9, 0.9, 0.1])
    out = apply_envelope(w, ctx, s, baseline_weight=0.5)
    np.testing.assert_allclose(out["drift_psi"].iloc[[0, 1, 3]], [0.1, 0.3, 0.2])
    assert out["drift_throttled"].tolist() == [False, True, False, False]
    np.testing.assert_allclose(out["w_final"], [0.9, 0.9 + 0.5 * (0.5 - 0.9), 0.9, 0.1])
    assert out["drift_status"].tolist() == ["ok", "throttled", "no drift data", "ok"]

    passive = apply_envelope(w, ctx.drop(columns=["qqq_drift_psi", "spy_drift_psi"]), s, 0.5)
    assert (passive["drift_status"] == "no drift data").all()
    np.testing.assert_array_equal(passive["w_final"], w)

    disabled = apply_envelope(w, ctx, EnvelopeSettings(**OFF), 0.5)
    np.testing.assert_array_equal(disabled["w_final"], w)
    assert not disabled["drift_throttled"].any()


def test_envelope_is_causal():
    n, d = 120, 70
    ctx = _random_ctx(n, seed=11)
    w = np.random.default_rng(11).uniform(0, 1, n)
    s = EnvelopeSettings(**ON, dd_soft=0.03, dd_hard=0.06, vol_target=0.08, vol_window=15)
    base = apply_envelope(w, ctx, s, 0.5)

    future = ctx.copy()
    future.iloc[d + 1 :] = future.iloc[d + 1 :].to_numpy() * -3.0 + 0.01  # every column after D
    changed_future = apply_envelope(w, future, s, 0.5)
    pd.testing.assert_frame_equal(changed_future.iloc[: d + 1], base.iloc[: d + 1], check_exact=True)
    assert not changed_future.iloc[d + 1 :].equals(base.iloc[d + 1 :])

    past = ctx.copy()
    past.iloc[d - 3, past.columns.get_loc("qqq_leg_return")] += 0.05  # a change before D shows up
    changed_past = apply_envelope(w, past, s, 0.5)
    assert not np.array_equal(changed_past["exposure"].iloc[: d + 1], base["exposure"].iloc[: d + 1])


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_continuing_from_state_equals_full_path(lag):
    n = 100
    ctx = _random_ctx(n, seed=4)
    w = np.random.default_rng(4).uniform(0, 1, n)
    s = EnvelopeSettings(**ON, dd_soft=0.015, dd_hard=0.03, vol_target=0.1, vol_window=20, dd_reset_sessions=15)
    full = apply_envelope(w, ctx, s, 0.5, execution_lag=lag)
    assert full["guard_level"].nunique() == 3
    cut = 40 + int(np.flatnonzero(full["guard_sessions"].iloc[40:] > 0)[0]) + 1  # the guard's clock runs at the cut

    def resumed(state, rows):
        return state.envelope.__class__(
            **{
                **state.envelope.__dict__,
                "qqq_history": tuple(ctx["qqq_leg_return"].iloc[rows.start - 19 : rows.start]),
                "spy_history": tuple(ctx["spy_leg_return"].iloc[rows.start - 19 : rows.start]),
            }
        )

    head = apply_envelope(w[:cut], ctx.iloc[:cut], s, 0.5, execution_lag=lag)
    state = state_after(head.assign(w_smoothed=w[:cut]), lag)
    env = EnvelopeState.from_dict(json.loads(json.dumps(resumed(state, range(cut, cut + 1)).to_dict())))
    middle = apply_envelope(w[cut : cut + 1], ctx.iloc[cut : cut + 1], s, 0.5, env, execution_lag=lag)  # one day
    state2 = state_after(middle, lag, start=env)
    env2 = resumed(state2, range(cut + 1, n))
    tail = apply_envelope(w[cut + 1 :], ctx.iloc[cut + 1 :], s, 0.5, env2, execution_lag=lag)
    pd.testing.assert_frame_equal(pd.concat([head, middle, tail]), full, check_exact=True)


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_the_guard_follows_the_book_the_backtest_holds(lag):
    """The guard's equity compounds exactly the gross returns the backtest earns with the
    decisions executed ``execution_lag`` sessions later (the baseline book held before)."""
    n = 80
    ctx = _random_ctx(n, seed=9)
    w = np.random.default_rng(9).uniform(0, 1, n)
    s = EnvelopeSettings(**ON, dd_soft=0.03, dd_hard=0.06, vol_window=10, vol_target=0.12)
    out = apply_envelope(w, ctx, s, 0.4, execution_lag=lag)
    decisions = pd.DataFrame({"w": out["w_final"], "exposure": out["exposure"]})
    bt = run_backtest(decisions, ctx, CostModel(0.0, 0.0, 0.0), initial_book=(0.4, 0.6), execution_lag=lag)
    np.testing.assert_allclose(out["equity"].iloc[1:], np.cumprod(1.0 + bt["gross_return"].to_numpy()), rtol=1e-12)
    np.testing.assert_array_equal(out["w_book"].iloc[:-1], bt["w"])  # the book over the next session
    np.testing.assert_array_equal(out["exposure_book"].iloc[:-1], bt["exposure"])
    assert (out["exposure"] != 1.0).any() and (out["guard_level"] > 0).any()


def test_envelope_refuses_bad_input():
    ctx = _ctx([0.01, np.nan, 0.0])
    with pytest.raises(InputDataError, match="qqq_leg_return"):
        apply_envelope(np.full(3, 0.5), ctx, EnvelopeSettings(), 0.5)
    with pytest.raises(InputDataError, match="w_smoothed"):
        apply_envelope(np.array([0.5, 1.2, 0.5]), _ctx([0.0] * 3), EnvelopeSettings(), 0.5)


def test_a_fresh_state_with_history_earns_nothing_on_its_first_row():
    from allocator_pipeline.settings import EnvelopeSettings

    index = decision_ts_from_dates(pd.bdate_range("2024-01-02", periods=3))
    context = pd.DataFrame(
        {"qqq_leg_return": [-0.30, 0.01, 0.0], "spy_leg_return": [-0.30, 0.01, 0.0], "cash_return": [0.0, 0.0, 0.0]},
        index=index,
    )
    history = EnvelopeState(fresh=True, qqq_history=(0.01, -0.01), spy_history=(0.0, 0.01))
    path = apply_envelope(
        np.full(3, 0.5), context, EnvelopeSettings(dd_guard=True, vol_scaling=False, max_exposure=1.0), 0.5, history
    )
    # the -30% of row 0 was realised before the first decision: no equity loss, no drawdown cut
    assert path["equity"].iloc[0] == 1.0 and path["exposure_dd"].iloc[0] == 1.0
    assert path["equity"].iloc[1] == pytest.approx(1.01)
    held = apply_envelope(
        np.full(3, 0.5),
        context,
        EnvelopeSettings(dd_guard=True, vol_scaling=False, max_exposure=1.0),
        0.5,
        EnvelopeState(qqq_history=(0.01, -0.01), spy_history=(0.0, 0.01)),
    )
    assert held["equity"].iloc[0] == pytest.approx(0.70)  # a continuing state did hold the book


# ----------------------------------------------------------------------------- state, output and errors, by hand


def test_a_fresh_state_holds_the_baseline_book_pending_lag_times_and_its_history():
    state = EnvelopeState.start(0.3, 2, qqq_history=(0.01, 0.02), spy_history=(-0.01,))
    assert state.book == (0.3, 1.0) and state.pending == ((0.3, 1.0), (0.3, 1.0))
    assert state.qqq_history == (0.01, 0.02) and state.spy_history == (-0.01,)
    assert state.fresh and state.equity == 1.0 and state.peak == 1.0 and state.guard_sessions == 0


def test_the_state_round_trips_through_json_and_reads_a_state_written_before_the_book():
    """A fresh state with everything set survives JSON; a state written before the book, the
    pending decisions, the clock, the history and the fresh flag were recorded held its last
    decision (lag 0) and reads as not fresh, with an empty clock and history."""
    state = EnvelopeState(
        equity=1.1,
        peak=1.2,
        guard_sessions=3,
        book=(0.4, 0.9),
        pending=((0.6, 1.0),),
        qqq_history=(0.01,),
        spy_history=(0.02,),
        fresh=True,
    )
    assert EnvelopeState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    old = EnvelopeState.from_dict({"equity": 1.05, "peak": 1.1, "w_final": 0.7, "exposure": 0.8})
    assert old == EnvelopeState(equity=1.05, peak=1.1, guard_sessions=0, book=(0.7, 0.8), pending=(), fresh=False)
    assert old.fresh is False and old.qqq_history == () and old.spy_history == ()


def test_envelope_errors_name_the_column_session_and_value():
    """The first weight outside [0, 1] is named (0 and 1 themselves are valid), NaN included; a
    missing or non-finite return column is named with its session; so is a wrong shape or a
    state whose pending decisions do not match the lag."""
    ctx = _ctx([0.0] * 4)
    s = EnvelopeSettings(**OFF)
    with pytest.raises(
        InputDataError, match=re.escape(f"column 'w_smoothed', row {ctx.index[2]}, value 1.5: weight must be in [0, 1]")
    ):
        apply_envelope(np.array([0.0, 1.0, 1.5, -0.5]), ctx, s, 0.5)
    with pytest.raises(
        InputDataError, match=re.escape(f"column 'w_smoothed', row {ctx.index[1]}, value nan: weight must be in [0, 1]")
    ):
        apply_envelope(np.array([0.5, np.nan, 0.5, 0.5]), ctx, s, 0.5)
    with pytest.raises(
        InputDataError, match=re.escape("column 'w_smoothed': w_smoothed has shape (3,), the context has 4 rows")
    ):
        apply_envelope(np.full(3, 0.5), ctx, s, 0.5)
    with pytest.raises(
        InputDataError, match=re.escape("column 'cash_return': envelope context lacks a required column")
    ):
        apply_envelope(np.full(4, 0.5), ctx.drop(columns="cash_return"), s, 0.5)
    broken = ctx.copy()
    broken.iloc[3, 1] = np.inf
    with pytest.raises(
        InputDataError,
        match=re.escape(f"column 'spy_leg_return', row {ctx.index[3]}, value inf: return must be a finite number"),
    ):
        apply_envelope(np.full(4, 0.5), broken, s, 0.5)
    with pytest.raises(
        InputDataError, match=re.escape("the envelope state holds 0 pending decisions, execution_lag is 1")
    ):
        apply_envelope(np.full(4, 0.5), ctx, s, 0.5, state0=EnvelopeState(), execution_lag=1)


def test_the_output_columns_and_their_types():
    """The documented columns in order; the guard's level and clock are integers, the throttle's
    flag a bool, the drift status a string: "no drift data" without drift columns (PSI NaN), and
    with the throttle off "disabled" where a PSI is known."""
    ctx = _ctx([0.01, -0.02, 0.0])
    out = apply_envelope(np.full(3, 0.5), ctx, EnvelopeSettings(**OFF), 0.5)
    assert list(out.columns) == ENVELOPE_COLUMNS
    assert out["guard_level"].dtype.kind == "i" and out["guard_sessions"].dtype.kind == "i"
    assert out["drift_throttled"].dtype == bool and not out["drift_throttled"].any()
    assert out["drift_status"].dtype == "string" and out["drift_status"].tolist() == ["no drift data"] * 3
    assert out["drift_psi"].dtype == float and out["drift_psi"].isna().all()
    ctx["qqq_drift_psi"] = [0.9, np.nan, 0.1]
    ctx["spy_drift_psi"] = [np.nan, np.nan, 0.3]
    off = apply_envelope(np.full(3, 0.5), ctx, EnvelopeSettings(**OFF), 0.5)
    assert off["drift_status"].tolist() == ["disabled", "no drift data", "disabled"]
    assert off["drift_throttled"].dtype == bool and not off["drift_throttled"].any()
    assert off["drift_psi"].tolist()[::2] == pytest.approx([0.9, 0.2])


def test_the_drift_throttle_acts_strictly_above_its_threshold():
    """Mean PSI 0.5 exactly at threshold 0.5 is not a throttle; 0.5 + 1e-9 is."""
    ctx = _ctx([0.0, 0.0])
    ctx["qqq_drift_psi"] = [0.5, 0.5 + 1e-9]
    out = apply_envelope(
        np.full(2, 0.9), ctx, EnvelopeSettings(**{**OFF, "drift_throttle": True}, drift_psi_threshold=0.5), 0.5
    )
    assert out["drift_status"].tolist() == ["ok", "throttled"] and out["drift_throttled"].tolist() == [False, True]


def test_zero_volatility_does_not_lever_up():
    """Flat legs: volatility 0 (finite) leaves exposure 1, not target / 0 capped at max_exposure."""
    ctx = _ctx([0.0] * 8)
    s = EnvelopeSettings(
        **{**OFF, "vol_scaling": True}, vol_window=5, vol_target=0.1, max_exposure=2.0, exposure_band=0.0
    )
    out = apply_envelope(np.full(8, 0.5), ctx, s, 0.5)
    assert out["vol"].iloc[4:].tolist() == [0.0] * 4 and out["exposure_vol"].tolist() == [1.0] * 8


def test_trailing_vol_warms_up_from_min_rows_at_each_rows_own_weight():
    """Two history rows, four rows to evaluate at weights 0.2 .. 0.8, window 5, min_rows 2; by
    hand (statistics.stdev): row k uses the leg returns up to it (all of them while fewer than 5,
    the last 5 after), at its own weight; the default is no history."""
    r_q = np.array([0.01, -0.02, 0.03, 0.0, -0.01, 0.02])
    r_s = np.array([0.0, 0.01, -0.01, 0.02, 0.01, -0.02])
    w = np.array([0.2, 0.4, 0.6, 0.8])
    out = trailing_portfolio_vol(w, r_q, r_s, window=5, n_history=2, min_rows=2)
    for k, (lo, hi) in enumerate([(0, 3), (0, 4), (0, 5), (1, 6)]):
        port = w[k] * r_q[lo:hi] + (1 - w[k]) * r_s[lo:hi]
        assert out[k] == pytest.approx(statistics.stdev(port) * math.sqrt(252), rel=1e-12), k
    # one row to evaluate after three of history: 4 rows, fewer than the window, at least min_rows
    one = trailing_portfolio_vol(np.array([1.0]), r_q[:4], r_s[:4], window=5, n_history=3, min_rows=2)
    assert one[0] == pytest.approx(statistics.stdev(r_q[:4]) * math.sqrt(252), rel=1e-12)
    plain = trailing_portfolio_vol(np.ones(4), r_q[:4], r_s[:4], window=3)
    assert math.isnan(plain[0]) and math.isnan(plain[1])
    assert plain[2] == pytest.approx(statistics.stdev(r_q[:3]) * math.sqrt(252), rel=1e-12)


def test_the_guard_acts_strictly_beyond_its_thresholds():
    """Both legs lose 25% on row 1 (cash 0, the baseline book at exposure 1): equity 0.75, a
    drawdown of exactly 0.25 (binary-exact). At dd_soft = 0.25 that is not beyond the soft
    threshold; at dd_hard = 0.25 it is soft, not hard."""
    ctx = _ctx([0.0, -0.25, 0.0], [0.0, -0.25, 0.0], [0.0, 0.0, 0.0])
    guard = {**OFF, "dd_guard": True, "dd_reset_sessions": 10, "max_exposure": 1.0}
    at_soft = apply_envelope(np.full(3, 0.5), ctx, EnvelopeSettings(**guard, dd_soft=0.25, dd_hard=0.5), 0.5)
    assert at_soft["dd"].tolist() == [0.0, 0.25, 0.25] and at_soft["guard_level"].tolist() == [0, 0, 0]
    at_hard = apply_envelope(np.full(3, 0.5), ctx, EnvelopeSettings(**guard, dd_soft=0.125, dd_hard=0.25), 0.5)
    assert at_hard["dd"].tolist() == [0.0, 0.25, 0.25] and at_hard["guard_level"].tolist() == [0, 1, 1]


def test_the_exposure_band_and_the_guards_cap_are_inclusive():
    """Targets by a mocked volatility (binary-exact ratios). A move of exactly the band keeps the
    previous exposure; so does a guard cap exactly at the previous exposure."""
    from unittest import mock

    import allocator_pipeline.core.allocation.envelope as envelope

    flat = _ctx([0.0] * 2, [0.0] * 2, [0.0] * 2)
    s = EnvelopeSettings(**{**OFF, "vol_scaling": True}, vol_target=0.625, max_exposure=1.5, exposure_band=0.25)
    with mock.patch.object(envelope, "trailing_portfolio_vol", return_value=np.array([0.5, 0.5])):
        out = apply_envelope(np.full(2, 0.5), flat, s, 0.5)
    # target 1.25, the fresh book's exposure 1: a move of exactly 0.25 is inside the band
    assert out["exposure_vol"].tolist() == [1.25, 1.25] and out["exposure"].tolist() == [1.0, 1.0]
    # row 1 at the soft level after a 25% loss: cap dd_soft_exposure 1.0 = the previous exposure;
    # the target 0.875 is within the band 0.125 of it, so the exposure stays 1.0
    ctx = _ctx([0.0, -0.25], [0.0, -0.25], [0.0, 0.0])
    guarded = EnvelopeSettings(
        **{**OFF, "vol_scaling": True, "dd_guard": True},
        vol_target=0.875,
        max_exposure=1.0,
        exposure_band=0.125,
        dd_soft=0.125,
        dd_hard=0.5,
        dd_soft_exposure=1.0,
        dd_reset_sessions=10,
    )
    with mock.patch.object(envelope, "trailing_portfolio_vol", return_value=np.array([0.875, 1.0])):
        out = apply_envelope(np.full(2, 0.5), ctx, guarded, 0.5)
    assert out["guard_level"].tolist() == [0, 1] and out["exposure_dd"].tolist() == [1.0, 1.0]
    assert out["exposure_vol"].tolist() == [1.0, 0.875] and out["exposure"].tolist() == [1.0, 1.0]


def test_the_volatility_target_counts_a_continued_paths_history():
    """vol_target None, 200 sessions of history before 100 rows: row d has 201 + d sessions, so
    the target starts at row 51 (252 sessions) and from row 99 spans the full window of 300."""
    rng = np.random.default_rng(5)
    h, n = 200, 100
    q, sp = rng.normal(0, 0.015, h + n), rng.normal(0, 0.01, h + n)
    s = EnvelopeSettings(**{**OFF, "vol_scaling": True}, vol_window=10, vol_target_window=300, vol_target_scale=0.8)
    state = EnvelopeState.start(0.4, 1, qqq_history=tuple(q[:h]), spy_history=tuple(sp[:h]))
    out = apply_envelope(np.full(n, 0.8), _ctx(q[h:], sp[h:]), s, 0.4, state, execution_lag=1)
    assert out["vol_target"].iloc[:51].isna().all() and out["vol_target"].iloc[51:].notna().all()
    for d in (51, 80, 99):
        rows = slice(max(0, h + d - 299), h + d + 1)
        target = 0.8 * statistics.stdev(0.4 * q[rows] + 0.6 * sp[rows]) * math.sqrt(252)
        assert out["vol_target"].iloc[d] == pytest.approx(target, rel=1e-12)
