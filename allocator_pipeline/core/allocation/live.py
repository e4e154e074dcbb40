"""The live daily decision: one session's allocation from a stored model.

It runs exactly the backtest's code path (``fold_pipeline.fold_path`` -> ``policy.allocator_path``)
on features computed from data up to that session only:

* ``fold`` mode (a fold's model): the path runs from the fold's first test session to ``D`` with
  a fresh start, so ``w_final`` equals the fold backtest's ``w_final`` for ``D`` exactly.
* ``promoted`` mode, continuing: the decision log holds the previous session's decision with
  its smoothing state (``w_smoothed``) and envelope state; the path continues one row from there.
* ``promoted`` mode, cold start (no decision for the previous session in the log): the path runs
  from a fresh start over the ````warmup_sessions`` sessions ending at ``D`` (deterministic), and the
  decision says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from allocator_pipeline.core.allocation.envelope import EnvelopeState
from allocator_pipeline.core.allocation.fold_model import FoldModel, fold_path, probability_frame
from allocator_pipeline.core.allocation.policy import allocator_end_state, allocator_path
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_for, session_dates
from allocator_pipeline.core.common.storage import read_json, read_parquet, write_json, write_parquet
from allocator_pipeline.core.features.table import build_features
from allocator_pipeline.settings import Settings

ENVELOPE_FIELDS = ("dd", "exposure_dd", "vol", "exposure_vol", "drift_psi", "drift_status")
LOG_COLUMNS = ["session", "w_qqq", "w_spy", "exposure", "w_raw", "w_smoothed", "model_id", "mode", "data_through"]
DEFAULT_WARMUP_SESSIONS = 252


class NoDataForSession(LookupError):
    """The requested session has no data (names the last available session)."""


@dataclass(frozen=True)
class LiveInputs:
    """Features and leg panel truncated at the decision session (nothing after it is present)."""

    features: pd.DataFrame
    leg_panel: pd.DataFrame
    decision_ts: pd.Timestamp


def truncate_to_session(leg_panel: pd.DataFrame, session: str | pd.Timestamp, settings: Settings) -> LiveInputs:
    """The leg panel cut at ``session``'s decision time, and features computed from that cut only.

    Raises :class:`NoDataForSession`, naming the last available session, when the data has no
    row for ``session``.
    """
    ts = decision_ts_for(pd.Timestamp(session))
    if ts not in leg_panel.index:
        last = session_dates(leg_panel.index[-1:])[0].date()
        raise NoDataForSession(
            f"no data for session {pd.Timestamp(session).date()}: the last available session is {last}"
        )
    cut = leg_panel.loc[:ts]
    return LiveInputs(build_features(cut, settings.features), cut, ts)


def _decision(path: pd.DataFrame, model_id: str, mode: str, inputs: LiveInputs, state: EnvelopeState) -> dict[str, Any]:
    row = path.iloc[-1]
    eu = {f"{k / 10:.1f}": float(row[f"eu_{k:02d}"]) for k in range(11)}
    return {
        "session": str(session_dates(path.index[-1:])[0].date()),
        "decision_ts": path.index[-1].isoformat(),
        "w_qqq": float(row["w_final"]),
        "w_spy": float(1.0 - row["w_final"]),
        "exposure": float(row["exposure"]),
        "cash": float(1.0 - row["exposure"]),
        "w_raw": float(row["w_raw"]),
        "w_smoothed": float(row["w_smoothed"]),
        "expected_utility": eu,
        "envelope": {k: (row[k] if isinstance(row[k], str) else float(row[k])) for k in ENVELOPE_FIELDS},
        "model_id": model_id,
        "mode": mode,
        "data_through": inputs.leg_panel.index[-1].isoformat(),
        "state": {"w_smoothed": float(row["w_smoothed"]), "envelope": state.to_dict()},
    }


def decide_with_fold_model(
    model: FoldModel,
    inputs: LiveInputs,
    test_start: pd.Timestamp,
    test_end: pd.Timestamp,
    settings: Settings,
    model_id: str,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``fold`` mode: the fold backtest's path from ``test_start`` through the session."""
    if not test_start <= inputs.decision_ts <= test_end:
        raise InputDataError(
            f"session {inputs.decision_ts.date()} is outside the fold's test window "
            f"({test_start.date()} .. {test_end.date()})"
        )
    block = inputs.features.loc[test_start:]
    proba = probability_frame(model.predict_proba(block[model.feature_names]), block.index)
    path = fold_path(proba, model.m, inputs.leg_panel, settings)
    _, state = allocator_end_state(path, inputs.leg_panel.loc[path.index], settings)
    return _decision(path, model_id, "fold", inputs, state), path


