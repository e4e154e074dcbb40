"""Risk envelope: drawdown guard rails, volatility scaling, drift safety throttle (docs/design.md 6).

The envelope turns the smoothed policy weight ``w_smoothed`` (the QQQ leg's share, a fraction in
[0, 1]) into what is traded: ``w_final`` and the gross ``exposure`` in [0, 1] (the rest of the
capital, ``1 - exposure``, sits in cash at the T-bill rate). Stages, in this order, each recorded:

a) **Drawdown guard rails.** The allocator's own gross equity curve: the return realised at row
   ``d`` is earned by the decision of row ``d - 1``::

       g_d = exposure_{d-1} * (w_final_{d-1} * r_qqq_d + (1 - w_final_{d-1}) * r_spy_d)
             + (1 - exposure_{d-1}) * r_cash_d

   (``r_*_d`` = ``qqq_leg_return``, ``spy_leg_return``, ``cash_return`` of row ``d``, realised over
   the session ending at ``decision_ts(d)``; costs are not included). ``equity_d = equity_{d-1} *
   (1 + g_d)``, ``dd_d = 1 - equity_d / max(equity_{<=d})`` (a positive fraction). The exposure
   cap ``exposure_dd`` is 1, ``dd_soft_exposure`` when ``dd > dd_soft``, ``dd_hard_exposure`` when
   ``dd > dd_hard``. The weight is unchanged (``w_dd = w_smoothed``). On the first row of a fresh
   path there is no previous decision: ``g = 0``, equity and peak are 1.0.
b) **Volatility scaling.** ``vol_d`` = sample standard deviation (ddof = 1) times ``sqrt(252)`` of
   the leg portfolio ``w_dd_d * r_qqq + (1 - w_dd_d) * r_spy`` over the trailing ``vol_window``
   rows ``d - vol_window + 1 .. d`` (the weight of the current row applied to the whole window).
   ``exposure_vol = min(1, vol_target / vol)`` (1 during the warm-up, when fewer than
   ``vol_window`` rows exist, and when ``vol == 0``). ``exposure = min(exposure_dd, exposure_vol)``.
c) **Drift throttle.** ``drift_psi_d`` = mean over the legs of ``qqq_drift_psi`` and
   ``spy_drift_psi`` at row ``d`` (the legs present). When it exceeds ``drift_psi_threshold``,
   ``w_final = w_dd + drift_shrink * (baseline_weight - w_dd)``. Without drift columns (passive
   Step 3) the stage records ``drift_status = "no drift data"`` and leaves the weight alone.

Every stage is causal: row ``d`` uses context rows ``<= d`` (plus the carried state) only. The
volatility and drift stages are vectorised; the drawdown stage is a tight scalar loop, because
the drawdown at ``d`` depends on the exposure the guard itself chose at ``d - 1``.

A path can be continued: :func:`envelope_end_state` returns the :class:`EnvelopeState` at the end
of a path (equity, peak, last ``w_final`` and ``exposure``, and the trailing leg returns the
volatility window needs); passing it as ``state0`` to the next call on the following rows gives
exactly the rows the full path would have given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR
from allocator_pipeline.settings import EnvelopeSettings

RETURN_COLUMNS = ("qqq_leg_return", "spy_leg_return", "cash_return")
DRIFT_COLUMNS = ("qqq_drift_psi", "spy_drift_psi")
ENVELOPE_COLUMNS = [
    "w_smoothed",
    "equity",
    "peak",
    "dd",
    "exposure_dd",
    "w_dd",
    "vol",
    "exposure_vol",
    "drift_psi",
    "drift_throttled",
    "drift_status",
    "w_drift",
    "w_final",
    "exposure",
]


@dataclass(frozen=True)
class EnvelopeState:
    """What the envelope carries from one row to the next.

    Attributes
    ----------
    equity, peak : float
        The allocator's own gross equity (1.0 at the start of the first path) and its running peak.
    w_final, exposure : float
        The previous row's traded weight and gross exposure (they earn the next row's returns).
    qqq_history, spy_history : tuple of float
        The last (up to ``vol_window - 1``) leg returns before the next row, oldest first.
    fresh : bool
        True for a path that has not started yet (only trailing history is known): its first
        row earns no return, like ``state0=None``.
    """

    equity: float = 1.0
    peak: float = 1.0
    w_final: float = 0.5
    exposure: float = 1.0
    qqq_history: tuple[float, ...] = field(default_factory=tuple)
    spy_history: tuple[float, ...] = field(default_factory=tuple)
    fresh: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the live decision's persisted state; no pickle)."""
        return {
            "equity": self.equity,
            "peak": self.peak,
            "w_final": self.w_final,
            "exposure": self.exposure,
            "qqq_history": list(self.qqq_history),
            "spy_history": list(self.spy_history),
            "fresh": self.fresh,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvelopeState:
        return cls(
            equity=float(data["equity"]),
            peak=float(data["peak"]),
            w_final=float(data["w_final"]),
            exposure=float(data["exposure"]),
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
    w: np.ndarray, r_qqq: np.ndarray, r_spy: np.ndarray, window: int, n_history: int = 0
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

    Returns
    -------
    ndarray, shape (n,)
        ``std(ddof=1) * sqrt(252)`` over rows ``d - window + 1 .. d``; NaN where fewer than
        ``window`` rows exist.
    """
    n = len(w)
    out = np.full(n, np.nan)
    total = len(r_qqq)
    if total < window or n == 0:
        return out
    win_q = np.lib.stride_tricks.sliding_window_view(r_qqq, window)  # row i ends at i+window-1
    win_s = np.lib.stride_tricks.sliding_window_view(r_spy, window)
    first_end = n_history  # position (in the long arrays) of the first evaluated row
    start = max(first_end, window - 1)
    rows = np.arange(start, total)
    wq = w[rows - n_history][:, None]
    port = wq * win_q[rows - window + 1] + (1.0 - wq) * win_s[rows - window + 1]
    out[rows - n_history] = port.std(axis=1, ddof=1) * math.sqrt(SESSIONS_PER_YEAR)
    return out


def _drift_stage(
    w_dd: np.ndarray, context: pd.DataFrame, settings: EnvelopeSettings, baseline_weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(w_dd)
    present = [c for c in DRIFT_COLUMNS if c in context.columns]
    if not present:
        return (np.full(n, np.nan), np.zeros(n, dtype=bool), np.full(n, "no drift data", dtype=object), w_dd.copy())
    psi = context[present].to_numpy(dtype=float, na_value=np.nan)
    valid_rows = np.isfinite(psi).any(axis=1)
    drift_psi = np.full(n, np.nan)
    if valid_rows.any():
        drift_psi[valid_rows] = np.nanmean(psi[valid_rows], axis=1)
    if not settings.drift_throttle:
        status = np.where(valid_rows, "disabled", "no drift data").astype(object)
        return drift_psi, np.zeros(n, dtype=bool), status, w_dd.copy()
    throttled = valid_rows & (np.nan_to_num(drift_psi, nan=-np.inf) > settings.drift_psi_threshold)
    w_drift = np.where(throttled, w_dd + settings.drift_shrink * (baseline_weight - w_dd), w_dd)
    status = np.where(throttled, "throttled", np.where(valid_rows, "ok", "no drift data")).astype(object)
    return drift_psi, throttled, status, w_drift


def apply_envelope(
    w_smoothed: np.ndarray | pd.Series,
    context: pd.DataFrame,
    settings: EnvelopeSettings,
    baseline_weight: float,
    state0: EnvelopeState | None = None,
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
        The weight the drift throttle shrinks toward.
    state0 : EnvelopeState, optional
        State at the end of the preceding path (None: a fresh start, equity 1.0, no history).

    Returns
    -------
    DataFrame
        Index of ``context``; columns :data:`ENVELOPE_COLUMNS`. ``w_final`` and ``exposure`` are
        what is traded at each row.
    """
    w = np.asarray(w_smoothed, dtype=float)
    n = len(context)
    if w.shape != (n,):
        raise InputDataError(f"w_smoothed has shape {w.shape}, the context has {n} rows", column="w_smoothed")
    if n and (not np.isfinite(w).all() or w.min() < 0.0 or w.max() > 1.0):
        i = int(np.flatnonzero(~(np.isfinite(w) & (w >= 0.0) & (w <= 1.0)))[0])
        raise InputDataError("weight must be in [0, 1]", column="w_smoothed", row=context.index[i], value=w[i])
    r_q, r_s, r_c = (_finite_column(context, c) for c in RETURN_COLUMNS)
    # A fresh start (no state, or a state carrying only trailing history) earns nothing on row 0:
    # the allocator held no book before its first decision.
    fresh = state0 is None or state0.fresh
    state = state0 if state0 is not None else EnvelopeState()

    # b) volatility of the leg portfolio at the current weight (vectorised; history from state0).
    hist_q = np.asarray(state.qqq_history, dtype=float)
    hist_s = np.asarray(state.spy_history, dtype=float)
    vol = trailing_portfolio_vol(
        w, np.concatenate([hist_q, r_q]), np.concatenate([hist_s, r_s]), settings.vol_window, n_history=len(hist_q)
    )
    exposure_vol = np.ones(n)
    if settings.vol_scaling:
        scaled = np.isfinite(vol) & (vol > 0.0)
        exposure_vol[scaled] = np.minimum(1.0, settings.vol_target / vol[scaled])

    # c) drift throttle (vectorised; it does not feed back into the other stages).
    drift_psi, throttled, status, w_final = _drift_stage(w, context, settings, baseline_weight)

    # a) drawdown guard: the only recursion (exposure at d-1 -> equity at d -> exposure at d).
    equity_out = np.empty(n)
    peak_out = np.empty(n)
    dd_out = np.empty(n)
    exp_dd_out = np.empty(n)
    exposure = np.empty(n)
    equity, peak = state.equity, state.peak
    w_prev, e_prev = state.w_final, state.exposure
    guard = settings.dd_guard
    soft, hard = settings.dd_soft, settings.dd_hard
    soft_e, hard_e = settings.dd_soft_exposure, settings.dd_hard_exposure
    rq, rs, rc, ev, wf = r_q.tolist(), r_s.tolist(), r_c.tolist(), exposure_vol.tolist(), w_final.tolist()
    for i in range(n):
        if i > 0 or not fresh:
            equity *= 1.0 + e_prev * (w_prev * rq[i] + (1.0 - w_prev) * rs[i]) + (1.0 - e_prev) * rc[i]
        if equity > peak:
            peak = equity
        dd = 1.0 - equity / peak
        e_dd = (hard_e if dd > hard else soft_e if dd > soft else 1.0) if guard else 1.0
        e = e_dd if e_dd < ev[i] else ev[i]
        equity_out[i], peak_out[i], dd_out[i], exp_dd_out[i], exposure[i] = equity, peak, dd, e_dd, e
        w_prev, e_prev = wf[i], e

    return pd.DataFrame(
        {
            "w_smoothed": w,
            "equity": equity_out,
            "peak": peak_out,
            "dd": dd_out,
            "exposure_dd": exp_dd_out,
            "w_dd": w,
            "vol": vol,
            "exposure_vol": exposure_vol,
            "drift_psi": drift_psi,
            "drift_throttled": throttled,
            "drift_status": pd.array(status, dtype="string"),
            "w_drift": w_final,
            "w_final": w_final,
            "exposure": exposure,
        },
        index=context.index,
    )


def envelope_end_state(
    path: pd.DataFrame, context: pd.DataFrame, vol_window: int, state0: EnvelopeState | None = None
) -> EnvelopeState:
    """The state after the last row of an :func:`apply_envelope` path.

    Parameters
    ----------
    path : DataFrame
        The envelope output (``equity``, ``peak``, ``w_final``, ``exposure``).
    context : DataFrame
        The context the path was computed on (its leg returns feed the volatility history).
    vol_window : int
        ``EnvelopeSettings.vol_window``: the last ``vol_window - 1`` leg returns are kept.
    state0 : EnvelopeState, optional
        The state the path started from (its history is extended when the path is short).
    """
    start = state0 if state0 is not None else EnvelopeState()
    if len(path) == 0:
        return start
    keep = max(vol_window - 1, 0)
    hist_q = np.concatenate([np.asarray(start.qqq_history, float), _finite_column(context, "qqq_leg_return")])
    hist_s = np.concatenate([np.asarray(start.spy_history, float), _finite_column(context, "spy_leg_return")])
    last = path.iloc[-1]
    return EnvelopeState(
        equity=float(last["equity"]),
        peak=float(last["peak"]),
        w_final=float(last["w_final"]),
        exposure=float(last["exposure"]),
        qqq_history=tuple(hist_q[len(hist_q) - keep :].tolist()) if keep else (),
        spy_history=tuple(hist_s[len(hist_s) - keep :].tolist()) if keep else (),
    )
