"""Input assets: market prices, the Step 3 legs, and the aligned leg panel."""


from pathlib import Path
from typing import Iterator

import dagster as dg
import pandas as pd

from allocator_pipeline.core.inputs.step3 import build_leg_panel, read_step3_dir
from allocator_pipeline.core.inputs.reference_engine import run_reference_engine
from allocator_pipeline.core.inputs.market import load_prices, market_panel
from allocator_pipeline.defs.metadata import check_result, frame_metadata
from allocator_pipeline.defs.resources import AllocatorSettings
from allocator_pipeline.settings import Settings

GROUP = "inputs"
MARKET_COLUMNS = [
    "spy_adj_close", "spy_close", "spy_volume", "qqq_adj_close", "qqq_close", "qqq_volume",
    "vix", "tbill_yield_pct", "cash_return",
]


def load_market(settings: Settings) -> pd.DataFrame:
    """The validated market panel: embedded data merged with the user's price files."""
    return market_panel(load_prices(settings.data.prices_dir, settings.data.merge_return_tolerance),
                        settings.data.qqq_symbol, settings.data.spy_symbol)


def step3_directory(settings: Settings) -> Path:
    """The Step 3 directory read by the allocator: the user's, or the reference engine's output."""
    return Path(settings.data.step3_dir) if settings.data.step3_dir else settings.paths.step3_out


def read_legs(settings: Settings, market: pd.DataFrame) -> pd.DataFrame:
    """Read and validate the Step 3 directory, then align the two legs with the market panel."""
    roles = {"qqq": settings.data.qqq_symbol, "spy": settings.data.spy_symbol}
    step3 = read_step3_dir(
        step3_directory(settings),
        roles,
        market.index,
        require_confidence="confidence" in settings.features.blocks,
    )
    return build_leg_panel(step3, market)


def index_problems(frame: pd.DataFrame, name: str) -> list[str]:
    problems = []
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None or str(idx.tz) != "UTC":
        problems.append(f"{name}: index must be tz-aware UTC decision_ts, got {idx.dtype}")
    if idx.has_duplicates:
        problems.append(f"{name}: duplicate decision_ts {idx[idx.duplicated()][:3].tolist()}")
    if not idx.is_monotonic_increasing:
        problems.append(f"{name}: decision_ts not sorted")
    return problems


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    check_specs=[dg.AssetCheckSpec("market_schema", asset="market_prices", blocking=True)],
    description="Validated market panel (SPY, QQQ, VIX, T-bill) on exchange sessions: embedded data "
    "merged with the user's price files.",
)
def market_prices(context: dg.AssetExecutionContext, settings: AllocatorSettings) -> Iterator:
    s = settings.load()
    panel = load_market(s)
    problems = index_problems(panel, "market_prices")
    problems += [f"missing column {c}" for c in MARKET_COLUMNS if c not in panel.columns]
    if panel["spy_adj_close"].isna().any():
        problems.append("spy_adj_close has NaN on its own calendar")
    yield dg.Output(panel, metadata=frame_metadata(panel))
    yield check_result("market_schema", problems)


@dg.asset(
    group_name=GROUP,
    kinds={"lightgbm", "parquet"},
    description="The Step 3 legs: the user's step3_out directory (validated), or the reference Step 3 "
    "engine's output written to <home>/step3_out (walk-forward LightGBM legs, or passive).",
)
def step3_legs(context: dg.AssetExecutionContext, settings: AllocatorSettings, market_prices: pd.DataFrame) -> dict:
    s = settings.load()
    source = "user"
    if s.data.step3_dir is None:
        source = f"reference engine ({s.data.step3_mode})"
        run_reference_engine(market_prices, s, s.paths.step3_out, progress=context.log.info)
    legs = read_legs(s, market_prices)
    manifest = {
        "source": source,
        "directory": str(step3_directory(s).resolve()),
        "symbols": {"qqq": s.data.qqq_symbol, "spy": s.data.spy_symbol},
        "rows": len(legs),
        "first_decision_ts": str(legs.index[0]),
        "last_decision_ts": str(legs.index[-1]),
        "columns": list(legs.columns),
    }
    context.add_output_metadata({"source": source, "directory": dg.MetadataValue.path(manifest["directory"]),
                                 **frame_metadata(legs)})
    return manifest


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    deps=["step3_legs"],
    check_specs=[
        dg.AssetCheckSpec("leg_panel_schema", asset="leg_panel", blocking=True),
        dg.AssetCheckSpec("legs_aligned", asset="leg_panel", blocking=True),
    ],
    description="Both Step 3 legs aligned on common sessions with their market context.",
)
def leg_panel(context: dg.AssetExecutionContext, settings: AllocatorSettings, market_prices: pd.DataFrame) -> Iterator:
    s = settings.load()
    panel = read_legs(s, market_prices)
    schema = index_problems(panel, "leg_panel")
    for col in ("qqq_leg_return", "spy_leg_return", "cash_return"):
        if col not in panel.columns:
            schema.append(f"missing column {col}")
        elif panel[col].isna().any():
            schema.append(f"{col} has {int(panel[col].isna().sum())} NaN")
    aligned = []
    missing = market_prices.index[(market_prices.index >= panel.index[0]) & (market_prices.index <= panel.index[-1])]
    missing = missing.difference(panel.index)
    if len(missing):
        aligned.append(f"{len(missing)} price sessions missing from the leg panel, first {missing[0]}")
    yield dg.Output(panel, metadata=frame_metadata(panel))
    yield check_result("leg_panel_schema", schema)
    yield check_result("legs_aligned", aligned)
