"""The allocator's state machine (core/allocation/path.py): its persisted state, where a path may
continue, what a fresh start holds, and the errors that name the session at fault."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.allocation.envelope import EnvelopeState
from allocator_pipeline.core.allocation.path import (
    AllocatorState,
    Segment,
    continue_path,
    fresh_start,
    run_segments,
    start_state,
    state_after,
)
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import OUT_OF_RANGE_COLUMN, PROBA_COLUMNS
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.settings import BacktestSettings, EnvelopeSettings, PolicySettings, Settings

N = 10
INDEX = decision_ts_from_dates(pd.bdate_range("2022-03-01", periods=N))
CONTEXT = pd.DataFrame(
    {
        "qqq_leg_return": 0.001 * np.arange(1, N + 1),  # 0.001, 0.002, ...: each session recognisable
        "spy_leg_return": -0.001 * np.arange(1, N + 1),
        "cash_return": np.full(N, 1e-4),
    },
    index=INDEX,
)
# argmax sizing, no smoothing, no cap, no envelope: w_raw = w_final, by hand
PLAIN = Settings(
    policy=PolicySettings(sizing="argmax", alpha=0.0, max_daily_change=1.0, no_trade_band=0.0, turnover_penalty=0.0),
    envelope=EnvelopeSettings(dd_guard=False, vol_scaling=False, drift_throttle=False, vol_window=5),
)


def _segment(rows: slice, bucket: int = 10, model_id: str = "fold:x", settings: Settings = PLAIN, **cols) -> Segment:
    """A model that puts probability 1 on ``bucket`` (M = identity: the argmax is that bucket)."""
    index = INDEX[rows]
    proba = pd.DataFrame(0.0, index=index, columns=PROBA_COLUMNS)
    proba[PROBA_COLUMNS[bucket]] = 1.0
    for name, values in cols.items():
        proba[name] = values
    return Segment(model_id, proba, np.eye(11), settings)


def test_the_state_round_trips_through_json_with_its_session_in_utc():
    """The decision log persists the state as JSON: the three keys, the session as ISO text; read
    back (also from a non-UTC offset of the same instant) it is the same state, in UTC."""
    state = AllocatorState(
        INDEX[3], 0.35, EnvelopeState(equity=1.1, peak=1.2, guard_sessions=2, book=(0.4, 0.9), pending=((0.3, 1.0),))
    )
    data = json.loads(json.dumps(state.to_dict()))
    assert set(data) == {"session", "w_smoothed", "envelope"}
    assert data["session"] == INDEX[3].isoformat() and data["w_smoothed"] == 0.35
    assert AllocatorState.from_dict(data) == state
    shifted = {**data, "session": INDEX[3].tz_convert("America/New_York").isoformat()}
    restored = AllocatorState.from_dict(shifted)
    assert restored == state and restored.session.tz is not None and restored.session.utcoffset() == pd.Timedelta(0)
    assert isinstance(restored.w_smoothed, float) and restored.envelope.book == (0.4, 0.9)


def test_a_fresh_start_holds_the_baseline_and_the_leg_returns_just_before_its_first_session():
    """vol_window 5: the 4 sessions strictly before the first row seed the volatility windows."""
    w0, env = fresh_start(CONTEXT, INDEX[6], PLAIN)
    assert w0 == 0.5 and env.equity == 1.0 and env.fresh and env.book == (0.5, 1.0)
    assert env.qqq_history == pytest.approx((0.003, 0.004, 0.005, 0.006))
    assert env.spy_history == pytest.approx((-0.003, -0.004, -0.005, -0.006))


def test_a_state_continues_only_at_the_session_right_after_its_own():
    """From the first session, to the last: the next session is allowed; a gap, a session that is
    not in the panel (even with the panel's first session next), or the panel's last session (no
    session after it) is refused, the error naming the model, the sessions and the column."""
    env = EnvelopeState(equity=1.05, book=(0.7, 1.0))
    for pos in (0, N - 2):
        w0, continued = start_state(CONTEXT, INDEX[pos + 1], PLAIN, AllocatorState(INDEX[pos], 0.7, env), "m")
        assert w0 == 0.7 and continued.equity == 1.05 and continued.book == (0.7, 1.0)
        start = max(pos + 1 - 4, 0)
        assert continued.qqq_history == pytest.approx(tuple(CONTEXT["qqq_leg_return"].iloc[start : pos + 1]))
    gap = AllocatorState(INDEX[1], 0.7, env)
    expected = (
        f"column 'decision_ts', row {INDEX[3]}: fold:2012 must continue at the session after {INDEX[1]} "
        "(the last decided one)"
    )
    with pytest.raises(InputDataError, match=f"^{re.escape(expected)}$"):
        start_state(CONTEXT, INDEX[3], PLAIN, gap, "fold:2012")
    outside = AllocatorState(INDEX[0] - pd.Timedelta(days=1), 0.7, env)
    with pytest.raises(InputDataError, match="must continue at the session after"):
        start_state(CONTEXT, INDEX[0], PLAIN, outside, "m")
    last = AllocatorState(INDEX[-1], 0.7, env)
    with pytest.raises(InputDataError, match="must continue at the session after"):
        start_state(CONTEXT, INDEX[-1], PLAIN, last, "m")
    with pytest.raises(InputDataError, match=f"^column 'decision_ts', row {re.escape(str(INDEX[5]))}: seg must"):
        continue_path(_segment(slice(5, 7), model_id="seg"), CONTEXT, gap)


def test_continue_path_errors_name_the_model_or_the_first_missing_session():
    empty = Segment("fold:2019", pd.DataFrame(columns=PROBA_COLUMNS), np.eye(11), PLAIN)
    with pytest.raises(InputDataError, match=r"^the segment of fold:2019 has no session$"):
        continue_path(empty, CONTEXT, None)
    later = decision_ts_from_dates(pd.bdate_range(INDEX[-1].date() + pd.Timedelta(days=7), periods=2))
    beyond = Segment("m", pd.DataFrame(0.1, index=INDEX[-2:].append(later), columns=PROBA_COLUMNS), np.eye(11), PLAIN)
    expected = f"column 'decision_ts', row {later[0]}: a decision session is missing from the leg panel"
    with pytest.raises(InputDataError, match=f"^{re.escape(expected)}$"):
        continue_path(beyond, CONTEXT, None)


def test_continue_path_holds_the_baseline_where_the_segment_flags_out_of_range_and_records_the_model():
    """All mass on bucket 1.0, no smoothing: 1.0 on every session but the flagged one (baseline 0.5)."""
    flags = np.array([False, True, False])
    path, _ = continue_path(_segment(slice(2, 5), **{OUT_OF_RANGE_COLUMN: flags}), CONTEXT, None)
    assert path["w_raw"].tolist() == [1.0, 0.5, 1.0] and path["w_final"].tolist() == [1.0, 0.5, 1.0]
    assert path[OUT_OF_RANGE_COLUMN].tolist() == flags.tolist()
    assert path.columns[0] == "model_id" and path["model_id"].dtype == "string"
    assert path["model_id"].tolist() == ["fold:x"] * 3


def test_a_segment_shorter_than_the_execution_lag_carries_the_start_states_pending_decisions():
    """Lag 2, one session decided (1.0): the state after it holds the start's second pending
    decision, then the new one, oldest first."""
    lagged = PLAIN.model_copy(update={"backtest": BacktestSettings(execution_lag=2)})
    pending = ((0.5, 1.0), (0.6, 1.0))
    before = AllocatorState(INDEX[2], 0.6, EnvelopeState(book=(0.5, 1.0), pending=pending))
    _, after = continue_path(_segment(slice(3, 4), settings=lagged), CONTEXT, before)
    assert after.session == INDEX[3] and after.envelope.pending == ((0.6, 1.0), (1.0, 1.0))


def test_state_after_reads_the_last_row_and_refuses_what_it_cannot_know():
    path, _ = continue_path(_segment(slice(0, 3)), CONTEXT, None)
    lag3 = state_after(path, 3)  # exactly as many rows as the lag: no start state needed
    assert lag3.envelope.pending == ((1.0, 1.0),) * 3 and lag3.w_smoothed == 1.0 and lag3.session == INDEX[2]
    with pytest.raises(InputDataError, match=r"^cannot take the state after an empty path$"):
        state_after(path.iloc[:0], 0)
    with pytest.raises(InputDataError, match=r"^a path of 3 rows needs its start state at execution_lag 4$"):
        state_after(path, 4)
    with pytest.raises(InputDataError, match="needs its start state"):
        state_after(path, 4, EnvelopeState(pending=((0.5, 1.0),)))  # a start with the wrong number pending


def test_segments_run_in_time_order_as_one_continuous_path():
    """Two models over consecutive blocks, given out of order, equal one model deciding both blocks
    with the same choices: the state (smoothing, the envelope's equity) carries across the change."""
    smooth = PLAIN.model_copy(
        update={"policy": PLAIN.policy.model_copy(update={"alpha": 0.5}), "envelope": EnvelopeSettings(vol_window=5)}
    )
    first, second = _segment(slice(4, 5), 10, "a", smooth), _segment(slice(5, 8), 10, "b", smooth)
    joined, state = run_segments([second, first], CONTEXT)
    whole, whole_state = continue_path(_segment(slice(4, 8), 10, "a", smooth), CONTEXT, None)
    assert joined["model_id"].tolist() == ["a", "b", "b", "b"]
    # alpha 0.5 from 0.5 toward 1.0: 0.75, 0.875, 0.9375, 0.96875 (not a restart at 0.75)
    assert joined["w_smoothed"].tolist() == pytest.approx([0.75, 0.875, 0.9375, 0.96875])
    pd.testing.assert_frame_equal(joined.drop(columns="model_id"), whole.drop(columns="model_id"))
    assert state == whole_state
    with pytest.raises(InputDataError, match=r"^no segment to run$"):
        run_segments([], CONTEXT)
