"""Checks of the Step 3 legs against each other and against the market: plausibility, coverage,
alignment.

These run after each leg file passed the contract (``step3_validation.py``: schema, ranges, every
session of the price calendar between its first and last row), on every read of the legs (the
``inputs`` assets, the live decision, the commands' validation before any run):

* **plausibility**: ``|leg_return| <= data.max_abs_leg_return`` on every row (default 0.25; a
  leg's position is in [-1, 1], and no SPY or QQQ session since 1993 moved 20%);
* **coverage**: the legs end on the same session (a leg may start earlier: it then has more
  history than the leg panel uses; inside the overlap both hold every session of the calendar);
* **alignment**: each leg's returns belong to the sessions they are stamped with. With ``r_t``
  the symbol's market total return over the session ending at row ``t`` (adjusted close) and
  ``p_t`` the leg's position decided at ``t``, the leg's own convention is
  ``leg_return_t ~ p_{t-1} r_t``. For ``k`` in (-1, 0, +1),
  ``c_k = corr(leg_return_t, p_{t-1+k} r_{t+k})`` (Pearson, pairs with both values). A leg is
  refused as shifted by ``k`` when ``c_k >= c_0 + data.alignment_margin`` and
  ``c_k >= data.alignment_min_corr``: lag +1 means each row carries the **next** session's return
  (look-ahead), lag -1 the previous session's (stale). Daily returns are almost uncorrelated from
  one session to the next, so for a correct leg ``c_{+-1}`` is near 0 while ``c_0`` is near 1
  for the reference engine and any long-biased leg (a passive leg has ``p = 1``:
  ``c_k = corr(leg, r_{t+k})``). A leg unrelated to its symbol's returns (``c_k`` near 0 for
  every ``k``) passes: nothing can be said. Windows with no variance (a flat leg) are skipped.
  The statistic is computed on the whole overlap with the market and on each calendar year with
  at least ``data.alignment_window_sessions`` rows, so a shift confined to some years is found.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import session_dates
from allocator_pipeline.settings.sections import DataSettings

LAGS = (-1, 0, 1)
LAG_MEANING = {
    1: "the NEXT session's return (the rows look one session ahead)",
    -1: "the PREVIOUS session's return (the rows are one session late)",
}


def alignment_correlations(leg: pd.DataFrame, market_return: pd.Series) -> dict[int, float]:
    """``{k: c_k}`` for k in (-1, 0, 1) (see the module docstring); NaN where undefined.

    ``leg`` is indexed by ``decision_ts`` with ``leg_return`` and ``position``; ``market_return``
    is the symbol's return on the market calendar (same index type), covering the leg's sessions.

    >>> idx = pd.date_range("2020-01-01", periods=300, freq="D", tz="UTC")
    >>> r = pd.Series(np.random.default_rng(0).normal(0, 0.01, 300), index=idx)
    >>> leg = pd.DataFrame({"leg_return": r.shift(-1), "position": 1.0}, index=idx)  # a shifted leg
    >>> {k: round(c, 2) for k, c in alignment_correlations(leg, r).items()}
    {-1: 0.02, 0: 0.03, 1: 1.0}
    """
    return _correlations(_LegArrays(leg, market_return), np.arange(len(leg)))


class _LegArrays:
    """A leg's returns and positions, and the market return ``r_{t+k}`` of each of its rows, as
    arrays: computed once per leg, then sliced for every window of :func:`check_alignment`."""

    def __init__(self, leg: pd.DataFrame, market_return: pd.Series) -> None:
        self.y = leg["leg_return"].astype("float64").to_numpy()
        self.position = leg["position"].astype("float64").to_numpy()
        self.lagged = {k: market_return.shift(-k).reindex(leg.index).to_numpy(dtype="float64") for k in LAGS}


def _shifted(values: np.ndarray, periods: int) -> np.ndarray:
    """``pd.Series.shift(periods)`` of an array (NaN where nothing is shifted in)."""
    out = np.full(len(values), np.nan)
    if periods == 0:
        out[:] = values
    elif periods > 0:
        out[periods:] = values[:-periods]
    else:
        out[:periods] = values[-periods:]
    return out


def _correlations(arrays: _LegArrays, rows: np.ndarray) -> dict[int, float]:
    """``c_k`` of the leg rows ``rows`` (positions), the positions shifted within those rows."""
    y = arrays.y[rows]
    position = arrays.position[rows]
    out: dict[int, float] = {}
    for k in LAGS:
        x = _shifted(position, 1 - k) * arrays.lagged[k][rows]
        both = ~np.isnan(y) & ~np.isnan(x)
        if both.sum() < 3 or np.nanstd(x[both]) == 0.0 or np.nanstd(y[both]) == 0.0:
            out[k] = float("nan")
        else:
            out[k] = float(np.corrcoef(y[both], x[both])[0, 1])
    return out


def _windows(leg: pd.DataFrame, min_sessions: int) -> list[tuple[str, np.ndarray]]:
    years = session_dates(leg.index).year.to_numpy()
    windows = [("all rows", np.ones(len(leg), dtype=bool))]
    for year in np.unique(years):
        mask = years == year
        if mask.sum() >= min_sessions:
            windows.append((f"year {year}", mask))
    return windows


def check_alignment(
    leg: pd.DataFrame, market_return: pd.Series, data: DataSettings, *, file: str | Path, symbol: str
) -> None:
    """Refuse a leg explained far better by the previous or next session's market return."""
    covered = market_return.reindex(leg.index).notna().to_numpy()
    arrays = _LegArrays(leg, market_return)
    for label, mask in _windows(leg, data.alignment_window_sessions):
        rows = np.flatnonzero(mask & covered)
        if len(rows) < 3:
            continue
        corr = _correlations(arrays, rows)
        c0 = 0.0 if np.isnan(corr[0]) else corr[0]
        for k in (1, -1):
            ck = corr[k]
            if not np.isnan(ck) and ck >= c0 + data.alignment_margin and ck >= data.alignment_min_corr:
                shown = ", ".join(f"lag {j:+d} {corr[j]:.3f}" for j in LAGS)
                raise InputDataError(
                    f"leg_return is explained by {LAG_MEANING[k]}: over {label} ({len(rows)} rows from "
                    f"{session_dates(leg.index[rows[:1]])[0].date()}) its correlation with the position-weighted "
                    f"{symbol} market return is {shown}; expected each row to hold the return of the session "
                    f"ending at its decision_ts (lag 0 best, margin {data.alignment_margin:g})",
                    file=file,
                    column="leg_return",
                    row=int(rows[0]),
                    value=f"lag {k:+d}",
                )


