"""Market data: the embedded dataset, users' price files, and the validated market panel.

Embedded data (``market.parquet`` beside this file, built by ``scripts/build_embedded_data.py``):
a long table ``symbol, session, adj_close, close, volume`` for SPY and QQQ (ETF prices), VIX
(the index level in both ``adj_close`` and ``close``) and IRX (13-week T-bill discount yield in
percent, in both columns).

Users' price files (``--prices DIR`` or ``ALLOCATOR_PRICES``): one ``<SYMBOL>.csv`` per symbol,
either Yahoo's layout (four header lines ``Price,...``/``Ticker``/``Ticker``/``Date``, then
``Date,AdjClose,Close,High,Low,Open,Volume``; or a plain Yahoo ``Date,Open,High,Low,Close,Adj
Close,Volume`` file) or a two-column ``date,<value>`` CSV (adjusted close for ETFs, the level for
VIX, the yield in percent for IRX). A user file is merged over the embedded series: on
overlapping sessions the daily returns must agree within ``merge_return_tolerance`` (levels may
differ by a constant factor: the user series is rescaled onto the embedded one); for IRX, a
yield, the levels themselves must agree within 100x that tolerance in percentage points. New
sessions extend the series. A symbol the embedded data does not have is taken as it is.

Every series but the T-bill yield is checked against the NYSE session calendar
(``core/inputs/calendar.py``): a user file must hold every session between its first and last
date and no other date, and the merged series too (so the embedded data is checked as well).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR, decision_ts_from_dates
from allocator_pipeline.core.inputs.calendar import UNCHECKED_SYMBOLS, check_sessions

EMBEDDED_PATH = Path(__file__).resolve().parents[2] / "data" / "market.parquet"
EMBEDDED_SYMBOLS = ("SPY", "QQQ", "VIX", "IRX")
YIELD_SYMBOLS = frozenset({"IRX"})
LEVEL_SYMBOLS = frozenset({"VIX", "IRX"})
PRICE_COLUMNS = ["session", "adj_close", "close", "volume"]


def _parse_sessions(raw: pd.Series, path: Path, column: str, first_row: int) -> pd.Series:
    parsed = pd.to_datetime(raw.astype("string").str.strip().str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    bad = parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputDataError(
            "not a date YYYY-MM-DD", file=path, column=column, row=first_row + int(raw.index[i]), value=raw.iloc[i]
        )
    return parsed


def _numeric(raw: pd.Series, path: Path, column: str, first_row: int, *, allow_nan: bool = False) -> pd.Series:
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = values.isna() & ~raw.isna() if allow_nan else values.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputDataError(
            "not a number", file=path, column=column, row=first_row + int(raw.index[i]), value=raw.iloc[i]
        )
    return values


def read_price_file(path: str | Path, symbol: str | None = None) -> pd.DataFrame:
    """Read one price file in any supported layout into ``session, adj_close, close, volume``.

    Rows are numbered as data rows from 0 (header lines not counted) in error messages.
    Validates: parseable dates, sorted, no duplicates, numeric values, prices > 0 (yields may
    be <= 0), and (but for the T-bill yield) the NYSE calendar: every session between the first
    and the last date, and no other date. All-empty rows (Yahoo's holiday rows in VIX) are dropped.
    """
    path = Path(path)
    symbol = (symbol or path.stem).upper()
    if not path.is_file():
        raise InputDataError("price file not found", file=path)
    with open(path) as fh:
        first = fh.readline().strip().split(",")
    volume_col: str | None
    if first and first[0] == "Price":  # Yahoo layout A: 4 header lines
        frame = pd.read_csv(
            path,
            skiprows=4,
            header=None,
            dtype="string",
            names=["Date", "AdjClose", "Close", "High", "Low", "Open", "Volume"],
        )
        adj_col, close_col, volume_col = "AdjClose", "Close", "Volume"
    else:
        frame = pd.read_csv(path, dtype="string")
        lower = {c.strip().lower(): c for c in frame.columns}
        if "date" not in lower:
            raise InputDataError("no 'date' column in the header", file=path, column=str(list(frame.columns)))
        frame = frame.rename(columns={lower["date"]: "Date"})
        if "adj close" in lower:
            adj_col, close_col, volume_col = (
                lower["adj close"],
                lower.get("close", lower["adj close"]),
                lower.get("volume"),
            )
        elif len(frame.columns) == 2:
            value_col = [c for c in frame.columns if c != "Date"][0]
            adj_col, close_col, volume_col = value_col, value_col, None
        else:
            raise InputDataError(
                "unknown layout: expected Yahoo layout, 'Date,...,Adj Close,...' or two columns 'date,<value>'",
                file=path,
                column=str(list(frame.columns)),
            )
    value_cols = [c for c in frame.columns if c != "Date"]
    # keep the original row numbers (holiday rows dropped here must not shift them in messages)
    frame = frame[~frame[value_cols].isna().all(axis=1)]
    if frame.empty:
        raise InputDataError("no data rows", file=path)
    out = pd.DataFrame({"session": _parse_sessions(frame["Date"], path, "Date", 0)})
    out["adj_close"] = _numeric(frame[adj_col], path, adj_col, 0)
    out["close"] = _numeric(frame[close_col], path, close_col, 0)
    out["volume"] = _numeric(frame[volume_col], path, volume_col, 0, allow_nan=True) if volume_col else np.nan
    if symbol not in YIELD_SYMBOLS:
        for col, source_col in (("adj_close", adj_col), ("close", close_col)):
            bad = out[col] <= 0
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputDataError(
                    "price must be > 0",
                    file=path,
                    column=source_col,
                    row=int(out.index[i]),
                    value=float(out[col].iloc[i]),
                )
    step = out["session"].diff().dt.days
    bad = step <= 0
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        problem = "duplicate date" if step.iloc[i] == 0 else "dates not sorted ascending"
        raise InputDataError(
            problem, file=path, column="Date", row=int(out.index[i]), value=str(out["session"].iloc[i].date())
        )
    if symbol not in UNCHECKED_SYMBOLS:
        check_sessions(out["session"], file=path, column="Date", rows=[int(i) for i in out.index])
    return out[PRICE_COLUMNS].reset_index(drop=True)


def load_embedded() -> pd.DataFrame:
    """The embedded long table (symbol, session, adj_close, close, volume)."""
    if not EMBEDDED_PATH.is_file():
        raise FileNotFoundError(
            f"embedded data {EMBEDDED_PATH} is missing; rebuild it with scripts/build_embedded_data.py"
        )
    frame = pd.read_parquet(EMBEDDED_PATH)
    frame["symbol"] = frame["symbol"].astype(str)
    frame["session"] = pd.to_datetime(frame["session"]).astype("datetime64[ns]")
    return frame


def merge_series(
    base: pd.DataFrame, user: pd.DataFrame, symbol: str, tolerance: float, user_path: Path
) -> pd.DataFrame:
    """Merge one user series over the embedded one (see module docstring for the rules)."""
    if base.empty:
        return user
    overlap = base.merge(user, on="session", suffixes=("_base", "_user"))
    if overlap.empty:
        raise InputDataError(
            f"no session overlaps the embedded {symbol} data ({base['session'].min().date()} .. "
            f"{base['session'].max().date()}), so the two series cannot be checked against each other",
            file=user_path,
        )
    if symbol in YIELD_SYMBOLS:
        diff = (overlap["adj_close_user"] - overlap["adj_close_base"]).abs()
        bad = diff > tolerance * 100
        what = "yield (percent) differs from the embedded data by more than"
        limit = tolerance * 100
        factor = 1.0
    else:
        r_base = overlap["adj_close_base"].pct_change()
        r_user = overlap["adj_close_user"].pct_change()
        diff = (r_user - r_base).abs()
        bad = diff > tolerance
        what = "daily return differs from the embedded data by more than"
        limit = tolerance
        factor = float(np.median(overlap["adj_close_base"] / overlap["adj_close_user"]))
    if bad.any():
        dates = [str(d.date()) for d in overlap.loc[bad, "session"]]
        shown = ", ".join(dates[:10]) + (f" (+{len(dates) - 10} more)" if len(dates) > 10 else "")
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputDataError(
            f"{what} {limit:g} on {len(dates)} overlapping session(s): {shown}",
            file=user_path,
            column="adj_close",
            row=dates[0],
            value=float(overlap["adj_close_user"].iloc[i]),
        )
    extra = user[~user["session"].isin(base["session"])].copy()
    if symbol not in YIELD_SYMBOLS:
        for col in ("adj_close", "close"):
            extra[col] = extra[col] * factor if col == "adj_close" else extra[col]
    merged = pd.concat([base, extra], ignore_index=True).sort_values("session", kind="mergesort")
    return merged.reset_index(drop=True)


def load_prices(prices_dir: str | Path | None = None, tolerance: float = 1e-4) -> pd.DataFrame:
    """Embedded data merged with the user's price files from ``prices_dir`` (long table)."""
    embedded = load_embedded()
    if prices_dir is None:
        return embedded
    prices_dir = Path(prices_dir)
    if not prices_dir.is_dir():
        raise InputDataError("prices directory not found", file=prices_dir)
    files = sorted(prices_dir.glob("*.csv"))
    if not files:
        raise InputDataError("no <SYMBOL>.csv files in the prices directory", file=prices_dir)
    out = {s: g.drop(columns="symbol").reset_index(drop=True) for s, g in embedded.groupby("symbol")}
    for path in files:
        symbol = path.stem.upper()
        user = read_price_file(path, symbol=symbol)
        base = out.get(symbol, pd.DataFrame(columns=PRICE_COLUMNS))
        out[symbol] = merge_series(base, user, symbol, tolerance, path)
    sources = {path.stem.upper(): path for path in files}
    for symbol, series in out.items():
        if symbol not in UNCHECKED_SYMBOLS:
            source = sources.get(symbol, EMBEDDED_PATH)
            check_sessions(series["session"], file=source, column="Date", what=f"the merged {symbol} series")
    return pd.concat([g.assign(symbol=s) for s, g in sorted(out.items())], ignore_index=True)[
        ["symbol", *PRICE_COLUMNS]
    ]


def market_panel(long: pd.DataFrame, qqq_symbol: str = "QQQ", spy_symbol: str = "SPY") -> pd.DataFrame:
    """Wide, validated market panel indexed by ``decision_ts`` (UTC) on the SPY leg's sessions.

    Columns (units):

    * ``spy_adj_close, spy_close, spy_volume, qqq_adj_close, qqq_close, qqq_volume``: prices in
      the listing currency (adjusted close is split- and dividend-adjusted), shares; QQQ is NaN
      before its first session.
    * ``vix``: VIX level on that session, NaN where VIX has no value (not filled here; the
      feature table applies its staleness rule).
    * ``tbill_yield_pct``: 13-week T-bill yield in percent, forward-filled over bond-market
      holidays (causal: only earlier values are carried).
    * ``cash_return``: the return of cash over the session ending at the row's decision_ts,
      ``(1 + y_prev / 100) ** (1 / 252) - 1`` with ``y_prev`` the yield known at the previous
      close (the first row uses its own yield).
    """
    symbols = set(long["symbol"].unique())
    for needed in (spy_symbol, qqq_symbol):
        if needed not in symbols:
            raise InputDataError(f"symbol {needed} missing from the price data", column="symbol", value=needed)
    series = {s: g.set_index("session").sort_index() for s, g in long.groupby("symbol")}
    calendar = series[spy_symbol].index
    panel = pd.DataFrame(index=calendar)
    for role, symbol in (("spy", spy_symbol), ("qqq", qqq_symbol)):
        s = series[symbol].reindex(calendar)
        for col in ("adj_close", "close", "volume"):
            panel[f"{role}_{col}"] = s[col].astype("float64")
    panel["vix"] = series["VIX"]["close"].reindex(calendar) if "VIX" in series else np.nan
    if "IRX" in series:
        irx = series["IRX"]["close"]
        y = irx.reindex(calendar.union(irx.index)).ffill().reindex(calendar)
    else:
        y = pd.Series(0.0, index=calendar)
    panel["tbill_yield_pct"] = y.astype("float64")
    y_prev = panel["tbill_yield_pct"].shift(1).fillna(panel["tbill_yield_pct"]).fillna(0.0)
    panel["cash_return"] = (1.0 + y_prev / 100.0) ** (1.0 / SESSIONS_PER_YEAR) - 1.0
    panel.index = decision_ts_from_dates(panel.index)
    return panel
