"""The allocator's one state machine: a path of decisions, continuous across model changes.

Between two sessions the allocator carries an :class:`AllocatorState`: the smoothed weight
(``w_smoothed``, the smoothing state of the policy) and the risk envelope's
:class:`~allocator_pipeline.core.allocation.envelope.EnvelopeState` (its own equity and peak, the
weight and exposure held). The walk-forward backtest, the tuner and the live decision all step
this one machine with :func:`continue_path`.

Rules
-----
* **The state always continues.** A model change (the next fold's model in the walk-forward
  evaluation, a new promotion live) changes the model and the settings it runs with, never the
  state: the first decision of a fold smooths from the previous fold's last ``w_smoothed``, and the
  drawdown guard keeps the allocator's own equity and peak. A guard engaged in December stays
  engaged in January, as it would live.
* **A path starts fresh only at its first session** (:func:`fresh_start`): ``w_smoothed`` from the
  baseline weight, equity and peak 1.0, no book held (the first row earns nothing). The walk-forward
  path starts at the first fold's first test session. The tuner's inner held-out blocks are short
  independent evaluations and each starts fresh.
* **The volatility windows are market data, not state**: at every start or continuation the
  envelope's return history is re-read from the leg panel (the
  ``EnvelopeSettings.history_sessions`` sessions before the first row), so a continuation gives
  exactly the rows of one long path.

Row ``d`` of a path uses leg-panel rows ``<= d`` only (plus the carried state).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.envelope import EnvelopeState
from allocator_pipeline.core.allocation.policy import allocator_path
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import OUT_OF_RANGE_COLUMN, PROBA_COLUMNS
from allocator_pipeline.settings import Settings

MODEL_COLUMN = "model_id"


@dataclass(frozen=True)
class AllocatorState:
    """The allocator's state after deciding ``session`` (a ``decision_ts``).

    Attributes
    ----------
    session : Timestamp
        The last decided session (tz-aware UTC decision_ts).
    w_smoothed : float
        The smoothed policy weight decided there (QQQ share, fraction in [0, 1]).
    envelope : EnvelopeState
        The risk envelope's state after that decision.
    """

    session: pd.Timestamp
    w_smoothed: float
    envelope: EnvelopeState

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the decision log persists it; no pickle)."""
        return {"session": self.session.isoformat(), "w_smoothed": self.w_smoothed, "envelope": self.envelope.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AllocatorState:
        return cls(
            session=pd.Timestamp(data["session"]).tz_convert("UTC"),
            w_smoothed=float(data["w_smoothed"]),
            envelope=EnvelopeState.from_dict(data["envelope"]),
        )


@dataclass(frozen=True)
class Segment:
    """One model deciding a block of consecutive sessions.

    Attributes
    ----------
    model_id : str
        Which model decides (``fold:2012``, a promoted model's id, ...), recorded on every row.
    probabilities : DataFrame
        Calibrated bucket probabilities ``p_00 .. p_10`` indexed by the block's ``decision_ts``, and
        optionally ``out_of_range`` (bool: a model input outside its training range, see
        :meth:`~allocator_pipeline.core.allocation.fold_model.FoldModel.decision_frame`, which every
        producer of segments uses; without the column no session is out of range).
    m : ndarray, shape (11, 11)
        The model's utility matrix (:func:`~allocator_pipeline.core.allocation.policy.utility_matrix`).
    settings : Settings
        The settings the model was tuned and evaluated with (policy, envelope, baseline weight).
    prior : ndarray, shape (11,), optional
        The model's class prior (the ``expected_weight`` sizing's centre; None: a model without one,
        which only the ``argmax`` sizing can run).
    """

    model_id: str
    probabilities: pd.DataFrame
    m: np.ndarray
    settings: Settings
    prior: np.ndarray | None = None


def _history(context: pd.DataFrame, first: pd.Timestamp, sessions: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The QQQ and SPY leg returns of the last ``sessions`` sessions strictly before ``first``."""
    before = context.loc[context.index < first].tail(max(sessions, 0))
    return tuple(float(x) for x in before["qqq_leg_return"]), tuple(float(x) for x in before["spy_leg_return"])


def fresh_start(context: pd.DataFrame, first: pd.Timestamp, settings: Settings) -> tuple[float, EnvelopeState]:
    """``(w_smoothed, envelope state)`` before the first decision of a path beginning at ``first``:
    the baseline weight, equity 1.0 and the baseline book held (the first row earns nothing); the
    volatility windows are seeded with the leg returns of the sessions strictly before ``first``."""
    qqq, spy = _history(context, first, settings.envelope.history_sessions)
    bw = settings.labels.baseline_weight
    return bw, EnvelopeState.start(bw, settings.backtest.execution_lag, qqq_history=qqq, spy_history=spy)


def start_state(
    context: pd.DataFrame, first: pd.Timestamp, settings: Settings, state: AllocatorState | None, who: str
) -> tuple[float, EnvelopeState]:
    """``(w_smoothed, envelope state)`` before deciding ``first``: :func:`fresh_start` when ``state``
    is None, else ``state`` continued (it must be the state after the session right before
    ``first``), its volatility history re-read from ``context``. ``who`` names the deciding model
    in errors. The rules of the module docstring, shared by every path (and the evaluation's
    ablations)."""
    if state is None:
        return fresh_start(context, first, settings)
    pos = context.index.get_indexer([state.session])[0]
    if pos < 0 or pos + 1 >= len(context) or context.index[pos + 1] != first:
        raise InputDataError(
            f"{who} must continue at the session after {state.session} (the last decided one)",
            column="decision_ts",
            row=first,
        )
    qqq, spy = _history(context, first, settings.envelope.history_sessions)
    return state.w_smoothed, replace(state.envelope, qqq_history=qqq, spy_history=spy)


def continue_path(
    segment: Segment, context: pd.DataFrame, state: AllocatorState | None
) -> tuple[pd.DataFrame, AllocatorState]:
    """Step the state machine over a segment's sessions.

    Parameters
    ----------
    segment : Segment
        The deciding model and its block of sessions.
    context : DataFrame
        The leg panel (``qqq_leg_return``, ``spy_leg_return``, ``cash_return``, drift columns),
        containing every session of the segment and the ones before it.
    state : AllocatorState or None
        The state after the session just before the segment (None: a fresh start).

    Returns
    -------
    (path, state) : DataFrame and AllocatorState
        The :func:`allocator_path` rows of the segment with a ``model_id`` column, and the state
        after its last session.

    Raises
    ------
    InputDataError
        A session missing from the context, or a segment that does not start at the session
        right after ``state.session``.
    """
    proba = segment.probabilities
    if len(proba) == 0:
        raise InputDataError(f"the segment of {segment.model_id} has no session")
    missing = proba.index.difference(context.index)
    if len(missing):
        raise InputDataError("a decision session is missing from the leg panel", column="decision_ts", row=missing[0])
    s = segment.settings
    w0, env0 = start_state(context, proba.index[0], s, state, segment.model_id)
    ctx = context.loc[proba.index]
    outside = proba[OUT_OF_RANGE_COLUMN].to_numpy(dtype=bool) if OUT_OF_RANGE_COLUMN in proba.columns else None
    path = allocator_path(
        proba[PROBA_COLUMNS].to_numpy(),
        segment.m,
        ctx,
        s,
        w_prev0=w0,
        state0=env0,
        out_of_range=outside,
        prior=segment.prior,
    )
    path.insert(0, MODEL_COLUMN, pd.array([segment.model_id] * len(path), dtype="string"))
    return path, state_after(path, s.backtest.execution_lag, env0)


def state_after(path: pd.DataFrame, execution_lag: int, start: EnvelopeState | None = None) -> AllocatorState:
    """The state after a path's last row, read from its rows (``w_smoothed``, ``equity``, ``peak``,
    ``guard_sessions``, the book held and the last ``execution_lag`` decisions, still pending);
    ``start``: the envelope state the path started from, needed when the path has fewer rows than
    the lag. The volatility history is re-read from the leg panel when the path continues."""
    if len(path) == 0:
        raise InputDataError("cannot take the state after an empty path")
    last = path.iloc[-1]
    decided = list(zip(path["w_final"].astype(float).tolist(), path["exposure"].astype(float).tolist()))
    if len(decided) < execution_lag:
        if start is None or len(start.pending) != execution_lag:
            raise InputDataError(f"a path of {len(path)} rows needs its start state at execution_lag {execution_lag}")
        decided = [*start.pending, *decided]
    pending = tuple(decided[len(decided) - execution_lag :]) if execution_lag else ()
    return AllocatorState(
        session=path.index[-1],
        w_smoothed=float(last["w_smoothed"]),
        envelope=EnvelopeState(
            equity=float(last["equity"]),
            peak=float(last["peak"]),
            guard_sessions=int(last["guard_sessions"]),
            book=(float(last["w_book"]), float(last["exposure_book"])),
            pending=pending,
        ),
    )


def run_segments(
    segments: list[Segment], context: pd.DataFrame, state: AllocatorState | None = None
) -> tuple[pd.DataFrame, AllocatorState]:
    """One continuous path over consecutive segments (in time order), the state carried across
    every model change; ``state`` is the state before the first segment (None: fresh)."""
    if not segments:
        raise InputDataError("no segment to run")
    parts = []
    for segment in sorted(segments, key=lambda seg: seg.probabilities.index[0]):
        part, state = continue_path(segment, context, state)
        parts.append(part)
    assert state is not None
    return pd.concat(parts), state