def check_plausible(leg: pd.DataFrame, bound: float, *, file: str | Path) -> None:
    """Refuse the first row with ``|leg_return| > bound``."""
    values = leg["leg_return"].to_numpy(dtype="float64")
    bad = np.abs(values) > bound
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputDataError(
            f"|leg_return| above the plausibility bound data.max_abs_leg_return = {bound:g} "
            f"({int(bad.sum())} row(s)); expected a daily net return as a fraction (0.01 = 1%)",
            file=file,
            column="leg_return",
            row=i,
            value=float(values[i]),
        )


def check_coverage(legs: Mapping[str, pd.DataFrame], files: Mapping[str, Path], symbols: Mapping[str, str]) -> None:
    """Refuse legs that do not end on the same session (naming the leg that ends first)."""
    ends = {role: leg.index[-1] for role, leg in legs.items()}
    last = max(ends.values())
    for role, end in ends.items():
        if end < last:
            other = next(r for r, e in ends.items() if e == last)
            raise InputDataError(
                f"the {symbols[role]} leg ends at {end} but the {symbols[other]} leg ends at {last}: the legs "
                f"must end on the same session (the shorter leg would silently cut the data)",
                file=files[role],
                column="decision_ts",
                row=len(legs[role]) - 1,
                value=str(end),
            )


def check_legs(
    legs: Mapping[str, pd.DataFrame],
    files: Mapping[str, Path],
    symbols: Mapping[str, str],
    market: pd.DataFrame,
    data: DataSettings,
) -> None:
    """Plausibility and alignment of each leg (role ``L`` against the market's ``L_adj_close``),
    then coverage. Raises :class:`InputDataError` on the first problem."""
    for role, leg in legs.items():
        check_plausible(leg, data.max_abs_leg_return, file=files[role])
        column = f"{role}_adj_close"
        if column in market.columns:
            market_return = market[column].pct_change(fill_method=None)
            market_return.index = pd.DatetimeIndex(market.index).tz_convert("UTC").as_unit("ns")
            check_alignment(leg, market_return, data, file=files[role], symbol=symbols[role])
    check_coverage(legs, files, symbols)
