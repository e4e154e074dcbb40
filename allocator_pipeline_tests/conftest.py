"""Shared fixtures: the real market panel, a small synthetic one, and settings for tests.

Only generally useful fixtures live here; a test module's own data stays in that module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR, decision_ts_from_dates
from allocator_pipeline.core.inputs.market import load_prices, market_panel
from allocator_pipeline.settings import Settings, load_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules with a test marked ``slow`` (end to end: pipeline runs, the daemon, the browser)
    first, the rest after, each in collection order and kept whole: ``make test`` spreads whole modules over its workers in
    this order (``--dist loadfile --no-loadscope-reorder``), so the long modules start first and
    the short ones fill in around them."""
    slow_modules = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_modules)  # a module stays together


@pytest.fixture(scope="session")
def market_long() -> pd.DataFrame:
    """The embedded long price table (symbol, session, adj_close, close, volume)."""
    return load_prices()


@pytest.fixture(scope="session")
def market(market_long: pd.DataFrame) -> pd.DataFrame:
    """The real market panel (SPY calendar 1993-01-29 .. 2025-09-26), indexed by decision_ts (UTC)."""
    return market_panel(market_long)


def make_synthetic_market(n_sessions: int = 750, start: str = "2015-01-02", seed: int = 0) -> pd.DataFrame:
    """A market panel with the real panel's columns on ``n_sessions`` weekdays (random walks).

    SPY and QQQ adjusted closes are geometric random walks (QQQ with higher volatility and
    correlated with SPY), volumes are positive, VIX tracks SPY's trailing volatility, the T-bill
    yield is a slow random walk, ``cash_return`` follows market_panel's convention.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=n_sessions)
    common = rng.normal(0.0003, 0.010, n_sessions)
    spy_r = common + rng.normal(0.0, 0.003, n_sessions)
    qqq_r = 1.3 * common + rng.normal(0.0002, 0.006, n_sessions)
    spy_r[0] = qqq_r[0] = 0.0
    spy = 200.0 * np.cumprod(1.0 + spy_r)
    qqq = 100.0 * np.cumprod(1.0 + qqq_r)
    vol = pd.Series(spy_r).rolling(21, min_periods=1).std().fillna(0.01).to_numpy()
    yld = np.clip(2.0 + np.cumsum(rng.normal(0.0, 0.02, n_sessions)), 0.0, None)
    panel = pd.DataFrame(
        {
            "spy_adj_close": spy,
            "spy_close": spy * 1.1,
            "spy_volume": rng.integers(50_000_000, 150_000_000, n_sessions).astype("float64"),
            "qqq_adj_close": qqq,
            "qqq_close": qqq * 1.05,
            "qqq_volume": rng.integers(20_000_000, 80_000_000, n_sessions).astype("float64"),
            "vix": 100.0 * vol * np.sqrt(SESSIONS_PER_YEAR),
            "tbill_yield_pct": yld,
        },
        index=decision_ts_from_dates(dates),
    )
    y_prev = panel["tbill_yield_pct"].shift(1).fillna(panel["tbill_yield_pct"])
    panel["cash_return"] = (1.0 + y_prev / 100.0) ** (1.0 / SESSIONS_PER_YEAR) - 1.0
    return panel


@pytest.fixture
def synthetic_market() -> pd.DataFrame:
    """A 750-session synthetic market panel (2015-01-02 on, weekdays), deterministic."""
    return make_synthetic_market()


@pytest.fixture
def make_market() -> Callable[..., pd.DataFrame]:
    """Factory of synthetic market panels: ``make_market(n_sessions, start, seed)``."""
    return make_synthetic_market


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Factory of ``quick``-profile settings homed in ``tmp_path``, ignoring the environment.

    ``make_settings(step3={"n_bags": 5}, data={"step3_mode": "passive"})`` merges the given
    sections over the quick profile.
    """

    def build(**sections: Any) -> Settings:
        return load_settings(home=tmp_path, profile="quick", environ={}, overrides=sections or None)

    return build
