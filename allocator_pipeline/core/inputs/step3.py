"""The Step 3 input contract: read, validate and align per-symbol Step 3 outputs.

A Step 3 directory (docs/design.md section 4) holds:

* ``backtest/<SYMBOL>.parquet``: one row per exchange session. Required columns:

  - ``decision_ts``: tz-aware datetime (stored UTC; any tz-aware zone is converted to UTC), the
    16:00 America/New_York close of a session of the price calendar; a column or the index;
  - ``symbol`` (str): equal to the file name's ``<SYMBOL>``;
  - ``leg_return`` (float, fraction): the leg's net return over the session **ending** at
    ``decision_ts`` (close of the previous session to close of this one), after the leg's own
    trading costs;
  - ``position`` (float in [-1, 1]): the exposure decided at the close of ``decision_ts`` and
    held over the **next** session;
  - ``prob_up``, ``prob_q10``, ``prob_q50``, ``prob_q90`` (floats in [0, 1], q10 <= q50 <= q90):
    the confidence block, the calibrated probability that the next session's return is positive
    and its uncertainty quantiles, known at ``decision_ts``. It may be missing only when the
    confidence feature block is off (``require_confidence=False``);
  - ``step3_fold`` (str): the Step 3 walk-forward fold that produced the row.

  Optional columns are kept as they are. Two are validated when present: ``drift_psi`` (float
  >= 0, NaN allowed during warm-up) and ``drift_flag`` (0/1). They must be causal: computed from a
  trailing window of rows ``<= decision_ts``.
* ``folds/summary.parquet``: one row per Step 3 fold and symbol (``step3_fold``, ``symbol``,
  ``test_start``, ``test_end``, ``drift_psi``, ``drift_flag``, optional training ranges and
  counts). Diagnostic only: whole-fold statistics look into the fold's future, so nothing from
  this file is ever used as a feature (it is not part of the leg panel).
* ``events/<SYMBOL>.parquet`` (optional): scored events, a ``decision_ts`` (UTC) column and
  anything else.

The reader only reads: every problem raises :class:`InputDataError` naming file, column, row
(0-based data row of the file, or ``"header"`` for a missing column) and the offending value,
before the caller writes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.storage import read_parquet, write_parquet
from allocator_pipeline.core.inputs.step3_validation import (
    BACKTEST_DIR,
    BASE_COLUMNS,
    CONFIDENCE_COLUMNS,
    DRIFT_COLUMNS,
    EVENTS_DIR,
    FOLDS_SUMMARY,
    REQUIRED_COLUMNS,
    SUMMARY_COLUMNS,
    first_index,
    validate_events,
    validate_leg_frame,
    validate_summary,
)

__all__ = [
    "BACKTEST_DIR",
    "BASE_COLUMNS",
    "CONFIDENCE_COLUMNS",
    "DRIFT_COLUMNS",
    "EVENTS_DIR",
    "FOLDS_SUMMARY",
    "REQUIRED_COLUMNS",
    "SUMMARY_COLUMNS",
    "Step3Data",
    "build_leg_panel",
    "read_step3_dir",
    "validate_events",
    "validate_leg_frame",
    "validate_summary",
    "write_step3_dir",
]


@dataclass(frozen=True)
class Step3Data:
    """A validated Step 3 directory.

    Attributes
    ----------
    legs : dict[str, DataFrame]
        Role (``"qqq"``, ``"spy"``) -> the leg's rows, indexed by ``decision_ts`` (UTC, sorted,
        unique, every calendar session between the first and the last row). Required columns as
        float64 / str, optional columns kept.
    symbols : dict[str, str]
        Role -> symbol (file name stem).
    summary : DataFrame
        ``folds/summary.parquet`` as read (diagnostic only, never a feature).
    events : dict[str, DataFrame]
        Role -> ``events/<SYMBOL>.parquet`` for the symbols that have one.
    has_confidence : bool
        Every leg has the four confidence columns.
    has_drift : bool
        Every leg has ``drift_psi`` and ``drift_flag``.
    source : Path
        The directory read.
    """

    legs: dict[str, pd.DataFrame]
    symbols: dict[str, str]
    summary: pd.DataFrame
    events: dict[str, pd.DataFrame] = field(default_factory=dict)
    has_confidence: bool = True
    has_drift: bool = False
    source: Path | None = None

    def leg(self, role: str) -> pd.DataFrame:
        """The rows of one leg (KeyError naming the known roles if absent)."""
        if role not in self.legs:
            raise KeyError(f"no Step 3 leg for role {role!r}; roles: {sorted(self.legs)}")
        return self.legs[role]


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputDataError("Step 3 file not found", file=path)
    try:
        return read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputDataError(f"not a readable parquet file ({type(exc).__name__}: {exc})", file=path) from exc


def read_step3_dir(
    step3_dir: str | Path, symbols: Mapping[str, str], calendar: pd.DatetimeIndex, require_confidence: bool = True
) -> Step3Data:
    """Read and validate a Step 3 output directory.

    Parameters
    ----------
    step3_dir : path
        Directory with ``backtest/``, ``folds/summary.parquet`` and optionally ``events/``.
    symbols : mapping
        Role -> symbol, e.g. ``{"qqq": "QQQ", "spy": "SPY"}``; ``backtest/<SYMBOL>.parquet`` is
        read for each.
    calendar : DatetimeIndex
        The price calendar's ``decision_ts`` (UTC), i.e. the market panel's index.
    require_confidence : bool
        Refuse legs without the confidence columns (True when the confidence feature block is on).

    Returns
    -------
    Step3Data

    Raises
    ------
    InputDataError
        Missing directory or file, missing column, wrong dtype, NaN, duplicate/unsorted/naive
        timestamps, timestamps off the calendar, skipped sessions, probabilities outside [0, 1],
        quantiles out of order, position outside [-1, 1], symbol not matching the file name, a
        leg's fold without a summary row. Nothing is ever written by the reader.

    Examples
    --------
    The reference engine's passive legs, written to a directory and read back:

    >>> import tempfile
    >>> from allocator_pipeline.core.inputs import load_prices, market_panel, run_reference_engine
    >>> from allocator_pipeline.settings import load_settings
    >>> market = market_panel(load_prices(None, 1e-4), "QQQ", "SPY")
    >>> out = tempfile.mkdtemp()
    >>> _ = run_reference_engine(market, load_settings(environ={}, overrides={"data": {"step3_mode": "passive"}}), out)
    >>> step3 = read_step3_dir(out, {"qqq": "QQQ", "spy": "SPY"}, market.index, require_confidence=False)
    >>> print(step3.leg("qqq")[["leg_return", "position"]].tail(2).to_string())
                               leg_return  position
    decision_ts
    2025-09-25 20:00:00+00:00   -0.004311       1.0
    2025-09-26 20:00:00+00:00    0.004111       1.0
    """
    root = Path(step3_dir)
    if not root.is_dir():
        raise InputDataError("Step 3 directory not found", file=root)
    summary_path = root / FOLDS_SUMMARY
    summary = validate_summary(_read(summary_path), summary_path)
    legs: dict[str, pd.DataFrame] = {}
    events: dict[str, pd.DataFrame] = {}
    for role, symbol in symbols.items():
        path = root / BACKTEST_DIR / f"{symbol}.parquet"
        leg = validate_leg_frame(
            _read(path), file=path, symbol=symbol, calendar=calendar, require_confidence=require_confidence
        )
        known = set(summary.loc[summary["symbol"] == symbol, "step3_fold"])
        folds = pd.unique(leg["step3_fold"])
        unknown = [f for f in folds if f not in known]
        if unknown:
            i = first_index((leg["step3_fold"] == unknown[0]).to_numpy())
            raise InputDataError(
                f"step3_fold has no row for symbol {symbol} in {summary_path}",
                file=path,
                column="step3_fold",
                row=i,
                value=unknown[0],
            )
        legs[role] = leg
        event_path = root / EVENTS_DIR / f"{symbol}.parquet"
        if event_path.is_file():
            events[role] = validate_events(_read(event_path), event_path)
    return Step3Data(
        legs=legs,
        symbols=dict(symbols),
        summary=summary,
        events=events,
        has_confidence=all(set(CONFIDENCE_COLUMNS) <= set(leg.columns) for leg in legs.values()),
        has_drift=all(set(DRIFT_COLUMNS) <= set(leg.columns) for leg in legs.values()),
        source=root,
    )


def build_leg_panel(step3: Step3Data, market: pd.DataFrame) -> pd.DataFrame:
    """Align the legs with each other and with the market panel (docs/ARCHITECTURE.md "Leg panel").

    Rows are the sessions where every leg has a row (the overlap of their ranges); inside it the
    legs must have the same sessions. Columns, for each role ``L``: ``L_leg_return``,
    ``L_position``, ``L_step3_fold``, the confidence block ``L_prob_up, L_prob_q10, L_prob_q50,
    L_prob_q90`` when every leg has it, the causal drift block ``L_drift_psi, L_drift_flag`` when
    every leg has it, then ``L_adj_close`` per role and ``vix``, ``tbill_yield_pct``,
    ``cash_return`` from the market panel. Returns in row ``d`` are realised over the session
    ending at ``decision_ts(d)``; positions and probabilities are known at ``decision_ts(d)``.
    Nothing from ``folds/summary.parquet`` enters the panel (whole-fold statistics are not causal).

    Raises
    ------
    InputDataError
        The legs do not overlap, differ in sessions inside the overlap, or the market panel lacks a
        session or an adjusted close inside the overlap.
    """
    roles = list(step3.symbols)
    legs = {r: step3.leg(r) for r in roles}
    start = max(leg.index[0] for leg in legs.values())
    end = min(leg.index[-1] for leg in legs.values())
    if start > end:
        spans = "; ".join(f"{step3.symbols[r]} {leg.index[0]} .. {leg.index[-1]}" for r, leg in legs.items())
        raise InputDataError(
            f"the Step 3 legs do not overlap ({spans})", column="decision_ts", row=str(start), value=str(end)
        )
    windows = {r: leg.loc[start:end] for r, leg in legs.items()}
    index = windows[roles[0]].index
    for role in roles[1:]:
        other = windows[role].index
        if not index.equals(other):
            only = index.symmetric_difference(other)
            first = only[0]
            holder = roles[0] if first in index else role
            raise InputDataError(
                f"the Step 3 legs are not aligned: session present in the {step3.symbols[holder]} leg "
                f"only ({len(only)} session(s) differ inside the overlap)",
                file=step3.source / BACKTEST_DIR if step3.source else None,
                column="decision_ts",
                row=str(first),
                value=step3.symbols[holder],
            )
    blocks = ["leg_return", "position", "step3_fold"]
    if step3.has_confidence:
        blocks += list(CONFIDENCE_COLUMNS)
    if step3.has_drift:
        blocks += list(DRIFT_COLUMNS)
    panel = pd.DataFrame(index=index.rename("decision_ts"))
    for role in roles:
        for column in blocks:
            panel[f"{role}_{column}"] = windows[role][column].to_numpy()
    market_index = pd.DatetimeIndex(market.index).tz_convert("UTC")
    absent = index.difference(market_index)
    if len(absent):
        raise InputDataError(
            "session missing from the market panel",
            column="decision_ts",
            row=str(absent[0]),
            value=f"{len(absent)} session(s)",
        )
    context = market.reindex(index)
    for column in [f"{r}_adj_close" for r in roles] + ["vix", "tbill_yield_pct", "cash_return"]:
        if column not in context.columns:
            raise InputDataError("market panel column missing", column=column, row="header", value=list(market.columns))
        if column != "vix":  # VIX may be stale/NaN: the feature table applies its staleness rule
            nan = context[column].isna().to_numpy()
            if nan.any():
                raise InputDataError(
                    "no market value on a Step 3 session (extend the price data)",
                    column=column,
                    row=str(index[first_index(nan)]),
                    value=float("nan"),
                )
        panel[column] = context[column].astype("float64").to_numpy()
    return panel


def write_step3_dir(
    out_dir: str | Path,
    legs: Mapping[str, pd.DataFrame],
    summary: pd.DataFrame,
    events: Mapping[str, pd.DataFrame] | None = None,
    calendar: pd.DatetimeIndex | None = None,
) -> Path:
    """Write a Step 3 directory (``backtest/``, ``folds/summary.parquet``, ``events/``).

    Every frame is validated first (the same rules as the reader; against ``calendar`` when
    given), then each file is written atomically (temporary file + rename, core/common/storage.py), so a
    failed validation writes nothing. ``legs`` and ``events`` are keyed by symbol; leg frames may
    carry ``decision_ts`` as a column or as the index; it is stored as a column.
    """
    root = Path(out_dir)
    staged: list[tuple[pd.DataFrame, Path]] = []
    for symbol, frame in legs.items():
        path = root / BACKTEST_DIR / f"{symbol}.parquet"
        leg = validate_leg_frame(frame, file=path, symbol=symbol, calendar=calendar, require_confidence=False)
        staged.append((leg.reset_index(), path))
    summary_path = root / FOLDS_SUMMARY
    staged.append((validate_summary(summary, summary_path), summary_path))
    for symbol, frame in (events or {}).items():
        path = root / EVENTS_DIR / f"{symbol}.parquet"
        staged.append((validate_events(frame, path), path))
    for frame, path in staged:
        write_parquet(frame.reset_index(drop=True), path)
    return root
