"""Risk envelope: drawdown guard rails, volatility scaling, drift safety throttle (docs/design.md 6).

The envelope turns the smoothed policy weight ``w_smoothed`` (the QQQ leg's share, a fraction in
[0, 1]) into what is traded: ``w_final`` and the gross ``exposure`` in ``[0, max_exposure]``
(``1 - exposure`` sits in cash at the T-bill rate; a negative cash share is borrowed at that rate
plus ``costs.financing_spread_bps``, charged by the backtest). ``b`` is the baseline weight.
Stages, in this order, each recorded:

a) **Drawdown guard rails** on the allocator's own gross equity, which follows **the book actually
   held**: with ``execution_lag = L`` the return realised at row ``d`` is earned by the decision
   of row ``d - 1 - L`` (the backtest's convention; before the path's first ``L`` decisions take
   effect, the baseline book ``(b, exposure 1)``)::

       g_d = e_book * (w_book * r_qqq_d + (1 - w_book) * r_spy_d) + (1 - e_book) * r_cash_d

   (costs not included). ``equity_d = equity_{d-1} (1 + g_d)``, ``dd_d = 1 - equity_d / peak_d``
   (a positive fraction). It de-risks in steps, the tilt before the exposure:

   * ``dd > dd_soft``: ``dd_soft_tilt_cut`` of the tilt ``w - b`` is removed and exposure is capped
     at ``dd_soft_exposure`` (default 1: no leverage in a drawdown);
   * ``dd > dd_hard``: the whole tilt is removed (``w_dd = b``) and exposure is capped at
     ``dd_hard_exposure``.

   and **re-risks by rule**: after ``dd_reset_sessions`` consecutive sessions beyond ``dd_soft`` the
   guard takes the loss, its peak resets to the current equity (``dd = 0``) and the caps lift. On the
   first row of a fresh path there is no previous decision: ``g = 0``, equity and peak are 1.0.
b) **Volatility scaling.** ``vol_d`` = sample standard deviation (ddof = 1) times ``sqrt(252)`` of
   the leg portfolio ``w_smoothed_d * r_qqq + (1 - w_smoothed_d) * r_spy`` over the trailing
   ``vol_window`` rows ``d - vol_window + 1 .. d`` (the row's own weight applied to the whole
   window). The target is ``vol_target`` or, when that is None (the default), ``vol_target_scale``
   times the same statistic of the baseline portfolio ``b r_qqq + (1 - b) r_spy`` over the trailing
   ``vol_target_window`` rows (at least 252 rows; fewer: no scaling): a long-run level of the legs' own volatility, so that
   exposure averages about 1 rather than sitting in cash (Moreira and Muir 2017, with their leverage
   cap of 1.5 as ``max_exposure``). ``exposure_vol = min(max_exposure, target / vol)`` (1 during the
   warm-up and when ``vol == 0``). ``exposure = min(exposure_dd, exposure_vol)``, then a **no-trade
   band**: when that lies within ``exposure_band`` of the exposure decided the session before, the
   previous exposure is kept unless it is above the guard's cap (volatility noise does not trade; a
   move beyond the band, such as the guard's cut, goes through whole).
c) **Drift throttle.** ``drift_psi_d`` = mean over the legs of ``qqq_drift_psi`` and
   ``spy_drift_psi`` at row ``d`` (the legs present). When it exceeds ``drift_psi_threshold``,
   ``w_final = w_dd + drift_shrink * (b - w_dd)``. Without drift columns (passive Step 3) the stage
   records ``drift_status = "no drift data"`` and leaves the weight alone.

Every stage is causal: row ``d`` uses context rows ``<= d`` (plus the carried state) only. The
volatility and drift statistics are vectorised (each row's window reduced on its own, so a one-row
call gives the bits of a long path); the guard is a scalar loop, because the drawdown at ``d``
depends on what the guard itself chose before.

A path continues from :func:`allocator_pipeline.core.allocation.path.state_after` (``state0``, with
the ``history_sessions`` leg returns before the next row): the rows of one long path.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR
from allocator_pipeline.settings import EnvelopeSettings

RETURN_COLUMNS = ("qqq_leg_return", "spy_leg_return", "cash_return")
DRIFT_COLUMNS = ("qqq_drift_psi", "spy_drift_psi")
TARGET_MIN_SESSIONS = 252
ENVELOPE_COLUMNS = [
    "w_smoothed",
    "equity",
    "peak",
    "dd",
    "guard_level",
    "guard_sessions",
    "exposure_dd",
    "w_dd",
    "vol",
    "vol_target",
    "exposure_vol",
    "drift_psi",
    "drift_throttled",
    "drift_status",
    "w_drift",
    "w_final",
    "exposure",
    "w_book",
    "exposure_book",
]

Book = tuple[float, float]


@dataclass(frozen=True)
class EnvelopeState:
    """What the envelope carries from one row to the next.

    Attributes
    ----------
    equity, peak : float
        The allocator's own gross equity (1.0 at the start of the first path) and the guard's peak.
    guard_sessions : int
        Consecutive sessions the guard has been beyond ``dd_soft`` (the re-risk rule's clock).
    book : (float, float)
        ``(w, exposure)`` held over the next session (it earns the next row's returns): the
        decision ``execution_lag`` rows before the last one.
    pending : tuple of (float, float)
        The last ``execution_lag`` decisions, oldest first, not yet held (empty with lag 0).
    qqq_history, spy_history : tuple of float
        Leg returns before the next row, oldest first (the volatility windows' history).
    fresh : bool
        True for a path that has not started yet (only trailing history is known): its first
        row earns no return, like ``state0=None``.
    """

    equity: float = 1.0
    peak: float = 1.0
    guard_sessions: int = 0
    book: Book = (0.5, 1.0)
    pending: tuple[Book, ...] = ()
    qqq_history: tuple[float, ...] = field(default_factory=tuple)
    spy_history: tuple[float, ...] = field(default_factory=tuple)
    fresh: bool = False

    @classmethod
    def start(
        cls,
        baseline_weight: float,
        execution_lag: int,
        qqq_history: tuple[float, ...] = (),
        spy_history: tuple[float, ...] = (),
    ) -> EnvelopeState:
        """A fresh path: the baseline book held and pending (the first decisions take effect after
        ``execution_lag`` sessions), equity 1.0, the given leg-return history."""
        book = (float(baseline_weight), 1.0)
        return cls(
            book=book,
            pending=(book,) * int(execution_lag),
            qqq_history=qqq_history,
            spy_history=spy_history,
            fresh=True,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the live decision's persisted state; no pickle)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvelopeState:
        def book(x: Any) -> Book:
            return float(x[0]), float(x[1])

        # a state written before the book was recorded held its last decision (execution lag 0)
        held = data["book"] if "book" in data else (data["w_final"], data["exposure"])
        return cls(
            equity=float(data["equity"]),
            peak=float(data["peak"]),
            guard_sessions=int(data.get("guard_sessions", 0)),
            book=book(held),
            pending=tuple(book(b) for b in data.get("pending", ())),
            qqq_history=tuple(float(x) for x in data.get("qqq_history", ())),
            spy_history=tuple(float(x) for x in data.get("spy_history", ())),
            fresh=bool(data.get("fresh", False)),
        )


def _finite_column(context: pd.DataFrame, column: str) -> np.ndarray:
    if column not in context.columns:
        raise InputDataError("envelope context lacks a required column", column=column)
    values = context[column].to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputDataError("return must be a finite number", column=column, row=context.index[i], value=values[i])
    return values


def trailing_portfolio_vol(
    w: np.ndarray, r_qqq: np.ndarray, r_spy: np.ndarray, window: int, n_history: int = 0, min_rows: int | None = None
) -> np.ndarray:
    """Annualised trailing volatility of the leg portfolio at each row's own weight.

    Parameters
    ----------
    w : ndarray, shape (n,)
        QQQ share for the rows to evaluate (the last ``n`` rows of the return arrays).
    r_qqq, r_spy : ndarray, shape (n_history + n,)
        Leg daily returns (fractions), ``n_history`` rows of history first.
    window : int
        Trailing sessions, the current row included.
    min_rows : int, optional
        Fewest rows a shorter window may use where fewer than ``window`` exist (None: ``window``).

    Returns
    -------
    ndarray, shape (n,)
        ``std(ddof=1) * sqrt(252)`` over rows ``d - window + 1 .. d``; NaN where fewer than
        ``min_rows`` rows exist. Each row's window is reduced on its own (the same bits however
        many rows are evaluated together).

    Examples
    --------
    >>> r = np.array([0.01, -0.01, 0.02, 0.0])
    >>> trailing_portfolio_vol(np.ones(2), r, r, window=3, n_history=2).round(4)
    array([0.2425, 0.2425])
    """
    n = len(w)
    out = np.full(n, np.nan)
    total = len(r_qqq)
    least = window if min_rows is None else min(int(min_rows), window)
    for row in range(n_history, min(total, n_history + n)):  # rows with fewer than `window` rows
        if row + 1 >= window:
            break
        if row + 1 >= least:
            wq = w[row - n_history]
            port = wq * r_qqq[: row + 1] + (1.0 - wq) * r_spy[: row + 1]
            out[row - n_history] = port[None, :].std(axis=1, ddof=1)[0] * math.sqrt(SESSIONS_PER_YEAR)
    if total < window or n == 0:
        return out
    win_q = np.lib.stride_tricks.sliding_window_view(r_qqq, window)  # row i ends at i+window-1
    win_s = np.lib.stride_tricks.sliding_window_view(r_spy, window)
    rows = np.arange(max(n_history, window - 1), total)
    wq = w[rows - n_history][:, None]
    port = wq * win_q[rows - window + 1] + (1.0 - wq) * win_s[rows - window + 1]
    out[rows - n_history] = port.std(axis=1, ddof=1) * math.sqrt(SESSIONS_PER_YEAR)
    return out


def _drift_stage(context: pd.DataFrame, settings: EnvelopeSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(drift_psi, throttled, status)`` per row."""
    n = len(context)
    present = [c for c in DRIFT_COLUMNS if c in context.columns]
    if not present:
        return np.full(n, np.nan), np.zeros(n, dtype=bool), np.full(n, "no drift data", dtype=object)
    psi = context[present].to_numpy(dtype=float, na_value=np.nan)
    valid_rows = np.isfinite(psi).any(axis=1)
    drift_psi = np.full(n, np.nan)
    if valid_rows.any():
        drift_psi[valid_rows] = np.nanmean(psi[valid_rows], axis=1)
    if not settings.drift_throttle:
        return drift_psi, np.zeros(n, dtype=bool), np.where(valid_rows, "disabled", "no drift data").astype(object)
    throttled = valid_rows & (np.nan_to_num(drift_psi, nan=-np.inf) > settings.drift_psi_threshold)
    status = np.where(throttled, "throttled", np.where(valid_rows, "ok", "no drift data")).astype(object)
    return drift_psi, throttled, status


def apply_envelope(
    w_smoothed: np.ndarray | pd.Series,
    context: pd.DataFrame,
    settings: EnvelopeSettings,
    baseline_weight: float,
    state0: EnvelopeState | None = None,
    execution_lag: int = 0,
) -> pd.DataFrame:
    """Apply the risk envelope to a path of smoothed weights (see the module docstring).

    Parameters
    ----------
    w_smoothed : array-like, shape (n,)
        Smoothed policy weight (QQQ share in [0, 1]) decided at each context row.
    context : DataFrame
        Indexed by ``decision_ts`` like the weights; ``qqq_leg_return``, ``spy_leg_return``,
        ``cash_return`` (fractions, realised over the session ending at the row) and optionally
        ``qqq_drift_psi``, ``spy_drift_psi`` (causal PSI as of the row).
    settings : EnvelopeSettings
    baseline_weight : float
        The weight the guard and the drift throttle cut the tilt toward.
    state0 : EnvelopeState, optional
        State at the end of the preceding path (None: a fresh start, equity 1.0, no history).
    execution_lag : int
        ``backtest.execution_lag``: sessions between a decision and its trade (which book the
        guard's equity holds).

    Returns
    -------
    DataFrame
        Index of ``context``; columns :data:`ENVELOPE_COLUMNS`. ``w_final`` and ``exposure`` are
        what is decided at each row; ``w_book``, ``exposure_book`` the book held over the next
        session.
    """
    w = np.asarray(w_smoothed, dtype=float)
    n = len(context)
    if w.shape != (n,):
        raise InputDataError(f"w_smoothed has shape {w.shape}, the context has {n} rows", column="w_smoothed")
    if n and (not np.isfinite(w).all() or w.min() < 0.0 or w.max() > 1.0):
        i = int(np.flatnonzero(~(np.isfinite(w) & (w >= 0.0) & (w <= 1.0)))[0])
        raise InputDataError("weight must be in [0, 1]", column="w_smoothed", row=context.index[i], value=w[i])
    r_q, r_s, r_c = (_finite_column(context, c) for c in RETURN_COLUMNS)
    b = float(baseline_weight)
    # A fresh start (no state, or a state carrying only trailing history) earns nothing on row 0:
    # the allocator held no book before its first decision.
    state = state0 if state0 is not None else EnvelopeState.start(b, execution_lag)
    fresh = state.fresh
    if len(state.pending) != execution_lag:
        raise InputDataError(
            f"the envelope state holds {len(state.pending)} pending decisions, execution_lag is {execution_lag}"
        )

    # b) volatility of the leg portfolio at the row's weight, and the target (vectorised).
    long_q = np.concatenate([np.asarray(state.qqq_history, dtype=float), r_q])
    long_s = np.concatenate([np.asarray(state.spy_history, dtype=float), r_s])
    n_hist = len(state.qqq_history)
    vol = trailing_portfolio_vol(w, long_q, long_s, settings.vol_window, n_history=n_hist)
    if settings.vol_target is not None:
        target = np.full(n, float(settings.vol_target))
    else:
        target = settings.vol_target_scale * trailing_portfolio_vol(
            np.full(n, b), long_q, long_s, settings.vol_target_window, n_history=n_hist, min_rows=TARGET_MIN_SESSIONS
        )
    exposure_vol = np.ones(n)
    if settings.vol_scaling:
        scaled = np.isfinite(vol) & (vol > 0.0) & np.isfinite(target)
        exposure_vol[scaled] = np.minimum(settings.max_exposure, target[scaled] / vol[scaled])

    # c) drift statistics (vectorised; the throttle acts in the loop, after the guard's weight).
    drift_psi, throttled, status = _drift_stage(context, settings)

    # a) the guard: equity at d (the book held) -> level -> weight and exposure at d -> book.
    cols = {k: np.empty(n) for k in ("equity", "peak", "dd", "exposure_dd", "w_dd", "w_final", "exposure")}
    level_out, clock_out, book_out = np.empty(n, dtype=np.int8), np.empty(n, dtype=np.int64), np.empty((n, 2))
    equity, peak, clock = state.equity, state.peak, state.guard_sessions
    book, pending = state.book, list(state.pending)
    guard = settings.dd_guard
    soft, hard, reset = settings.dd_soft, settings.dd_hard, settings.dd_reset_sessions
    soft_keep = 1.0 - settings.dd_soft_tilt_cut
    soft_e, hard_e = settings.dd_soft_exposure, settings.dd_hard_exposure
    shrink = settings.drift_shrink
    band = settings.exposure_band
    e_last = (pending[-1] if pending else book)[1]  # the exposure decided last (the baseline's when fresh)
    rq, rs, rc, ev, ws, thr = r_q.tolist(), r_s.tolist(), r_c.tolist(), exposure_vol.tolist(), w.tolist(), throttled
    for i in range(n):
        if i > 0 or not fresh:
            wb, eb = book
            equity *= 1.0 + eb * (wb * rq[i] + (1.0 - wb) * rs[i]) + (1.0 - eb) * rc[i]
        if equity > peak:
            peak = equity
        dd = 1.0 - equity / peak
        level = 0
        if guard and dd > soft:
            clock += 1
            if clock >= reset:  # re-risk: take the loss, start a new peak here
                peak, dd, clock = equity, 0.0, 0
            else:
                level = 2 if dd > hard else 1
        else:
            clock = 0
        tilt = ws[i] - b
        if level == 2:
            w_dd, e_dd = b, hard_e
        elif level == 1:
            w_dd, e_dd = b + soft_keep * tilt, soft_e
        else:
            w_dd, e_dd = ws[i], settings.max_exposure
        e = e_dd if e_dd < ev[i] else ev[i]
        if abs(e - e_last) <= band and e_last <= e_dd:  # inside the no-trade band (and the guard's cap)
            e = e_last
        w_fin = w_dd + shrink * (b - w_dd) if thr[i] else w_dd
        decision = (w_fin, e)
        e_last = e
        if pending:
            pending.append(decision)
            book = pending.pop(0)
        else:
            book = decision
        cols["equity"][i], cols["peak"][i], cols["dd"][i] = equity, peak, dd
        cols["exposure_dd"][i], cols["w_dd"][i], cols["w_final"][i], cols["exposure"][i] = e_dd, w_dd, w_fin, e
        level_out[i], clock_out[i], book_out[i] = level, clock, book

    return pd.DataFrame(
        {
            "w_smoothed": w,
            "equity": cols["equity"],
            "peak": cols["peak"],
            "dd": cols["dd"],
            "guard_level": level_out,
            "guard_sessions": clock_out,
            "exposure_dd": cols["exposure_dd"],
            "w_dd": cols["w_dd"],
            "vol": vol,
            "vol_target": target,
            "exposure_vol": exposure_vol,
            "drift_psi": drift_psi,
            "drift_throttled": throttled,
            "drift_status": pd.array(status, dtype="string"),
            "w_drift": cols["w_final"],
            "w_final": cols["w_final"],
            "exposure": cols["exposure"],
            "w_book": book_out[:, 0],
            "exposure_book": book_out[:, 1],
        },
        index=context.index,
    )
