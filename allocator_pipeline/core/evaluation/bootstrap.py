"""Stationary block bootstrap of paired daily returns: intervals for the allocator's gain over the baseline.

The two "beats the baseline" gates compare the allocator and the baseline over ONE out-of-sample
path; this module puts an interval around each difference by resampling that path.

Resampling (Politis and Romano 1994, the stationary bootstrap, wrapped circularly)
    A resample is a sequence of ``n`` session positions built from blocks: each block starts at a
    uniformly drawn position and runs forward (wrapping from the last session to the first); after
    each position a new block starts with probability ``1 / block_length``, so block lengths are
    geometric with mean ``block_length`` sessions. Both series are resampled with the SAME
    positions (paired), so their correlation and the volatility clustering inside a block are kept.

Metrics on a resampled path (the project's own definitions, ``core/evaluation/metrics.py``)
    The resampled returns ``r*_1 .. r*_n`` are placed on the original session calendar: position
    ``t`` of the resample is earned in the original session ``t`` (its ``realized_ts``), so the
    resampled path has the same length and the same calendar months as the original. Then, for
    each strategy,

    * ``equity_t = prod_{u <= t} (1 + r*_u)``, ``cagr = equity_n ** (252 / n) - 1`` (-1 if wiped out),
      ``max_drawdown = min_t(equity_t / max(1, max_{u <= t} equity_u) - 1)``,
      ``calmar = cagr / |max_drawdown|`` (NaN when the resample has no drawdown);
    * ``avg_monthly_pnl = mean over calendar months m of (prod_{t in m} (1 + r*_t) - 1)``, months
      of the original ``realized_ts`` in New York time.

    These are exactly :func:`~allocator_pipeline.core.evaluation.metrics.performance_metrics`
    applied to a backtest frame with the original ``realized_ts`` and the resampled ``ret``
    (a test checks it), computed for all resamples at once with numpy.

Interval
    The difference ``metric(allocator) - metric(baseline)`` is computed on every resample; the
    interval at confidence ``c`` is the percentile interval ``[q_{(1-c)/2}, q_{(1+c)/2}]`` of the
    resampled differences (resamples where the difference is undefined, a Calmar without drawdown,
    are left out and counted). The point estimate is the difference on the original path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.resampling import stationary_indices
from allocator_pipeline.core.common.sessions import EXCHANGE_TZ, SESSIONS_PER_YEAR
from allocator_pipeline.settings import BootstrapSettings

BOOTSTRAP_METRICS = ("calmar", "avg_monthly_pnl")
CHUNK = 250
"""Resamples computed together (bounds memory to a few (CHUNK, n) float arrays)."""


def month_starts(realized_ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Positions where a new calendar month (New York time) begins; ``realized_ts`` must be sorted."""
    ts = pd.DatetimeIndex(realized_ts)
    if ts.tz is None:
        raise InputDataError("realized_ts must be tz-aware UTC", column="realized_ts")
    months = ts.tz_convert(EXCHANGE_TZ).tz_localize(None).to_period("M").asi8
    if len(months) and (np.diff(months) < 0).any():
        raise InputDataError("realized_ts must be sorted", column="realized_ts")
    return np.flatnonzero(np.r_[True, months[1:] != months[:-1]]) if len(months) else np.empty(0, dtype=np.int64)


