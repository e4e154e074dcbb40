"""The live daily decision: one session's allocation, one step of the allocator's state machine.

A :class:`ModelSchedule` says which model decides each session and with which settings: the
walk-forward folds (each fold's model on its test window, as the backtest), one fold, or the
promoted model after its hand-over. A decision for session ``D``:

1. truncates the leg panel at ``D``'s decision time and computes the features from that cut only;
2. takes the state after the previous session: the decision log's own (``continued``), the
   schedule's initial state on its first session (``first session``), or, when the log does not
   hold the previous session, the state the evaluated path reaches there, recomputed from data up
   to the previous session only (``reconstructed``; its features are step 1's rows before ``D``,
   which the causal features compute to the same bits as a cut at the previous session);
3. steps :func:`~allocator_pipeline.core.allocation.path.continue_path` one session with the
   scheduled model.

So a day-by-day replay equals the walk-forward backtest bit for bit, across fold boundaries too
(the state carries over a model change exactly as in the backtest).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from allocator_pipeline.core.allocation.path import AllocatorState, Segment, continue_path, run_segments
from allocator_pipeline.core.allocation.schedule import ModelSchedule, ScheduledModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import OUT_OF_RANGE_COLUMN
from allocator_pipeline.core.common.sessions import decision_ts_for, session_dates
from allocator_pipeline.core.common.storage import read_json, read_parquet, write_json, write_parquet
from allocator_pipeline.core.features.table import build_features
from allocator_pipeline.settings import FeatureSettings, Settings

ENVELOPE_FIELDS = ("dd", "guard_level", "exposure_dd", "vol", "vol_target", "exposure_vol", "drift_psi", "drift_status")
LOG_COLUMNS = [
    "session",
    "w_qqq",
    "w_spy",
    "exposure",
    "w_raw",
    "w_smoothed",
    "model_id",
    "mode",
    "model_age_sessions",
    "data_through",
]


DECISION_DECIMALS = 6
"""Decimals of the weights a person reads: the decision files and ``rebalance --json`` give
``w_qqq``, ``w_spy``, ``exposure``, ``cash``, ``w_raw`` and ``w_smoothed`` to 1e-6 of capital (one
dollar in a million; a grid weight such as 0.45 reads 0.45). ``log.parquet`` and each file's
``state`` keep the exact floats: the state continues the path, and the replay compares the log with
the backtest bit for bit."""


def published(decision: dict[str, Any]) -> dict[str, Any]:
    """A decision as written for people: the weights rounded to :data:`DECISION_DECIMALS` (``w_spy``
    and ``cash`` from the rounded ``w_qqq`` and ``exposure``, so each pair sums to 1), the rest as is.

    >>> published({"w_qqq": 0.5000000000000002, "w_spy": 0.4999999999999998, "exposure": 1.0, "cash": 0.0,
    ...            "w_raw": 0.55, "w_smoothed": 0.5000000000000002})["w_spy"]
    0.5
    """
    out = dict(decision)
    for key in ("w_qqq", "exposure", "w_raw", "w_smoothed"):
        out[key] = round(float(decision[key]), DECISION_DECIMALS) + 0.0  # + 0.0: no -0.0
    out["w_spy"] = round(1.0 - out["w_qqq"], DECISION_DECIMALS) + 0.0
    out["cash"] = round(1.0 - out["exposure"], DECISION_DECIMALS) + 0.0
    return out


class NoDataForSession(LookupError):
    """The requested session has no data (names the last available session)."""


def truncate_to_session(leg_panel: pd.DataFrame, session: str | pd.Timestamp) -> pd.DataFrame:
    """The leg panel cut at ``session``'s decision time (nothing after it is present).

    Raises :class:`NoDataForSession`, naming the last available session, when the data has no
    row for ``session``.
    """
    ts = decision_ts_for(pd.Timestamp(session))
    if ts not in leg_panel.index:
        last = session_dates(leg_panel.index[-1:])[0].date()
        raise NoDataForSession(
            f"no data for session {pd.Timestamp(session).date()}: the last available session is {last}"
        )
    return leg_panel.loc[:ts]


def _segments(schedule: ModelSchedule, features: pd.DataFrame, sessions: pd.DatetimeIndex) -> list[Segment]:
    out = []
    for scheduled in schedule.models:
        mine = sessions[
            (sessions >= scheduled.first) & ((sessions <= scheduled.last) if scheduled.last is not None else True)
        ]
        if len(mine) == 0:
            continue
        rows = features.loc[mine, scheduled.model.feature_names]
        proba = scheduled.model.decision_frame(rows)
        out.append(scheduled.model.segment(scheduled.model_id, proba, scheduled.settings))
    return out


def evaluated_path(
    schedule: ModelSchedule, leg_panel: pd.DataFrame, features: FeatureSettings, table: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, AllocatorState]:
    """The schedule's path from its first session through the leg panel's last row, vectorised,
    with features computed from that panel only (the walk-forward backtest when the schedule is
    the folds'). ``table``: the features already built from a panel that continues this one (the
    features are causal, so their rows up to the panel's last are the same bits; the leakage test
    proves it)."""
    if table is None:
        table = build_features(leg_panel, features)
    sessions = leg_panel.index[leg_panel.index >= schedule.first]
    segments = _segments(schedule, table, sessions)
    if not segments:
        raise InputDataError(f"no session to decide from {schedule.first.date()} in the data")
    return run_segments(segments, leg_panel, schedule.initial_state)


def _decision(
    row: pd.Series, scheduled: ScheduledModel, mode: str, cut: pd.DataFrame, state: AllocatorState, age: int
) -> dict[str, Any]:
    eu = {f"{k / 10:.1f}": float(row[f"eu_{k:02d}"]) for k in range(11)}
    return {
        "session": str(session_dates(pd.DatetimeIndex([row.name]))[0].date()),
        "decision_ts": pd.Timestamp(row.name).isoformat(),
        "w_qqq": float(row["w_final"]),
        "w_spy": float(1.0 - row["w_final"]),
        "exposure": float(row["exposure"]),
        "cash": float(1.0 - row["exposure"]),
        "w_raw": float(row["w_raw"]),
        # policy.hold_out_of_range: an input outside the model's training range, w_raw at the baseline
        OUT_OF_RANGE_COLUMN: bool(row[OUT_OF_RANGE_COLUMN]),
        "w_smoothed": float(row["w_smoothed"]),
        "expected_utility": eu,
        "envelope": {k: (row[k] if isinstance(row[k], str) else float(row[k])) for k in ENVELOPE_FIELDS},
        "model_id": scheduled.model_id,
        "model_age_sessions": age,
        # backtest.execution_lag: 0 trades at this session's close, 1 at the next session's close
        "execute_after_sessions": scheduled.settings.backtest.execution_lag,
        "mode": mode,
        "data_through": cut.index[-1].isoformat(),
        "state": state.to_dict(),
    }


def model_age(leg_panel: pd.DataFrame, scheduled: ScheduledModel, ts: pd.Timestamp) -> int:
    """Sessions from the model's last training session to ``ts`` (0 on that session)."""
    return int(((leg_panel.index > scheduled.trained_through) & (leg_panel.index <= ts)).sum())


