"""Where the inputs come from: the configured market data and Step 3 directory, read and validated.

These functions are the inputs stage as the settings describe it; the ``inputs`` assets, the live
decision and the schedule call them, so every reader of the inputs reads them the same way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import session_dates
from allocator_pipeline.core.common.storage import read_parquet, write_bytes
from allocator_pipeline.core.inputs.calendar import describe_non_session, is_session
from allocator_pipeline.core.inputs.leg_checks import check_legs
from allocator_pipeline.core.inputs.market import load_prices, market_panel
from allocator_pipeline.core.inputs.reference_output import run_reference_engine
from allocator_pipeline.core.inputs.step3 import BACKTEST_DIR, build_leg_panel, read_step3_dir
from allocator_pipeline.settings import Settings, SettingsError

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
    """Read and validate the Step 3 directory (the contract, then plausibility, alignment and
    coverage: ``core/inputs/leg_checks.py``), then align the two legs with the market panel."""
    roles = {"qqq": settings.data.qqq_symbol, "spy": settings.data.spy_symbol}
    directory = step3_directory(settings)
    step3 = read_step3_dir(directory, roles, market.index, require_confidence="confidence" in settings.features.blocks)
    files = {role: directory / BACKTEST_DIR / f"{symbol}.parquet" for role, symbol in roles.items()}
    check_legs(step3.legs, files, roles, market, settings.data)
    return build_leg_panel(step3, market)


def extend_reference_legs(settings: Settings, market: pd.DataFrame) -> int:
    """Extend the reference engine's legs to sessions the market panel has and they lack.

    In reference-engine mode the Step 3 legs in ``<home>/step3_out`` end where the dataset was
    built. When new price sessions arrive, the engine is run again on the extended prices: it is
    walk-forward by year, so the current year's model (trained before the year) scores the new
    sessions and every earlier row comes out the same, which is checked bit for bit before the
    files are replaced (atomically, file by file). A user Step 3 directory is read as it is.

    Returns the number of new sessions (0: nothing to do, or no legs built yet).

    Raises
    ------
    InputDataError
        The engine gives other values on sessions the legs already hold (settings or prices
        changed): the dataset must be rebuilt.
    """
    if settings.data.step3_dir is not None:
        return 0
    out = settings.paths.step3_out
    symbols = (settings.data.qqq_symbol, settings.data.spy_symbol)
    files = [out / "backtest" / f"{symbol}.parquet" for symbol in symbols]
    if not all(f.is_file() for f in files):
        return 0
    old = {f: read_parquet(f) for f in files}
    last = min(frame["decision_ts"].max() for frame in old.values())
    new_sessions = int((market.index > last).sum())
    if new_sessions == 0:
        return 0
    with tempfile.TemporaryDirectory(prefix=".step3-extension-", suffix=".tmp", dir=out.parent) as tmp:
        run_reference_engine(market, settings, tmp)
        staged = {out / path.relative_to(tmp): path for path in Path(tmp).rglob("*.parquet")}
        for path, frame in old.items():
            fresh = read_parquet(staged[path])
            if not fresh.iloc[: len(frame)].reset_index(drop=True).equals(frame.reset_index(drop=True)):
                raise InputDataError(
                    "the reference engine gives other legs for sessions already built (prices or settings "
                    "changed): rebuild the dataset with `allocator build-dataset`",
                    file=path,
                )
        for path, source in staged.items():
            write_bytes(source.read_bytes(), path)
    return new_sessions


def validate_inputs(settings: Settings) -> dict[str, object]:
    """Validate everything a pipeline command reads, before any run starts.

    The market panel (each price file, its merge over the embedded data, the NYSE calendar), the
    settings' consistency with the Step 3 source, and a user Step 3 directory (the contract, then
    plausibility, alignment and coverage, then the leg panel, then the fold plan the settings ask
    of it: :func:`~allocator_pipeline.core.folds.feasibility.plan_for_legs`). In reference-engine
    mode the legs are the engine's output, written and validated by the same reader inside
    ``step3_legs``, and the fold plan is refused inside the dataset run (``fold_plan``, as bad input).

    Returns a summary (sessions, range, legs) for the command's first line.

    Raises
    ------
    InputDataError
        The first problem, naming file, column, row and value.
    SettingsError
        Settings that cannot work with the configured Step 3 source, or a fold plan its legs
        cannot give (the setting, its value and the data's range).
    """
    market = load_market(settings)
    summary: dict[str, object] = {
        "market_sessions": len(market),
        "market_range": f"{session_dates(market.index[:1])[0].date()}..{session_dates(market.index[-1:])[0].date()}",
    }
    if settings.data.step3_dir is None:
        if settings.data.step3_mode == "passive":
            wanting = [b for b in ("confidence", "drift") if b in settings.features.blocks]
            if wanting:
                raise SettingsError(
                    f"invalid settings: features.blocks = {list(settings.features.blocks)} includes {wanting}, but "
                    "data.step3_mode = 'passive' writes legs without confidence or drift columns (allowed: switch "
                    f"{' and '.join(repr(b) for b in wanting)} off, or use step3_mode = 'reference')"
                )
        summary["step3"] = f"reference engine ({settings.data.step3_mode}), built by step3_legs"
        return summary
    panel = read_legs(settings, market)
    from allocator_pipeline.core.folds.feasibility import plan_for_legs  # the folds stage, above this one
    from allocator_pipeline.core.folds.plan import FoldPlanError

    try:
        plan_for_legs(panel, settings)  # the plan the dataset run will build (in reference mode: in that run)
    except FoldPlanError as exc:
        raise SettingsError(f"invalid settings for {step3_directory(settings)}: {exc}") from None
    summary["step3"] = f"{step3_directory(settings)}"
    summary["leg_sessions"] = len(panel)
    return summary


def check_decision_date(date: str, legs: pd.DataFrame) -> None:
    """Refuse a decision date that is not an NYSE session, or outside the leg data's sessions.

    Raises
    ------
    InputDataError
        Saying which: a weekend day or a holiday (with the nearest sessions), before the first
        session of the data, after its last session (extend the prices / Step 3 data).
    """
    day = pd.Timestamp(date).normalize()
    dates = session_dates(legs.index)
    first, last = dates[0], dates[-1]
    if not is_session(day):
        problem = describe_non_session(day)
    elif day < first:
        problem = f"{day.date()} is before the first session of the data ({first.date()}); expected a session from {first.date()} to {last.date()}"
    elif day > last:
        problem = (
            f"{day.date()} is after the last session of the data ({last.date()}); extend the price "
            "data (--prices) or the Step 3 legs first"
        )
    else:
        return
    raise InputDataError(problem, column="--date", value=str(date))


def live_inputs(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Market panel and leg panel read fresh from the configured sources (validated); in
    reference-engine mode the legs are first extended to new price sessions
    (:func:`extend_reference_legs`)."""
    market = load_market(settings)
    extend_reference_legs(settings, market)
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
