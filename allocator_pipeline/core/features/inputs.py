"""Leg-panel inputs of the feature blocks: which columns each block reads, and their validation.

The leg panel (docs/ARCHITECTURE.md) is indexed by ``decision_ts`` (tz-aware UTC, one row per
session, strictly increasing). Rules enforced here, each failing with an
:class:`~allocator_pipeline.core.common.errors.InputDataError` that names the column, the row (session)
and the value:

* leg returns (``qqq_leg_return``, ``spy_leg_return``) and positions are finite on every row,
  returns > -1 (a simple return of -100 % or less would end the leg);
* other inputs may start with NaN (their own warm-up, e.g. a drift window filling up) but have
  no NaN after their first value; adjusted closes are > 0;
* ``vix`` may have missing sessions, forward-filled for at most ``vix_max_stale_sessions``
  sessions (see :func:`vix_staleness`). A longer gap after VIX's first value is an error while
  the ``vix`` block is on (the block must be switched off for data beyond VIX's end).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.settings import FEATURE_BLOCKS, FeatureSettings

LEGS: tuple[str, str] = ("qqq", "spy")
_PER_LEG = "{leg}"

BLOCK_INPUTS: dict[str, tuple[str, ...]] = {
    "returns": ("{leg}_leg_return",),
    "volatility": ("{leg}_leg_return",),
    "drawdown": ("{leg}_leg_return",),
    "hit_rate": ("{leg}_leg_return",),
    "confidence": ("{leg}_prob_up", "{leg}_prob_q10", "{leg}_prob_q50", "{leg}_prob_q90", "{leg}_position"),
    "drift": ("{leg}_drift_psi", "{leg}_drift_flag"),
    "regime": ("{leg}_adj_close", "{leg}_leg_return"),
    "vix": ("vix",),
    "tbill": ("tbill_yield_pct", "cash_return", "{leg}_leg_return"),
}
"""Input columns of each feature block (``{leg}`` expands to ``qqq`` and ``spy``)."""

STRICT_COLUMNS = frozenset({f"{leg}_{c}" for leg in LEGS for c in ("leg_return", "position")})
"""Columns that must be finite on every row."""


def block_columns(block: str) -> list[str]:
    """The leg-panel columns a feature block reads."""
    if block not in BLOCK_INPUTS:
        raise ValueError(f"unknown feature block {block!r}; allowed: {list(FEATURE_BLOCKS)}")
    out: list[str] = []
    for pattern in BLOCK_INPUTS[block]:
        names = [pattern.format(leg=leg) for leg in LEGS] if _PER_LEG in pattern else [pattern]
        out.extend(n for n in names if n not in out)
    return out


def missing_block_error(block: str, missing: list[str]) -> InputDataError:
    """The error raised when an enabled block's input columns are absent from the leg panel."""
    return InputDataError(
        f"feature block '{block}' needs column(s) {missing}, which the leg panel does not have "
        f"(e.g. passive Step 3 legs carry no confidence or drift columns); switch the block off: "
        f"FeatureSettings(blocks=...) without '{block}', e.g. the blocks of available_blocks(panel)",
        column=missing[0],
    )


def check_block_columns(blocks: Iterable[str], columns: Iterable[str]) -> None:
    """Raise :func:`missing_block_error` for the first enabled block with absent inputs."""
    present = set(columns)
    for block in blocks:
        missing = [c for c in block_columns(block) if c not in present]
        if missing:
            raise missing_block_error(block, missing)


def check_index(panel: pd.DataFrame) -> pd.DatetimeIndex:
    """The panel's index as a validated tz-aware UTC, strictly increasing ``DatetimeIndex``."""
    idx = panel.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise InputDataError(
            "the leg panel must be indexed by decision_ts, tz-aware UTC timestamps "
            "(core/sessions.decision_ts_from_dates)",
            column="decision_ts",
            value=str(getattr(idx, "dtype", type(idx))),
        )
    if str(idx.tz) != "UTC":
        raise InputDataError("decision_ts must be in UTC", column="decision_ts", value=str(idx.tz))
    if len(idx) > 1:
        steps = np.diff(idx.asi8)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            problem = "duplicate decision_ts" if steps[bad[0]] == 0 else "decision_ts not strictly increasing"
            raise InputDataError(problem, column="decision_ts", row=str(idx[i]), value=str(idx[i]))
    return idx