def decide(
    schedule: ModelSchedule,
    leg_panel: pd.DataFrame,
    session: str | pd.Timestamp,
    settings: Settings,
    previous: AllocatorState | None,
    max_model_age: int | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The decision of one session (see the module docstring) and its path row.

    ``previous`` is the logged state (used when it is the state after the session just before
    ``session``); ``settings.features`` builds the features; ``max_model_age`` (sessions) refuses a
    model older than that, saying what to run.
    """
    cut = truncate_to_session(leg_panel, session)
    ts = cut.index[-1]
    scheduled = schedule.model_for(ts)
    age = model_age(cut, scheduled, ts)
    if max_model_age is not None and age > max_model_age:
        raise InputDataError(
            f"model {scheduled.model_id} is {age} sessions past its training end ({scheduled.trained_through.date()}), "
            f"over live.max_model_age_sessions = {max_model_age}: retrain and promote it again (`allocator run`)"
        )
    before = cut.iloc[:-1]
    prev_ts = before.index[-1] if len(before) else None
    initial = schedule.initial_state
    table = build_features(cut, settings.features)
    state: AllocatorState | None
    if previous is not None and previous.session == prev_ts:
        state, mode = previous, "continued"
    elif (initial is not None and initial.session == prev_ts) or (
        initial is None and (prev_ts is None or prev_ts < schedule.first)
    ):
        state, mode = initial, "first session"
    else:  # the state the evaluated path reaches at the previous session, from data up to it only
        _, state = evaluated_path(schedule, before, settings.features, table.iloc[:-1])
        mode = "reconstructed"
    rows = table.loc[[ts], scheduled.model.feature_names]
    proba = scheduled.model.decision_frame(rows)
    path, end = continue_path(scheduled.model.segment(scheduled.model_id, proba, scheduled.settings), cut, state)
    return _decision(path.iloc[-1], scheduled, mode, cut, end, age), path


class DecisionLog:
    """``<directory>/<session>.json`` files (:func:`published`) plus ``<directory>/log.parquet`` (one
    row per session, the exact floats).

    Writing a session replaces that session's file and row only (idempotent re-runs).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.log_path = self.directory / "log.parquet"

    def state_before(self, session: str, sessions: pd.DatetimeIndex) -> AllocatorState | None:
        """The logged state after the session right before ``session`` (None if not logged)."""
        ts = decision_ts_for(pd.Timestamp(session))
        pos = sessions.get_indexer([ts])[0]
        if pos <= 0:
            return None
        prev = str(session_dates(sessions[pos - 1 : pos])[0].date())
        path = self.directory / f"{prev}.json"
        return AllocatorState.from_dict(read_json(path)["state"]) if path.is_file() else None

    def write(self, decision: dict[str, Any]) -> Path:
        path = write_json(published(decision), self.directory / f"{decision['session']}.json")
        row = pd.DataFrame([{k: decision[k] for k in LOG_COLUMNS}]).set_index("session")
        log = read_parquet(self.log_path) if self.log_path.is_file() else row.iloc[0:0]
        log = pd.concat([log.drop(index=row.index, errors="ignore"), row]).sort_index()
        write_parquet(log, self.log_path)
        return path


def replay(
    schedule: ModelSchedule,
    leg_panel: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    settings: Settings,
    log: DecisionLog,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Decide ``sessions`` one by one exactly as the daily job does: each from the data up to that
    session, continuing the state that ``log`` holds for the session before (the first one
    reconstructs it when the log does not hold it). Every decision is written to ``log``.

    Returns the replayed log rows (index: session date strings), ``w_qqq``, ``exposure``,
    ``decision_ts`` and the other :data:`LOG_COLUMNS`.
    """
    rows = []
    for i, ts in enumerate(sessions):
        session = str(session_dates(pd.DatetimeIndex([ts]))[0].date())
        previous = log.state_before(session, leg_panel.index)
        decision, _ = decide(schedule, leg_panel, session, settings, previous)
        log.write(decision)
        rows.append({**{k: decision[k] for k in LOG_COLUMNS}, "decision_ts": ts})
        if progress is not None:
            progress(i + 1, len(sessions))
    return pd.DataFrame(rows).set_index("session")


def max_abs_diff(replayed: pd.DataFrame, path: pd.DataFrame) -> dict[str, float | int]:
    """Largest absolute differences between replayed decisions and a backtest path on the sessions
    both hold: ``w_final`` (replay ``w_qqq``) and ``exposure``; ``sessions`` compared."""
    common = pd.DatetimeIndex(replayed["decision_ts"]).intersection(path.index)
    rep = replayed.set_index("decision_ts").loc[common]
    bt = path.loc[common]
    return {
        "sessions": len(common),
        "w_final": float((rep["w_qqq"] - bt["w_final"]).abs().max()) if len(common) else float("nan"),
        "exposure": float((rep["exposure"] - bt["exposure"]).abs().max()) if len(common) else float("nan"),
    }
