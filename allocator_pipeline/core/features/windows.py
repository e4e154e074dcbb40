"""Trailing-window statistics for the feature table (causal by construction).

Every function takes a 1-D float array ``x`` with one value per session (row ``d`` = the session
ending at ``decision_ts(d)``) and returns an array of the same length whose row ``d`` is computed
from rows ``d - k + 1 .. d`` only (``k`` the window, in sessions). The first ``k - 1`` rows (the
warm-up) are NaN, and a NaN anywhere in a row's window makes that row NaN.

Each row is computed from its own window (``numpy.lib.stride_tricks.sliding_window_view`` over a
NaN-padded copy), never from a running state carried along the series: a value therefore does
not depend on where the series starts, and changing a later row can never change it, bit for bit.

Returns are simple daily returns as fractions (0.01 = +1 %); annualisation uses 252 sessions.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR

ANNUALISE = float(np.sqrt(SESSIONS_PER_YEAR))
PAYOFF_SMOOTHING = 1e-4
"""Added to the mean gain and the mean |loss| of the payoff ratio (1 bp of daily return), so a
window without losing (or winning) sessions stays finite and a flat window gives exactly 1."""
VOL_FLOOR = 1e-4
"""Floor of an annualised volatility (fraction) before it enters a ratio or a logarithm."""


def trailing_windows(x: np.ndarray, k: int) -> np.ndarray:
    """Read-only ``(n, k)`` view whose row ``d`` is ``x[d - k + 1 .. d]`` (NaN before row 0)."""
    if k < 1:
        raise ValueError(f"window must be >= 1 session, got {k}")
    values = np.asarray(x, dtype=np.float64)
    padded = np.concatenate([np.full(k - 1, np.nan), values])
    return sliding_window_view(padded, k)


def _nan_rows(windows: np.ndarray) -> np.ndarray:
    return np.isnan(windows).any(axis=1)


def lag(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` shifted ``k`` sessions into the past: row ``d`` holds ``x[d - k]`` (NaN if d < k)."""
    values = np.asarray(x, dtype=np.float64)
    if k == 0:
        return values.copy()
    return np.concatenate([np.full(min(k, len(values)), np.nan), values[: max(len(values) - k, 0)]])


def change(x: np.ndarray, k: int) -> np.ndarray:
    """Level change over ``k`` sessions: ``x[d] - x[d - k]`` (same units as ``x``)."""
    return np.asarray(x, dtype=np.float64) - lag(x, k)


def relative_change(x: np.ndarray, k: int) -> np.ndarray:
    """Relative change over ``k`` sessions: ``x[d] / x[d - k] - 1`` (fraction)."""
    return np.asarray(x, dtype=np.float64) / lag(x, k) - 1.0


def mean(x: np.ndarray, k: int) -> np.ndarray:
    """Trailing mean over ``k`` sessions."""
    return trailing_windows(x, k).mean(axis=1)


def compound_return(r: np.ndarray, k: int) -> np.ndarray:
    """Compounded return over the last ``k`` sessions: ``prod(1 + r[d-k+1..d]) - 1`` (fraction)."""
    if k == 1:
        return np.asarray(r, dtype=np.float64).copy()
    return np.prod(1.0 + trailing_windows(r, k), axis=1) - 1.0


def realised_vol(r: np.ndarray, k: int) -> np.ndarray:
    """Annualised realised volatility: sample std (ddof=1) of ``k`` daily returns * sqrt(252)."""
    return trailing_windows(r, k).std(axis=1, ddof=1) * ANNUALISE


def downside_vol(r: np.ndarray, k: int) -> np.ndarray:
    """Annualised downside volatility: ``sqrt(mean(min(r, 0)^2)) * sqrt(252)`` over ``k`` sessions.

    The semi-deviation below zero, with every session of the window in the denominator.
    """
    w = trailing_windows(r, k)
    return np.sqrt(np.mean(np.minimum(w, 0.0) ** 2, axis=1)) * ANNUALISE


def growth_paths(r: np.ndarray, k: int) -> np.ndarray:
    """``(n, k + 1)`` equity paths of the last ``k`` sessions, starting at 1.0 before the first.

    Row ``d``: ``[1, (1 + r[d-k+1]), (1 + r[d-k+1]) (1 + r[d-k+2]), ..., prod(1 + r[d-k+1..d])]``.
    Warm-up rows contain NaN from the first column after 1.0 on.
    """
    w = trailing_windows(r, k)
    paths = np.empty((w.shape[0], k + 1), dtype=np.float64)
    paths[:, 0] = 1.0
    np.cumprod(1.0 + w, axis=1, out=paths[:, 1:])
    return paths


