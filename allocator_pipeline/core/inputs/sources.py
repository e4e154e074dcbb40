"""Where the inputs come from: the configured market data and Step 3 directory, read and validated.

These functions are the inputs stage as the settings describe it; the ``inputs`` assets, the live
decision and the schedule call them, so every reader of the inputs reads them the same way.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from allocator_pipeline.core.inputs.market import load_prices, market_panel
from allocator_pipeline.core.inputs.step3 import build_leg_panel, read_step3_dir
from allocator_pipeline.settings import Settings

MARKET_COLUMNS = (
    "spy_adj_close",
    "spy_close",
    "spy_volume",
    "qqq_adj_close",
    "qqq_close",
    "qqq_volume",
    "vix",
    "tbill_yield_pct",
    "cash_return",
)
"""Columns of the market panel (see ``market_panel`` for their units)."""


def load_market(settings: Settings) -> pd.DataFrame:
    """The validated market panel: embedded data merged with the user's price files."""
    return market_panel(
        load_prices(settings.data.prices_dir, settings.data.merge_return_tolerance),
        settings.data.qqq_symbol,
        settings.data.spy_symbol,
    )


def step3_directory(settings: Settings) -> Path:
    """The Step 3 directory read by the allocator: the user's, or the reference engine's output."""
    return Path(settings.data.step3_dir) if settings.data.step3_dir else settings.paths.step3_out


def read_legs(settings: Settings, market: pd.DataFrame) -> pd.DataFrame:
    """Read and validate the Step 3 directory, then align the two legs with the market panel."""
    roles = {"qqq": settings.data.qqq_symbol, "spy": settings.data.spy_symbol}
    step3 = read_step3_dir(
        step3_directory(settings), roles, market.index, require_confidence="confidence" in settings.features.blocks
    )
    return build_leg_panel(step3, market)


def live_inputs(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Market panel and leg panel read fresh from the configured sources (validated)."""
    market = load_market(settings)
    return market, read_legs(settings, market)


def index_problems(frame: pd.DataFrame, name: str) -> list[str]:
    """Problems of a frame's ``decision_ts`` index: not tz-aware UTC, duplicated or unsorted."""
    problems = []
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None or str(idx.tz) != "UTC":
        problems.append(f"{name}: index must be tz-aware UTC decision_ts, got {idx.dtype}")
    if idx.has_duplicates:
        problems.append(f"{name}: duplicate decision_ts {idx[idx.duplicated()][:3].tolist()}")
    if not idx.is_monotonic_increasing:
        problems.append(f"{name}: decision_ts not sorted")
    return problems


def market_problems(panel: pd.DataFrame) -> list[str]:
    """Schema problems of the market panel (empty when sound)."""
    problems = index_problems(panel, "market_prices")
    problems += [f"missing column {c}" for c in MARKET_COLUMNS if c not in panel.columns]
    if "spy_adj_close" in panel.columns and panel["spy_adj_close"].isna().any():
        problems.append("spy_adj_close has NaN on its own calendar")
    return problems


def leg_panel_problems(panel: pd.DataFrame, market: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Schema problems of the leg panel, and price sessions missing from it inside its range."""
    schema = index_problems(panel, "leg_panel")
    for col in ("qqq_leg_return", "spy_leg_return", "cash_return"):
        if col not in panel.columns:
            schema.append(f"missing column {col}")
        elif panel[col].isna().any():
            schema.append(f"{col} has {int(panel[col].isna().sum())} NaN")
    aligned = []
    missing = market.index[(market.index >= panel.index[0]) & (market.index <= panel.index[-1])]
    missing = missing.difference(panel.index)
    if len(missing):
        aligned.append(f"{len(missing)} price sessions missing from the leg panel, first {missing[0]}")
    return schema, aligned
