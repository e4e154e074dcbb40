"""One vectorised backtest engine for the allocator and every baseline (docs/design.md section 7).

Conventions
-----------
* Input frames are indexed by ``decision_ts`` (UTC). A return column at row ``d`` is realised
  over the session ending at ``decision_ts(d)``.
* A decision at row ``d`` (QQQ share ``w`` in [0, 1] and gross exposure ``e`` in
  ``[0, MAX_EXPOSURE]``) sets the leg targets ``q = e * w``, ``s = e * (1 - w)`` (fractions of
  capital; cash ``1 - e``, borrowed when negative) and earns the returns of the **next** session
  ``d + 1``::

      R_d = e * (w * r_qqq_{d+1} + (1 - w) * r_spy_{d+1}) + (1 - e) * r_cash_{d+1}

* Trades are measured against the drifted book, per leg: the targets of ``d - 1`` carried through
  row ``d``'s returns, ``q'_d = q_{d-1} (1 + r_qqq_d) / (1 + R_{d-1})`` (same for ``s``), where
  ``R_{d-1}`` is the gross return of the previous decision (realised at ``d``).
  ``traded_d = |q_d - q'_d| + |s_d - s'_d|`` (cash is the residual and is not counted);
  ``cost_d = CostModel.cost(traded_d) + CostModel.financing(e_d)`` (trading, then the spread over
  the T-bill rate on exposure above 1, reported apart as ``financing``), charged in the same
  output row: ``ret_d = R_d - cost_d`` (the return realised at ``d + 1``).
* The first decision trades from ``initial_book = (q', s')``; by default the book already equals
  the first targets (no entry trade). The walk-forward report passes the baseline book
  ``(baseline_weight, 1 - baseline_weight)``.

Output rows: one per decision that has a next session; ``realized_ts`` is that next session's
``decision_ts``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError

RETURN_COLUMNS = ("qqq_leg_return", "spy_leg_return", "cash_return")
BACKTEST_COLUMNS = [
    "realized_ts",
    "w",
    "exposure",
    "r_qqq",
    "r_spy",
    "r_cash",
    "gross_return",
    "traded",
    "financing",
    "cost",
    "ret",
    "drifted_q",
    "drifted_s",
]
BaselineKind = Literal["baseline", "qqq_only", "spy_only", "inverse_vol", "oracle"]
BASELINE_KINDS: tuple[str, ...] = ("baseline", "qqq_only", "spy_only", "inverse_vol", "oracle")
MAX_EXPOSURE = 3.0  # the largest envelope.max_exposure the settings allow


def _check_unit_interval(values: np.ndarray, column: str, index: pd.Index) -> None:
    ok = np.isfinite(values) & (values >= 0.0) & (values <= 1.0)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise InputDataError("must be a number in [0, 1]", column=column, row=index[i], value=values[i])


def _check_exposure(values: np.ndarray, index: pd.Index) -> None:
    ok = np.isfinite(values) & (values >= 0.0) & (values <= MAX_EXPOSURE)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise InputDataError(
            f"must be a number in [0, {MAX_EXPOSURE}]", column="exposure", row=index[i], value=values[i]
        )


def _check_finite(values: np.ndarray, column: str, index: pd.Index) -> None:
    ok = np.isfinite(values)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise InputDataError("return must be a finite number", column=column, row=index[i], value=values[i])


def run_backtest(
    decisions: pd.DataFrame,
    returns: pd.DataFrame,
    cost_model: CostModel,
    initial_book: tuple[float, float] | None = None,
    execution_lag: int = 0,
) -> pd.DataFrame:
    """Net daily returns of a path of decisions (see the module docstring for the convention).

    Parameters
    ----------
    decisions : DataFrame
        Index ``decision_ts`` (a contiguous block of ``returns``' sessions, sorted); columns
        ``w`` (QQQ share, in [0, 1]) and ``exposure`` (gross, in ``[0, MAX_EXPOSURE]``).
    returns : DataFrame
        Index ``decision_ts`` (sorted, unique: the session calendar); columns ``qqq_leg_return``,
        ``spy_leg_return``, ``cash_return`` (fractions, realised over the session ending at the row).
    cost_model : CostModel
    initial_book : (float, float), optional
        QQQ and SPY shares of capital held just before the first trade (None: the first targets).
    execution_lag : int
        Sessions between a decision and its trade: 0 trades at the close the decision reads; 1 at
        the next close (the book held over the session after row ``d`` is then the decision of
        row ``d - 1``). The first ``execution_lag`` rows hold the initial book (or, without one,
        the first decision's targets). The ``w`` and ``exposure`` columns are the executed ones.

    Returns
    -------
    DataFrame
        Index ``decision_ts`` (the decisions with a next session); columns :data:`BACKTEST_COLUMNS`.
        ``r_*`` are the next session's returns; ``gross_return``, ``traded``, ``cost``, ``ret``
        are fractions of capital; ``drifted_q``, ``drifted_s`` the book before the trade.

    Examples
    --------
    The decision at row ``d`` earns row ``d + 1``'s returns; moving the book from 50/50 to all
    QQQ trades its drifted shares (about 2 x 0.5) and pays 3 bp on them:

    >>> import pandas as pd
    >>> from allocator_pipeline.core.common.costs import CostModel
    >>> from allocator_pipeline.core.common.sessions import decision_ts_from_dates
    >>> idx = decision_ts_from_dates(pd.bdate_range("2024-01-02", periods=4))
    >>> returns = pd.DataFrame({"qqq_leg_return": [0.0, 0.02, -0.01, 0.01],
    ...                         "spy_leg_return": [0.0, 0.01, 0.0, 0.005], "cash_return": 0.0001}, index=idx)
    >>> decisions = pd.DataFrame({"w": [0.5, 1.0, 1.0, 0.5], "exposure": 1.0}, index=idx)
    >>> bt = run_backtest(decisions, returns, CostModel(fee_bps=1.0, slippage_bps=2.0, impact_bps=0.0))
    >>> print(bt[["traded", "cost", "ret"]].round(6).to_string())
                                 traded      cost       ret
    decision_ts
    2024-01-02 21:00:00+00:00  0.000000  0.000000  0.015000
    2024-01-03 21:00:00+00:00  0.995074  0.000299 -0.010299
    2024-01-04 21:00:00+00:00  0.000000  0.000000  0.010000
    """
    missing = [c for c in ("w", "exposure") if c not in decisions.columns]
    missing += [c for c in RETURN_COLUMNS if c not in returns.columns]
    if missing:
        raise InputDataError("backtest input lacks a column", column=missing[0])
    cal = returns.index
    if not cal.is_monotonic_increasing or not cal.is_unique:
        raise InputDataError("returns index (decision_ts) must be sorted and unique", column="decision_ts")
    pos = cal.get_indexer(decisions.index)
    if (pos < 0).any():
        i = int(np.flatnonzero(pos < 0)[0])
        raise InputDataError(
            "decision session not in the returns calendar", column="decision_ts", row=decisions.index[i]
        )
    if len(pos) > 1 and (np.diff(pos) != 1).any():
        i = int(np.flatnonzero(np.diff(pos) != 1)[0]) + 1
        raise InputDataError(
            "decisions must be consecutive sessions of the returns calendar (gap or disorder)",
            column="decision_ts",
            row=decisions.index[i],
        )
    keep = pos + 1 < len(cal)  # a decision earns the next session; the last one may have none
    pos = pos[keep]
    dec = decisions.loc[keep]
    w = dec["w"].to_numpy(dtype=float, na_value=np.nan)
    e = dec["exposure"].to_numpy(dtype=float, na_value=np.nan)
    _check_unit_interval(w, "w", dec.index)
    _check_exposure(e, dec.index)
    if execution_lag < 0:
        raise InputDataError("execution_lag must be >= 0 sessions", value=execution_lag)
    if execution_lag and len(w):
        if initial_book is not None:
            held = float(initial_book[0]) + float(initial_book[1])
            w_hold, e_hold = (float(initial_book[0]) / held if held > 0 else w[0]), held
        else:
            w_hold, e_hold = w[0], e[0]
        lag = min(execution_lag, len(w))
        w = np.concatenate([np.full(lag, w_hold), w[: len(w) - lag]])
        e = np.concatenate([np.full(lag, e_hold), e[: len(e) - lag]])

    nxt = pos + 1
    r_q = returns["qqq_leg_return"].to_numpy(dtype=float, na_value=np.nan)[nxt]
    r_s = returns["spy_leg_return"].to_numpy(dtype=float, na_value=np.nan)[nxt]
    r_c = returns["cash_return"].to_numpy(dtype=float, na_value=np.nan)[nxt]
    for col, arr in zip(RETURN_COLUMNS, (r_q, r_s, r_c)):
        _check_finite(arr, col, cal[nxt])

    q = e * w
    s = e * (1.0 - w)
    gross = q * r_q + s * r_s + (1.0 - e) * r_c
    if len(dec) and (1.0 + gross <= 0.0).any():
        i = int(np.flatnonzero(1.0 + gross <= 0.0)[0])
        raise InputDataError(
            "a session return of -100% or worse leaves no book to drift",
            column="gross_return",
            row=dec.index[i],
            value=gross[i],
        )
    # Row i's returns (= previous output row's next-session returns) drift the targets of i - 1.
    drifted_q = np.empty(len(dec))
    drifted_s = np.empty(len(dec))
    if len(dec):
        book0 = (q[0], s[0]) if initial_book is None else initial_book
        drifted_q[0], drifted_s[0] = float(book0[0]), float(book0[1])
        drifted_q[1:] = q[:-1] * (1.0 + r_q[:-1]) / (1.0 + gross[:-1])
        drifted_s[1:] = s[:-1] * (1.0 + r_s[:-1]) / (1.0 + gross[:-1])
    traded = np.abs(q - drifted_q) + np.abs(s - drifted_s)
    financing = cost_model.financing(e)
    cost = cost_model.cost(traded) + financing
    return pd.DataFrame(
        {
            "realized_ts": cal[nxt],
            "w": w,
            "exposure": e,
            "r_qqq": r_q,
            "r_spy": r_s,
            "r_cash": r_c,
            "gross_return": gross,
            "traded": traded,
            "financing": financing,
            "cost": cost,
            "ret": gross - cost,
            "drifted_q": drifted_q,
            "drifted_s": drifted_s,
        },
        index=dec.index,
    )


def inverse_vol_weight(returns: pd.DataFrame, vol_window: int = 63) -> pd.Series:
    """Causal inverse-volatility QQQ share on every row of ``returns``.

    ``w_d = (1 / vol_q) / (1 / vol_q + 1 / vol_s) = vol_s / (vol_q + vol_s)`` with ``vol`` the
    sample standard deviation (ddof = 1) of each leg's returns over rows ``d - vol_window + 1 ..
    d``; 0.5 during the warm-up (fewer than ``vol_window`` rows) and when both vols are zero.
    """
    rolling = returns[["qqq_leg_return", "spy_leg_return"]].rolling(vol_window, min_periods=vol_window)
    vol = rolling.std(ddof=1).to_numpy(dtype=float, na_value=np.nan)
    vq, vs = vol[:, 0], vol[:, 1]
    total = vq + vs
    ok = np.isfinite(total) & (total > 0.0)
    w = np.full(len(returns), 0.5)
    w[ok] = vs[ok] / total[ok]
    return pd.Series(w, index=returns.index, name="w")


def baseline_decisions(
    index: pd.DatetimeIndex,
    kind: BaselineKind,
    returns: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    weight: float = 0.5,
    vol_window: int = 63,
) -> pd.DataFrame:
    """Decision frame (``w``, ``exposure``) of a baseline on the sessions ``index``.

    Parameters
    ----------
    index : DatetimeIndex
        Decision sessions (``decision_ts``), usually the allocator's out-of-sample rows.
    kind : {"baseline", "qqq_only", "spy_only", "inverse_vol", "oracle"}
        ``baseline``: static ``weight``; ``qqq_only``: w = 1; ``spy_only``: w = 0;
        ``inverse_vol``: :func:`inverse_vol_weight` on ``returns`` (history before ``index`` is
        used for the warm-up); ``oracle``: the hindsight label path, ``labels.best_weight`` at
        each row (it uses future returns: a reference, never a strategy, and not an upper bound: the labels are penalised); NaN labels take the
        previous weight, leading NaNs the static ``weight``. Exposure is 1 for all.
    returns : DataFrame
        Leg returns indexed by ``decision_ts`` (``qqq_leg_return``, ``spy_leg_return``).
    labels : DataFrame, optional
        Required for ``oracle``: ``best_weight`` indexed by ``decision_ts``.
    weight : float
        The static baseline weight (``Settings.labels.baseline_weight``).
    vol_window : int
        Trailing sessions of the inverse-volatility estimate.
    """
    index = pd.DatetimeIndex(index)
    if kind == "baseline":
        w = np.full(len(index), float(weight))
    elif kind == "qqq_only":
        w = np.ones(len(index))
    elif kind == "spy_only":
        w = np.zeros(len(index))
    elif kind == "inverse_vol":
        w = inverse_vol_weight(returns, vol_window).reindex(index).fillna(0.5).to_numpy(dtype=float)
    elif kind == "oracle":
        if labels is None or "best_weight" not in labels.columns:
            raise InputDataError("the oracle baseline needs labels with a best_weight column", column="best_weight")
        path = labels["best_weight"].astype("float64").reindex(index).ffill().fillna(float(weight))
        w = path.to_numpy(dtype=float)
    else:
        raise ValueError(f"unknown baseline kind {kind!r}; allowed: {list(BASELINE_KINDS)}")
    return pd.DataFrame({"w": w, "exposure": np.ones(len(index))}, index=index)