def column_values(panel: pd.DataFrame, column: str, block: str = "") -> np.ndarray:
    """A panel column as float64, validated per the module rules (VIX excepted)."""
    try:
        values = pd.to_numeric(panel[column], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise InputDataError(f"not numeric ({exc})", column=column) from None
    finite = np.isfinite(values)
    if len(values) and not finite.any():
        advice = f"; switch the feature block '{block}' off" if block else ""
        raise InputDataError(f"the column has no value at all{advice}", column=column)
    if column in STRICT_COLUMNS:
        bad = np.flatnonzero(~finite)
        if bad.size:
            i = int(bad[0])
            raise InputDataError(
                "must be a finite number on every session", column=column, row=str(panel.index[i]), value=values[i]
            )
    elif finite.any():
        first = int(np.argmax(finite))
        bad = np.flatnonzero(~finite[first:])
        if bad.size:
            i = first + int(bad[0])
            raise InputDataError(
                "missing or non-finite value after the column's first value (only a leading warm-up may be NaN)",
                column=column,
                row=str(panel.index[i]),
                value=values[i],
            )
    if column.endswith("_leg_return"):
        bad = np.flatnonzero(values <= -1.0)
        if bad.size:
            i = int(bad[0])
            raise InputDataError(
                "a daily leg return must be > -1 (fraction)", column=column, row=str(panel.index[i]), value=values[i]
            )
    if column.endswith("_adj_close"):
        bad = np.flatnonzero(finite & (values <= 0.0))
        if bad.size:
            i = int(bad[0])
            raise InputDataError("adjusted close must be > 0", column=column, row=str(panel.index[i]), value=values[i])
    return values


def vix_staleness(vix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VIX forward-filled without limit, and the sessions since its last real value.

    Returns ``(filled, stale)``: ``stale[d]`` is 0 on a session with a VIX value, ``m`` when the
    last value was ``m`` sessions earlier, NaN before the first value.
    """
    values = np.asarray(vix, dtype=np.float64)
    n = len(values)
    if n == 0:
        return values.copy(), values.copy()
    last = np.maximum.accumulate(np.where(np.isfinite(values), np.arange(n), -1))
    seen = last >= 0
    stale = np.where(seen, np.arange(n) - last, np.nan).astype(np.float64)
    filled = np.where(seen, values[np.maximum(last, 0)], np.nan)
    return filled, stale


def check_vix_gaps(panel: pd.DataFrame, max_stale: int) -> tuple[np.ndarray, np.ndarray]:
    """Filled VIX and staleness, or an error if VIX is stale beyond ``max_stale`` sessions."""
    raw = column_values_vix(panel)
    filled, stale = vix_staleness(raw)
    if not np.isfinite(raw).any():
        raise InputDataError("the 'vix' column has no value at all; switch the 'vix' feature block off", column="vix")
    bad = np.flatnonzero(stale > max_stale)
    if bad.size:
        i = int(bad[0])
        last_real = panel.index[i - int(stale[i])]
        last_ok = panel.index[i - 1]
        raise InputDataError(
            f"VIX has no value for more than vix_max_stale_sessions={max_stale} sessions (last "
            f"value on {last_real}); the VIX features would be NaN after warm-up. Switch the "
            f"'vix' feature block off for data beyond VIX's end, or end the leg panel at {last_ok}",
            column="vix",
            row=str(panel.index[i]),
            value="NaN",
        )
    return filled, stale


def column_values_vix(panel: pd.DataFrame) -> np.ndarray:
    """The ``vix`` column as float64 (NaN on missing sessions allowed)."""
    try:
        return pd.to_numeric(panel["vix"], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise InputDataError(f"not numeric ({exc})", column="vix") from None


def available_blocks(
    panel: pd.DataFrame, settings: FeatureSettings | None = None, until: pd.Timestamp | None = None
) -> tuple[str, ...]:
    """Feature blocks whose inputs the leg panel provides, in ``FEATURE_BLOCKS`` order.

    A block is available when all its input columns are present and not entirely NaN; ``vix``
    additionally needs VIX never stale beyond ``settings.vix_max_stale_sessions`` sessions after
    its first value (so the real embedded data, whose VIX ends 2025-09-02 while prices run to
    2025-09-26, leaves ``vix`` out). Use it to pick the default blocks:
    ``FeatureSettings(blocks=available_blocks(panel))``.

    Parameters
    ----------
    panel : pandas.DataFrame
        The leg panel, indexed by decision_ts.
    settings : FeatureSettings, optional
        The staleness limit (default settings when None).
    until : pandas.Timestamp, optional
        Decide from the rows up to ``until`` only (inclusive), e.g. a fold's training end: a block
        whose inputs end or go stale later stays available for the folds trained before that
        (the decision never reads data after ``until``). None reads every row.
    """
    if until is not None:
        panel = panel.loc[np.asarray(panel.index <= pd.Timestamp(until))]
    max_stale = (settings or FeatureSettings()).vix_max_stale_sessions
    out: list[str] = []
    for block in FEATURE_BLOCKS:
        cols = block_columns(block)
        if any(c not in panel.columns for c in cols):
            continue
        if any(pd.to_numeric(panel[c], errors="coerce").isna().all() for c in cols) and len(panel):
            continue
        if block == "vix":
            _, stale = vix_staleness(column_values_vix(panel))
            if np.any(stale > max_stale):
                continue
        out.append(block)
    return tuple(out)


def fold_blocks(
    panel: pd.DataFrame, plan: pd.DataFrame, settings: FeatureSettings | None = None
) -> dict[str, tuple[str, ...]]:
    """Per outer fold of a fold plan, the blocks :func:`available_blocks` allows from the rows up to
    that fold's training end (the last train-proper or validation session of its outer row)."""
    outer = plan[plan["inner"] == -1]
    return {
        str(row["fold"]): available_blocks(panel, settings, until=max(row["train_end"], row["val_end"]))
        for _, row in outer.iterrows()
    }
