"""The live monitor's core (``core/monitoring/monitor.py``) on small synthetic inputs: the range a
stretch of the backtest gives, and the three warnings at their thresholds. The monitor through
Dagster, on a promoted allocator run through scheduled days, is in ``test_pipeline.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.allocation import AllocatorState, EnvelopeState
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.sessions import decision_ts_for
from allocator_pipeline.core.evaluation.backtest import run_backtest
from allocator_pipeline.core.monitoring import (
    MONITOR_CHECKS,
    live_backtest,
    live_decisions,
    monitor_warnings,
    sessions_behind,
    stretch_band,
)
from allocator_pipeline.settings import LiveSettings

BOOT = {"block_length": 10, "resamples": 500, "seed": 13, "confidence": 0.9}


@pytest.mark.parametrize("sessions", [1, 30, 250])  # 250 > the 200 sessions of history: resamples chained
def test_a_constant_return_gives_a_range_of_one_point_compounded(sessions):
    band = stretch_band(np.full(200, 0.001), sessions, BOOT)
    expected = 1.001 ** np.arange(1, sessions + 1) - 1.0
    for column in ("lower", "median", "upper"):
        assert np.allclose(band[column].to_numpy(), expected, rtol=1e-12, atol=0)


def test_the_range_is_the_verdicts_bootstrap_quantiles_of_the_compounded_stretch():
    rng = np.random.default_rng(5)
    returns = rng.normal(0.0005, 0.012, 400)
    band = stretch_band(returns, 63, BOOT)
    assert band.equals(stretch_band(returns, 63, BOOT))  # the verdict's seed: the same range every time
    assert not band.equals(stretch_band(returns, 63, {**BOOT, "seed": 14}))
    wider = stretch_band(returns, 63, {**BOOT, "confidence": 0.98})
    assert (wider["lower"] < band["lower"]).all() and (wider["upper"] > band["upper"]).all()
    # a stretch of all 400 sessions is centred near the history's own compounded return
    whole = stretch_band(returns, 400, BOOT).iloc[-1]
    assert whole["lower"] < np.prod(1 + returns) - 1 < whole["upper"]


def test_sessions_behind_counts_closed_nyse_sessions_only():
    friday = decision_ts_for(pd.Timestamp("2025-11-21"))
    assert sessions_behind(friday, pd.Timestamp("2025-11-24 20:30", tz="UTC")) == (0, "2025-11-21")  # Monday 15:30 NY
    assert sessions_behind(friday, pd.Timestamp("2025-11-24 21:30", tz="UTC")) == (1, "2025-11-24")
    # Thanksgiving (Thursday 27th) is no session
    assert sessions_behind(friday, pd.Timestamp("2025-11-28 23:00", tz="UTC")) == (4, "2025-11-28")


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_the_live_record_continues_the_backtests_continuous_book(lag, make_settings):
    """One path of decisions backtested whole, against its tail after a hand-over backtested live
    from the state there (the book held, the decisions still pending): the same returns."""
    rng = np.random.default_rng(lag)
    index = pd.DatetimeIndex([decision_ts_for(d) for d in pd.bdate_range("2025-01-02", periods=80)])
    returns = pd.DataFrame(
        {
            "qqq_leg_return": rng.normal(0.0005, 0.015, 80),
            "spy_leg_return": rng.normal(0.0004, 0.01, 80),
            "cash_return": 0.0001,
        },
        index=index,
    )
    decided = pd.DataFrame({"w": rng.uniform(0, 1, 80), "exposure": rng.uniform(0.5, 1.5, 80)}, index=index)
    settings = make_settings(backtest={"execution_lag": lag})
    whole = run_backtest(decided, returns, CostModel.from_settings(settings.costs), execution_lag=lag)
    h = 40
    book = (float(whole["w"].iloc[h]), float(whole["exposure"].iloc[h]))  # executed over the session after h
    pending = tuple((float(w), float(e)) for w, e in decided.iloc[h - lag + 1 : h + 1].to_numpy()) if lag else ()
    state = AllocatorState(index[h], 0.5, EnvelopeState(book=book, pending=pending))
    live = live_backtest(decided.iloc[h + 1 :], returns, state, settings)
    assert list(live.index) == list(whole.index[h + 1 :])
    assert np.allclose(live["ret"].to_numpy(), whole["ret"].iloc[h + 1 :].to_numpy(), rtol=0, atol=1e-15)


def test_no_decision_yet_is_an_empty_live_run():
    sessions = pd.DatetimeIndex([decision_ts_for(d) for d in ("2025-09-24", "2025-09-25", "2025-09-26")])
    decisions, missing = live_decisions(pd.DataFrame(columns=["w_qqq", "exposure"]), sessions[0], sessions)
    assert decisions.empty and missing == 0


def summary(**changes) -> dict:
    base = {
        "model_id": "allocator-2025-08-27-abc",
        "handover_session": "2025-08-27",
        "realised_sessions": 20,
        "live_return": 0.01,
        "below_range": False,
        "range": {"lower": -0.05, "median": 0.01, "upper": 0.06, "confidence": 0.9},
        "model_age_sessions": 100,
        "max_model_age_sessions": 300,
        "age_warning_from": 279,
        "sessions_behind": 1,
        "last_leg_session": "2025-09-26",
        "latest_expected_session": "2025-09-29",
    }
    return {**base, **changes}


def test_each_warning_fires_at_its_threshold_and_not_before():
    live = LiveSettings()
    quiet = monitor_warnings(summary(), live)
    assert list(quiet) == list(MONITOR_CHECKS) and all(ok for ok, _ in quiet.values())
    below = monitor_warnings(summary(live_return=-0.07, below_range=True), live)["live_return_in_range"]
    assert below[0] is False and "-7.00% over 20 session(s)" in below[1] and "-5.00% .. +6.00%" in below[1]
    assert monitor_warnings(summary(model_age_sessions=278), live)["model_age_below_limit"][0]
    old = monitor_warnings(summary(model_age_sessions=279), live)["model_age_below_limit"]
    assert old[0] is False and "live.age_warning_sessions = 21" in old[1] and "allocator run" in old[1]
    assert monitor_warnings(summary(sessions_behind=live.max_stale_sessions), live)["inputs_arriving"][0]
    stale = monitor_warnings(summary(sessions_behind=live.max_stale_sessions + 1), live)["inputs_arriving"]
    assert stale[0] is False and "stopped arriving" in stale[1]
    fresh = monitor_warnings(summary(realised_sessions=0, live_return=None), live)["live_return_in_range"]
    assert fresh[0] and "no realised live session yet" in fresh[1]