def max_drawdown(r: np.ndarray, k: int) -> np.ndarray:
    """Maximum drawdown (positive fraction) of the equity path of the last ``k`` sessions.

    ``max_t (1 - E_t / max_{s <= t} E_s)`` over the path of :func:`growth_paths` (which starts at
    1.0 before the window's first return); 0 when the path never falls below its running peak.
    """
    paths = growth_paths(r, k)
    peaks = np.maximum.accumulate(paths, axis=1)
    return np.max(1.0 - paths / peaks, axis=1)


def drawdown_from_peak(r: np.ndarray, k: int) -> np.ndarray:
    """Current drawdown (positive fraction) from the peak of the last ``k`` sessions' path."""
    paths = growth_paths(r, k)
    return 1.0 - paths[:, -1] / np.max(paths, axis=1)


def sessions_since_peak(r: np.ndarray, k: int) -> np.ndarray:
    """Sessions since the (most recent) peak of the last ``k`` sessions' path: 0 at a new high,
    ``k`` when the peak is the path's starting point ``k`` sessions ago."""
    paths = growth_paths(r, k)
    since = np.argmax(paths[:, ::-1], axis=1).astype(np.float64)
    since[np.isnan(paths[:, -1])] = np.nan
    return since


def rebound_from_trough(r: np.ndarray, k: int) -> np.ndarray:
    """Return (fraction) from the trough of the last ``k`` sessions' path to today: 0 at a new low."""
    paths = growth_paths(r, k)
    return paths[:, -1] / np.min(paths, axis=1) - 1.0


def hit_rate(r: np.ndarray, k: int) -> np.ndarray:
    """Share (0..1) of the last ``k`` sessions with a strictly positive return."""
    w = trailing_windows(r, k)
    out = (w > 0.0).mean(axis=1)
    out[_nan_rows(w)] = np.nan
    return out


def payoff_ratio(r: np.ndarray, k: int) -> np.ndarray:
    """Payoff ratio over ``k`` sessions: ``(mean gain + 1bp) / (mean |loss| + 1bp)``.

    Mean gain is over the sessions with ``r > 0``, mean |loss| over those with ``r < 0`` (each 0
    when there are none); :data:`PAYOFF_SMOOTHING` keeps the ratio finite.
    """
    w = trailing_windows(r, k)
    gains = np.where(w > 0.0, w, 0.0)
    losses = np.where(w < 0.0, -w, 0.0)
    n_gain = (w > 0.0).sum(axis=1)
    n_loss = (w < 0.0).sum(axis=1)
    mean_gain = gains.sum(axis=1) / np.maximum(n_gain, 1)
    mean_loss = losses.sum(axis=1) / np.maximum(n_loss, 1)
    out = (mean_gain + PAYOFF_SMOOTHING) / (mean_loss + PAYOFF_SMOOTHING)
    out[_nan_rows(w)] = np.nan
    return out


def correlation(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Pearson correlation of ``x`` and ``y`` over the last ``k`` sessions, in [-1, 1].

    0 when either series is constant over the window (no co-movement information, e.g. a flat
    leg), so a flat stretch does not leave a NaN after warm-up.
    """
    wx = trailing_windows(x, k)
    wy = trailing_windows(y, k)
    cx = wx - wx.mean(axis=1, keepdims=True)
    cy = wy - wy.mean(axis=1, keepdims=True)
    cov = (cx * cy).sum(axis=1)
    scale = np.sqrt((cx * cx).sum(axis=1) * (cy * cy).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(scale > 0.0, cov / np.where(scale > 0.0, scale, 1.0), 0.0)
    out = np.clip(out, -1.0, 1.0)
    out[_nan_rows(wx) | _nan_rows(wy)] = np.nan
    return out


def zscore(x: np.ndarray, k: int) -> np.ndarray:
    """``(x[d] - mean) / std`` with the mean and sample std (ddof=1) of the last ``k`` sessions
    (today included); 0 when the window is constant."""
    w = trailing_windows(x, k)
    mu = w.mean(axis=1)
    sd = w.std(axis=1, ddof=1)
    values = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sd > 0.0, (values - mu) / np.where(sd > 0.0, sd, 1.0), 0.0)
    out[_nan_rows(w)] = np.nan
    return out