def decide_with_promoted_model(
    model: FoldModel,
    inputs: LiveInputs,
    settings: Settings,
    model_id: str,
    previous: dict[str, Any] | None,
    warmup_sessions: int = DEFAULT_WARMUP_SESSIONS,
) -> dict[str, Any]:
    """``promoted`` mode: continue from the previous session's logged state, or cold-start."""
    names = model.feature_names
    features = inputs.features[names]
    if previous is not None:
        row = features.loc[[inputs.decision_ts]]
        proba = model.predict_proba(row)
        state0 = EnvelopeState.from_dict(previous["state"]["envelope"])
        ctx = inputs.leg_panel.loc[row.index]
        path = allocator_path(proba, model.m, ctx, settings, float(previous["state"]["w_smoothed"]), state0)
        _, state = allocator_end_state(path, ctx, settings, state0)
        return _decision(path, model_id, "continued", inputs, state)
    block = features.dropna().iloc[-warmup_sessions:]
    if block.index[-1] != inputs.decision_ts:
        raise InputDataError("features are incomplete (NaN) on the decision session", row=inputs.decision_ts)
    proba = probability_frame(model.predict_proba(block), block.index)
    path = fold_path(proba, model.m, inputs.leg_panel, settings)
    _, state = allocator_end_state(path, inputs.leg_panel.loc[path.index], settings)
    return _decision(path, model_id, f"cold start ({len(block)} warm-up sessions)", inputs, state)


def fold_test_window(fold_plan: pd.DataFrame, fold: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last decision_ts of outer fold ``fold``'s test window in the fold plan."""
    outer = fold_plan[(fold_plan["fold"] == fold) & (fold_plan["inner"] == -1)]
    if outer.empty:
        raise InputDataError(f"fold {fold} is not in the fold plan", column="fold", value=fold)
    return pd.Timestamp(outer["test_start"].iloc[0]), pd.Timestamp(outer["test_end"].iloc[0])


def decide_promoted_session(
    model: FoldModel, model_id: str, leg_panel: pd.DataFrame, session: str, settings: Settings, log: DecisionLog
) -> dict[str, Any]:
    """The promoted model's decision for ``session``, continued from the log's previous decision
    when that decision came from the same model (a new model cold-starts its own path)."""
    inputs = truncate_to_session(leg_panel, session, settings)
    previous = log.previous(session, inputs.leg_panel.index)
    if previous is not None and previous.get("model_id") != model_id:
        previous = None
    return decide_with_promoted_model(model, inputs, settings, model_id, previous)


class DecisionLog:
    """``decisions/<session>.json`` files plus ``decisions/log.parquet`` (one row per session).

    Writing a session replaces that session's file and row only (idempotent re-runs).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.log_path = self.directory / "log.parquet"

    def previous(self, session: str, sessions: pd.DatetimeIndex) -> dict[str, Any] | None:
        """The logged decision of the session right before ``session`` (None if not logged)."""
        ts = decision_ts_for(pd.Timestamp(session))
        pos = sessions.get_indexer([ts])[0]
        if pos <= 0:
            return None
        prev = str(session_dates(sessions[pos - 1 : pos])[0].date())
        path = self.directory / f"{prev}.json"
        return read_json(path) if path.is_file() else None

    def write(self, decision: dict[str, Any]) -> Path:
        path = write_json(decision, self.directory / f"{decision['session']}.json")
        row = pd.DataFrame([{k: decision[k] for k in LOG_COLUMNS}]).set_index("session")
        log = read_parquet(self.log_path) if self.log_path.is_file() else row.iloc[0:0]
        log = pd.concat([log.drop(index=row.index, errors="ignore"), row]).sort_index()
        write_parquet(log, self.log_path)
        return path
