"""Resampled legs for planted-signal fixtures: the real legs' rows in a new order, with the prices they imply.

A planted-signal fixture that keeps the real leg returns keeps the one real 2002-2025 path, with its
one 2008 crash: every default chosen on it is chosen on the path the embedded real-data verdict
reports as out of sample. :func:`resample_legs` draws another path of the same legs, a stationary
block bootstrap (Politis and Romano, 1994) of whole session rows, the QQQ and SPY legs together:

1. ``n`` sessions common to both legs (a leg's other sessions are dropped); positions
   ``idx = stationary_indices(n, 1, block, default_rng([seed, 7]))[0]`` (mean block ``block``
   sessions, wrapping at the end).
2. Session ``t`` of the new path gets every column of row ``idx[t]`` of each leg (``leg_return``,
   ``position``, ``asset_return``, the confidence and drift columns) but its own ``decision_ts`` and
   ``step3_fold``: the calendar and the folds stay where they are, the returns move.
3. Each leg's symbol gets a price series that earns the resampled ``asset_return``:
   ``adj_close_t = 100 * prod_{u <= t} (1 + asset_return_u)``, on the same sessions, written as a
   user price file under a new symbol (``<SYMBOL>B``: the embedded data has no such symbol, so it is
   taken as it is, and the legs' alignment with their market, which the Step 3 validator checks,
   holds by construction).

So the legs keep their daily distribution, their cross-correlation and (within blocks) their
serial dependence and volatility clustering; the market context the features read (VIX, the
T-bill yield) stays the real one and is then unrelated to the legs. A row's ``asset_return`` is
the symbol's return over the session ending at that row, as the reference engine writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.resampling import stationary_indices
from allocator_pipeline.core.common.sessions import EXCHANGE_TZ

KEEP_IN_PLACE = ("decision_ts", "symbol", "step3_fold")
"""Columns that stay with the session, not with the resampled row."""
RESAMPLED_SUFFIX = "B"
"""Suffix of the resampled legs' symbols (``QQQ`` -> ``QQQB``)."""


def resampled_symbol(symbol: str) -> str:
    """The symbol under which a resampled leg and its price file are written."""
    return f"{symbol}{RESAMPLED_SUFFIX}"


def resample_legs(
    legs: Mapping[str, pd.DataFrame], block: float, seed: int
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """A stationary block bootstrap of whole session rows of both legs (module docstring).

    Parameters
    ----------
    legs : mapping
        Symbol -> leg frame (``decision_ts`` column or index, ``leg_return``, ``asset_return``, ...);
        only the sessions every leg holds are kept.
    block : float
        Mean block length, in sessions (>= 1).
    seed : int
        Seed of the resampling positions.

    Returns
    -------
    legs : dict
        :func:`resampled_symbol` -> the resampled leg frame (``decision_ts`` a column, ``symbol`` the
        new symbol).
    prices : dict
        :func:`resampled_symbol` -> ``Date`` (session date), ``Adj Close`` (= ``Close``) and
        ``Volume`` (1.0): the price file earning the resampled ``asset_return``.

    Examples
    --------
    >>> ts = pd.date_range("2024-01-02 21:00", periods=6, freq="D", tz="UTC")
    >>> leg = lambda s, r: pd.DataFrame({"decision_ts": ts, "symbol": s, "leg_return": r, "position": 1.0,
    ...                                  "asset_return": r, "step3_fold": 2024})
    >>> out, prices = resample_legs({"QQQ": leg("QQQ", [0.01] * 6), "SPY": leg("SPY", [0.0] * 6)}, 3.0, 0)
    >>> sorted(out), float(prices["QQQB"]["Adj Close"].iloc[-1].round(4))
    (['QQQB', 'SPYB'], 106.152)
    """
    frames = {}
    for symbol, frame in legs.items():
        f = frame.reset_index() if "decision_ts" not in frame.columns else frame.copy()
        if "asset_return" not in f.columns:
            raise InputDataError("a resampled leg needs the asset's return per session", column="asset_return")
        frames[symbol] = f.sort_values("decision_ts", kind="mergesort").reset_index(drop=True)
    common = None
    for f in frames.values():
        ts = pd.DatetimeIndex(f["decision_ts"])
        common = ts if common is None else common.intersection(ts)
    if common is None or len(common) < 2:
        raise InputDataError("resampling needs at least two sessions common to both legs", column="decision_ts")
    frames = {s: f[f["decision_ts"].isin(common)].reset_index(drop=True) for s, f in frames.items()}
    first = common
    idx = stationary_indices(len(first), 1, float(block), np.random.default_rng([seed, 7]))[0]
    out: dict[str, pd.DataFrame] = {}
    prices: dict[str, pd.DataFrame] = {}
    for symbol, f in frames.items():
        moved = [c for c in f.columns if c not in KEEP_IN_PLACE]
        new = f.copy()
        new[moved] = f[moved].iloc[idx].reset_index(drop=True)  # each column keeps its dtype
        name = resampled_symbol(symbol)
        new["symbol"] = name
        out[name] = new
        growth = np.cumprod(1.0 + new["asset_return"].to_numpy(dtype=float))
        dates = pd.DatetimeIndex(new["decision_ts"]).tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d")
        prices[name] = pd.DataFrame({"Date": dates, "Adj Close": 100.0 * growth, "Close": 100.0 * growth})
        prices[name]["Volume"] = 1.0
    return out, prices


def write_price_files(prices: Mapping[str, pd.DataFrame], directory: str | Path) -> list[Path]:
    """Write each price frame as ``<SYMBOL>.csv`` (plain Yahoo layout ``Date,Open,High,Low,Close,Adj
    Close,Volume``, the close repeated as open, high and low) for ``data.prices_dir``."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for symbol, frame in prices.items():
        out = pd.DataFrame(
            {
                "Date": frame["Date"],
                "Open": frame["Close"],
                "High": frame["Close"],
                "Low": frame["Close"],
                "Close": frame["Close"],
                "Adj Close": frame["Adj Close"],
                "Volume": frame["Volume"],
            }
        )
        path = root / f"{symbol}.csv"
        out.to_csv(path, index=False, float_format="%.10g")
        paths.append(path)
    return paths
