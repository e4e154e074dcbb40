"""Performance metrics of a backtest (docs/design.md section 7; one convention everywhere).

Every figure is computed from a :func:`allocator_pipeline.core.evaluation.backtest.run_backtest` frame: the
net daily return ``ret`` (fraction of capital) indexed by ``realized_ts`` (the session over which
it was earned), ``r_cash`` (that session's T-bill return), ``traded`` and ``cost``. 252 sessions
a year. Each number can be recomputed by hand from ``oos_daily.parquet``:

* ``equity_t = prod_{u <= t} (1 + ret_u)`` (starting from 1.0 before the first session);
* ``cagr = equity_end ** (252 / n) - 1`` (geometric; -1 when the equity is wiped out);
* ``max_drawdown = min_t (equity_t / max(1, max_{u <= t} equity_u) - 1)`` (<= 0, e.g. -0.25);
* ``calmar = cagr / |max_drawdown|`` (None when there is no drawdown);
* months: calendar months of ``realized_ts`` in New York time; a month's return is the
  compounded ``prod (1 + ret) - 1``; ``avg_monthly_pnl`` is their mean (fraction of capital),
  ``avg_monthly_pnl_ccy`` the same times the notional; ``monthly_hit_rate`` the share of months
  > 0; ``worst_month`` the minimum;
* ``sharpe = mean(ret - r_cash) / std(ret - r_cash) * sqrt(252)`` (ddof = 1);
* ``volatility = std(ret) * sqrt(252)`` (ddof = 1);
* ``cvar_95`` = mean of the ``ceil(0.05 n)`` worst daily returns (at least one);
* ``turnover = sum(traded) * 252 / n``; ``cost_drag = sum(cost) * 252 / n`` (per year);
* ``start``, ``end``: the New York session dates of the first and last ``realized_ts``.

Undefined values (a zero standard deviation, no drawdown) are ``None`` so the dict is JSON-ready.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import EXCHANGE_TZ, SESSIONS_PER_YEAR

METRIC_NAMES = (
    "cagr",
    "max_drawdown",
    "calmar",
    "avg_monthly_pnl",
    "avg_monthly_pnl_ccy",
    "sharpe",
    "volatility",
    "monthly_hit_rate",
    "worst_month",
    "cvar_95",
    "turnover",
    "cost_drag",
    "n_sessions",
    "start",
    "end",
)


def _returns(bt: pd.DataFrame) -> pd.Series:
    for col in ("ret", "realized_ts"):
        if col not in bt.columns:
            raise InputDataError("backtest frame lacks a column", column=col)
    ret = pd.Series(
        bt["ret"].to_numpy(dtype=float, na_value=np.nan), index=pd.DatetimeIndex(bt["realized_ts"]), name="ret"
    )
    if ret.index.tz is None:
        raise InputDataError("realized_ts must be tz-aware UTC", column="realized_ts")
    bad = ~np.isfinite(ret.to_numpy())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputDataError("return must be a finite number", column="ret", row=ret.index[i], value=ret.iloc[i])
    return ret


def equity_curve(bt: pd.DataFrame) -> pd.Series:
    """Compounded equity after each session, starting from 1.0, indexed by ``realized_ts``."""
    ret = _returns(bt)
    return (1.0 + ret).cumprod().rename("equity")


def drawdown_curve(bt: pd.DataFrame) -> pd.Series:
    """Drawdown (<= 0, fraction) from the running peak of the equity curve (initial 1.0 included)."""
    eq = equity_curve(bt)
    peak = np.maximum(eq.cummax().to_numpy(), 1.0)
    return pd.Series(eq.to_numpy() / peak - 1.0, index=eq.index, name="drawdown")


def monthly_returns(bt: pd.DataFrame) -> pd.Series:
    """Compounded return of each calendar month (New York time of ``realized_ts``).

    Index: ``pd.PeriodIndex`` (freq ``M``) named ``month``; values are fractions of capital.
    """
    ret = _returns(bt)
    local = ret.index.tz_convert(EXCHANGE_TZ).tz_localize(None)
    months = local.to_period("M")
    grouped = (1.0 + pd.Series(ret.to_numpy(), index=months)).groupby(level=0, sort=True).prod() - 1.0
    grouped.index.name = "month"
    return grouped.rename("monthly_return")


def _clean(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def performance_metrics(bt: pd.DataFrame, notional: float) -> dict[str, Any]:
    """Risk and return figures of one backtest (conventions in the module docstring).

    Parameters
    ----------
    bt : DataFrame
        A ``run_backtest`` output (``realized_ts``, ``ret``, ``r_cash``, ``traded``, ``cost``).
    notional : float
        Capital (currency units) for ``avg_monthly_pnl_ccy``.

    Returns
    -------
    dict
        Keys :data:`METRIC_NAMES`; floats (fractions, annualised where stated), ``None`` where
        undefined, ``n_sessions`` an int, ``start``/``end`` ISO dates.

    Examples
    --------
    >>> import pandas as pd
    >>> from allocator_pipeline.core.common.costs import CostModel
    >>> from allocator_pipeline.core.common.sessions import decision_ts_from_dates
    >>> from allocator_pipeline.core.evaluation.backtest import run_backtest
    >>> idx = decision_ts_from_dates(pd.bdate_range("2024-01-02", periods=4))
    >>> returns = pd.DataFrame({"qqq_leg_return": [0.0, 0.02, -0.01, 0.01],
    ...                         "spy_leg_return": [0.0, 0.01, 0.0, 0.005], "cash_return": 0.0001}, index=idx)
    >>> decisions = pd.DataFrame({"w": [0.5, 1.0, 1.0, 0.5], "exposure": 1.0}, index=idx)
    >>> m = performance_metrics(run_backtest(decisions, returns, CostModel(1.0, 2.0, 0.0)), notional=1e6)
    >>> m["n_sessions"], round(m["max_drawdown"], 6)  # the one losing session is the drawdown
    (3, -0.010299)
    """
    ret = _returns(bt)
    n = len(ret)
    if n == 0:
        raise InputDataError("cannot compute metrics of an empty backtest", column="ret")
    for col in ("r_cash", "traded", "cost"):
        if col not in bt.columns:
            raise InputDataError("backtest frame lacks a column", column=col)
    r = ret.to_numpy()
    equity = np.cumprod(1.0 + r)
    end = float(equity[-1])
    cagr = end ** (SESSIONS_PER_YEAR / n) - 1.0 if end > 0 else -1.0
    dd = equity / np.maximum(np.maximum.accumulate(equity), 1.0) - 1.0
    mdd = float(min(dd.min(), 0.0))
    calmar = cagr / abs(mdd) if mdd < 0 else None
    excess = r - bt["r_cash"].to_numpy(dtype=float)
    sd_excess = float(np.std(excess, ddof=1)) if n > 1 else float("nan")
    sharpe = float(np.mean(excess)) / sd_excess * math.sqrt(SESSIONS_PER_YEAR) if sd_excess > 0 else None
    vol = float(np.std(r, ddof=1)) * math.sqrt(SESSIONS_PER_YEAR) if n > 1 else None
    k = max(1, math.ceil(0.05 * n))
    cvar = float(np.mean(np.sort(r)[:k]))
    months = monthly_returns(bt).to_numpy()
    avg_month = float(np.mean(months))
    sessions = ret.index.tz_convert(EXCHANGE_TZ)
    return {
        "cagr": _clean(cagr),
        "max_drawdown": mdd,
        "calmar": _clean(calmar) if calmar is not None else None,
        "avg_monthly_pnl": avg_month,
        "avg_monthly_pnl_ccy": avg_month * float(notional),
        "sharpe": _clean(sharpe) if sharpe is not None else None,
        "volatility": _clean(vol) if vol is not None else None,
        "monthly_hit_rate": float(np.mean(months > 0.0)),
        "worst_month": float(months.min()),
        "cvar_95": cvar,
        "turnover": float(bt["traded"].to_numpy(dtype=float).sum()) * SESSIONS_PER_YEAR / n,
        "cost_drag": float(bt["cost"].to_numpy(dtype=float).sum()) * SESSIONS_PER_YEAR / n,
        "n_sessions": int(n),
        "start": sessions[0].date().isoformat(),
        "end": sessions[-1].date().isoformat(),
    }