def path_metrics(returns: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Calmar and average monthly PnL of each row of ``returns`` (module docstring formulas).

    Parameters
    ----------
    returns : ndarray, shape (b, n)
        Daily net returns (fractions), one path per row, on the original calendar.
    starts : ndarray
        :func:`month_starts` of that calendar.

    Returns
    -------
    dict
        ``cagr``, ``max_drawdown``, ``calmar`` (NaN without drawdown) and ``avg_monthly_pnl``,
        each an array of shape (b,).
    """
    r = np.atleast_2d(np.asarray(returns, dtype=float))
    n = r.shape[1]
    equity = np.cumprod(1.0 + r, axis=1)
    end = equity[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        cagr = np.where(end > 0, np.abs(end) ** (SESSIONS_PER_YEAR / n) - 1.0, -1.0)
    peak = np.maximum(np.maximum.accumulate(equity, axis=1), 1.0)
    mdd = np.minimum((equity / peak - 1.0).min(axis=1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        calmar = np.where(mdd < 0, cagr / np.abs(mdd), np.nan)
    monthly = np.multiply.reduceat(1.0 + r, starts, axis=1) - 1.0
    return {"cagr": cagr, "max_drawdown": mdd, "calmar": calmar, "avg_monthly_pnl": monthly.mean(axis=1)}


def _interval(diffs: np.ndarray, confidence: float) -> tuple[float | None, float | None, int]:
    ok = diffs[np.isfinite(diffs)]
    if len(ok) == 0:
        return None, None, len(diffs)
    lo, hi = np.quantile(ok, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return float(lo), float(hi), int(len(diffs) - len(ok))


def paired_bootstrap(
    ret_a: np.ndarray | pd.Series,
    ret_b: np.ndarray | pd.Series,
    realized_ts: pd.Series | pd.DatetimeIndex,
    settings: BootstrapSettings,
) -> dict[str, Any]:
    """Stationary block bootstrap intervals for ``metric(a) - metric(b)``, Calmar and avg monthly PnL.

    Parameters
    ----------
    ret_a, ret_b : array-like, shape (n,)
        Paired daily net returns (fractions), e.g. ``ret_allocator`` and ``ret_baseline`` of
        ``oos_daily``, both earned in the sessions ``realized_ts``.
    realized_ts : Series or DatetimeIndex
        The sessions the returns are earned in (tz-aware UTC, sorted): the calendar months.
    settings : BootstrapSettings
        ``block_length`` (mean, sessions), ``resamples``, ``seed``, ``confidence``.

    Returns
    -------
    dict
        ``method``, ``block_length``, ``resamples``, ``seed``, ``confidence``, ``n_sessions`` and,
        for each of ``calmar`` and ``avg_monthly_pnl``: ``{point, lower, upper, share_positive,
        undefined}`` (``point`` the difference on the original path, ``lower``/``upper`` the
        percentile interval, ``share_positive`` the share of resamples with a positive
        difference, ``undefined`` the resamples left out).
    """
    return contrast_bootstrap([(1.0, ret_a), (-1.0, ret_b)], realized_ts, settings)


def contrast_bootstrap(
    terms: Sequence[tuple[float, np.ndarray | pd.Series]],
    realized_ts: pd.Series | pd.DatetimeIndex,
    settings: BootstrapSettings,
) -> dict[str, Any]:
    """Stationary block bootstrap of a contrast ``sum_k c_k * metric(r_k)`` of paired return series.

    :func:`paired_bootstrap` is the contrast ``metric(a) - metric(b)``; a difference of
    differences, ``(metric(a1) - metric(b1)) - (metric(a2) - metric(b2))`` (the model's increment
    of one run against another's), is four terms. Every series is resampled with the SAME
    positions, so the pairing of all of them is kept.

    Parameters
    ----------
    terms : sequence of (float, array-like of shape (n,))
        Coefficient ``c_k`` and daily net returns ``r_k`` (fractions) earned in ``realized_ts``.
    realized_ts : Series or DatetimeIndex
        The sessions the returns are earned in (tz-aware UTC, sorted): the calendar months.
    settings : BootstrapSettings
        ``block_length`` (mean, sessions), ``resamples``, ``seed``, ``confidence``.

    Returns
    -------
    dict
        As :func:`paired_bootstrap`, for the contrast.

    >>> ts = pd.date_range("2024-01-02 21:00", periods=80, freq="B", tz="UTC")
    >>> r = np.random.default_rng(1).normal(0.0, 0.01, (2, 80))
    >>> s = BootstrapSettings(block_length=5, resamples=200)
    >>> contrast_bootstrap([(1.0, r[0]), (-1.0, r[1])], ts, s) == paired_bootstrap(r[0], r[1], ts, s)
    True
    >>> contrast_bootstrap([(1.0, r[0]), (-1.0, r[0])], ts, s)["avg_monthly_pnl"]["point"]
    0.0
    """
    coefficients = [float(c) for c, _ in terms]
    series = [np.asarray(r, dtype=float) for _, r in terms]
    if not series or any(r.ndim != 1 or r.shape != series[0].shape or len(r) == 0 for r in series):
        shapes = ", ".join(str(r.shape) for r in series)
        raise InputDataError(f"paired returns must be 1-d series of the same length (got {shapes})")
    if not all(np.isfinite(r).all() for r in series):
        raise InputDataError("bootstrap returns must be finite", column="ret")
    starts = month_starts(realized_ts)
    n = len(series[0])
    if len(starts) == 0 or len(pd.DatetimeIndex(realized_ts)) != n:
        raise InputDataError("realized_ts must give one session per return", column="realized_ts")
    rng = np.random.default_rng(settings.seed)
    diffs: dict[str, list[np.ndarray]] = {m: [] for m in BOOTSTRAP_METRICS}
    done = 0
    while done < settings.resamples:
        size = min(CHUNK, settings.resamples - done)
        idx = stationary_indices(n, size, settings.block_length, rng)
        resampled = [path_metrics(r[idx], starts) for r in series]
        for m in BOOTSTRAP_METRICS:
            diffs[m].append(_combine(coefficients, [one[m] for one in resampled]))
        done += size
    original = [path_metrics(r[None, :], starts) for r in series]
    out: dict[str, Any] = {
        "method": "stationary block bootstrap (Politis-Romano), paired, percentile interval",
        "block_length": settings.block_length,
        "resamples": settings.resamples,
        "seed": settings.seed,
        "confidence": settings.confidence,
        "n_sessions": n,
    }
    for m in BOOTSTRAP_METRICS:
        d = np.concatenate(diffs[m])
        lo, hi, undefined = _interval(d, settings.confidence)
        point = float(_combine(coefficients, [one[m] for one in original])[0])
        finite = d[np.isfinite(d)]
        out[m] = {
            "point": point if math.isfinite(point) else None,
            "lower": lo,
            "upper": hi,
            "share_positive": float(np.mean(finite > 0.0)) if len(finite) else None,
            "undefined": undefined,
        }
    return out


def _combine(coefficients: Sequence[float], values: Sequence[np.ndarray]) -> np.ndarray:
    """``sum_k c_k * values_k``; for ``(+1, -1)`` exactly ``values_0 - values_1`` (multiplying by
    +-1 and adding a negation are exact in floating point, so the verdict's figures do not move)."""
    total = coefficients[0] * values[0]
    for c, v in zip(coefficients[1:], values[1:]):
        total = total + c * v
    return total
