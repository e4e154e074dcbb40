"""The reference Step 3 engine over both symbols: their legs, events and fold summary as a Step 3 directory.

It ships with the project so the whole pipeline runs on the embedded data, and it writes the Step 3
contract (core/inputs/step3.py) to disk, which is then read back by the same reader as user data.

The per-symbol walk-forward model and its legs are in core/inputs/reference_engine.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.inputs.reference_engine import ENGINE_SEED, Progress, passive_leg, reference_leg
from allocator_pipeline.core.inputs.step3 import Step3Data, read_step3_dir, write_step3_dir
from allocator_pipeline.settings import Settings

ROLES = ("qqq", "spy")
EVENT_MIN_CHANGE = 0.10
EVENT_COLUMNS = [
    "decision_ts",
    "symbol",
    "step3_fold",
    "event",
    "position",
    "position_before",
    "prob_up",
    "prob_q10",
    "prob_q90",
    "drift_psi",
]


def _symbol_series(market: pd.DataFrame, role: str, symbol: str) -> pd.DataFrame:
    """One role's adjusted close and volume from its first price on, refusing interior gaps."""
    for column in (f"{role}_adj_close", f"{role}_volume"):
        if column not in market.columns:
            raise InputDataError("market panel column missing", column=column, row="header", value=list(market.columns))
    prices = market[f"{role}_adj_close"].astype("float64")
    first = prices.first_valid_index()
    if first is None:
        raise InputDataError(f"no prices for {symbol}", column=f"{role}_adj_close", row="all", value=float("nan"))
    frame = pd.DataFrame({"adj_close": prices, "volume": market[f"{role}_volume"].astype("float64")}).loc[first:]
    gap = frame["adj_close"].isna().to_numpy()
    if gap.any():
        raise InputDataError(
            f"{symbol} has no price on a session inside its history",
            column=f"{role}_adj_close",
            row=str(frame.index[int(np.flatnonzero(gap)[0])]),
            value=float("nan"),
        )
    return frame


def position_events(leg: pd.DataFrame, min_change: float = EVENT_MIN_CHANGE) -> pd.DataFrame:
    """Scored events of one leg: position moves of at least ``min_change`` since the last event
    (``entry`` on the first row, then ``increase`` / ``decrease``), and drift flag switches
    (``drift_on`` / ``drift_off``). Each event row carries what was known at its decision_ts."""
    pos = leg["position"].to_numpy()
    marks = np.zeros(len(pos), dtype=bool)
    before = np.zeros(len(pos))
    anchor = 0.0
    for i in range(len(pos)):  # hysteresis: each event resets the anchor (a true recursion)
        if i == 0 or abs(pos[i] - anchor) >= min_change:
            marks[i], before[i], anchor = True, anchor, pos[i]
    kind = np.where(pos > before, "increase", "decrease").astype(object)
    kind[0] = "entry"
    rows = leg.assign(event=kind, position_before=before)[marks]
    flag = leg["drift_flag"].to_numpy() if "drift_flag" in leg.columns else np.zeros(len(pos), dtype=int)
    switch = np.flatnonzero(np.diff(flag) != 0) + 1
    drift = leg.iloc[switch].assign(
        event=np.where(flag[switch] == 1, "drift_on", "drift_off").astype(object), position_before=pos[switch - 1]
    )
    events = pd.concat([rows, drift]).sort_values(["decision_ts", "event"], kind="mergesort")
    columns = [c for c in EVENT_COLUMNS if c in events.columns]
    out = events[columns].reset_index(drop=True)
    out["event"] = out["event"].astype("str")
    return out


def run_reference_engine(
    market: pd.DataFrame, settings: Settings, out_dir: str | Path, progress: Progress = None, seed: int = ENGINE_SEED
) -> Step3Data:
    """Run the reference Step 3 engine on the market panel and write the Step 3 contract.

    Parameters
    ----------
    market : DataFrame
        The market panel (core/inputs/market.py ``market_panel``), indexed by ``decision_ts`` (UTC);
        uses ``<role>_adj_close`` and ``<role>_volume`` for roles ``qqq`` and ``spy``.
    settings : Settings
        ``settings.step3`` (engine) and ``settings.data`` (symbols, ``step3_mode``).
    out_dir : path
        Receives ``backtest/<SYMBOL>.parquet``, ``folds/summary.parquet``,
        ``events/<SYMBOL>.parquet`` (each written atomically).
    progress : callable, optional
        Receives one line per fold.
    seed : int
        Base seed of the bags (bag ``b`` uses ``seed + b``).

    Returns
    -------
    Step3Data
        The written directory read back through :func:`core.step3.read_step3_dir`.

    Examples
    --------
    Passive legs (buy and hold) on the embedded data; the leg panel holds the sessions where
    both legs exist (QQQ from 1999-03-10, its first return a session later):

    >>> import tempfile
    >>> from allocator_pipeline.core.inputs import build_leg_panel, load_prices, market_panel
    >>> from allocator_pipeline.settings import load_settings
    >>> market = market_panel(load_prices(None, 1e-4), "QQQ", "SPY")
    >>> settings = load_settings(environ={}, overrides={"data": {"step3_mode": "passive"}})
    >>> step3 = run_reference_engine(market, settings, tempfile.mkdtemp())
    >>> panel = build_leg_panel(step3, market)
    >>> len(panel), str(panel.index[0])
    (6679, '1999-03-11 21:00:00+00:00')
    """
    mode = settings.data.step3_mode
    symbols = {"qqq": settings.data.qqq_symbol, "spy": settings.data.spy_symbol}
    legs, summaries, events = {}, [], {}
    for role in ROLES:
        symbol = symbols[role]
        series = _symbol_series(market, role, symbol)
        if mode == "passive":
            leg, summary = passive_leg(series, symbol)
            event = pd.DataFrame(
                {
                    "decision_ts": pd.DatetimeIndex([], tz="UTC"),
                    "symbol": pd.Series([], dtype="str"),
                    "event": pd.Series([], dtype="str"),
                }
            )
        else:
            leg, summary = reference_leg(series, symbol, settings.step3, seed, progress)
            event = position_events(leg)
        legs[symbol], events[symbol] = leg, event
        summaries.append(summary)
    summary = pd.concat(summaries, ignore_index=True)
    write_step3_dir(out_dir, legs, summary, events, calendar=market.index)
    if progress is not None:
        progress(f"Step 3 reference engine ({mode}): wrote {Path(out_dir)}")
    return read_step3_dir(out_dir, symbols, market.index, require_confidence=mode == "reference")
