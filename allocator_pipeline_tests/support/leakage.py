"""The harness of the no-forward-leakage proof (docs/design.md section 3).

The proof: change every input after a date ``D`` (:func:`perturb_after`), recompute, and check
that every output that may only use data up to ``D`` (features up to ``D``, labels up to ``D - H``
sessions, fold plans and predictions of folds whose test window ends before ``D``) is bit-for-bit
unchanged (:func:`compare_up_to`). Both functions are generic over DataFrames indexed by time,
so the same harness serves the features, the labels, the Step 3 engine and model predictions.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

MAX_REPORTED_ROWS = 5


def _time_index(frame: pd.DataFrame, what: str) -> pd.DatetimeIndex:
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise TypeError(f"{what} must be indexed by timestamps (decision_ts), got {type(frame.index).__name__}")
    return frame.index


BEYOND_EVERY = 3
"""Every third perturbed value of a float column is moved beyond the column's full-sample range."""
DROP_EVERY = 7
"""With ``flip_missing``, every seventh present value after the cutoff (between present ones) goes missing."""


def _perturb_numeric(values: np.ndarray, after: np.ndarray, rng: np.random.Generator, beyond_range: bool) -> np.ndarray:
    """``values`` with every finite value on the ``after`` rows changed: inside the column's observed
    range (over all rows), and with ``beyond_range`` every :data:`BEYOND_EVERY`-th one above it."""
    finite = np.isfinite(values)
    lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 1.0)
    span = hi - lo
    distinct = np.unique(values[finite])
    target = after & finite
    out = values.copy()
    old = values[target]
    if len(distinct) == 2 and np.all(distinct == np.round(distinct)):
        out[target] = np.where(old == lo, hi, lo)  # a flag-like column (e.g. drift_flag 0/1): flip
        return out
    scale = span if span > 0 else max(abs(lo), 1.0)
    new = old * rng.uniform(0.5, 1.5, size=old.shape) + rng.normal(0.0, 0.1 * scale, size=old.shape)
    if span > 0:
        new = np.clip(new, lo, hi)
    same = new == old
    if same.any():  # e.g. clipped back onto itself: move half way towards the middle of the range
        if span > 0:
            middle = 0.5 * (lo + hi)
            aim = np.where(old[same] == middle, lo + 0.25 * span, middle)
            new[same] = old[same] + 0.5 * (aim - old[same])
        else:
            new[same] = old[same] + scale
    if beyond_range and len(new):
        # above the maximum (never below the minimum: prices stay > 0, returns > -1): a statistic
        # of the whole sample (a full-sample min-max or z-score normalisation) changes before D
        beyond = np.arange(len(new)) % BEYOND_EVERY == BEYOND_EVERY - 1
        new[beyond] = hi + rng.uniform(0.05, 0.5, size=int(beyond.sum())) * scale
    out[target] = new
    return out


def _flip_missing(values: np.ndarray, original: np.ndarray, after: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Missing values after the cutoff get a value from the column's range; every
    :data:`DROP_EVERY`-th present one whose neighbours are present (in ``original``) goes missing,
    so no gap grows longer than one session."""
    out = values.copy()
    finite = np.isfinite(original)
    lo, hi = (float(original[finite].min()), float(original[finite].max())) if finite.any() else (0.0, 1.0)
    fill = after & ~finite
    out[fill] = rng.uniform(lo, hi if hi > lo else lo + 1.0, size=int(fill.sum()))
    inside = np.zeros(len(original), dtype=bool)
    inside[1:-1] = finite[:-2] & finite[2:]
    candidates = np.flatnonzero(after & finite & inside)
    out[candidates[DROP_EVERY - 1 :: DROP_EVERY]] = np.nan
    return out


def perturb_after(
    frame: pd.DataFrame,
    cutoff: pd.Timestamp,
    seed: int = 0,
    *,
    beyond_range: bool = True,
    flip_missing: Collection[str] = (),
) -> pd.DataFrame:
    """A copy of ``frame`` with every numeric value on rows strictly after ``cutoff`` changed.

    Float columns: ``x * U(0.5, 1.5) + N(0, 0.1 * range)``, clipped to the column's observed
    range over the whole frame (so probabilities mostly stay in [0, 1], prices stay positive,
    positions stay in their bounds; a constant column moves outside its single value); a value that
    would not change is moved towards the middle of the range. With ``beyond_range`` (default),
    every :data:`BEYOND_EVERY`-th perturbed value is then set above the column's full-sample
    maximum, so a statistic of the whole sample (a min-max or z-score normalisation, a quantile)
    that leaks into the rows up to ``cutoff`` is seen.
    Flag-like columns (two integer values, e.g. ``drift_flag``) switch to the other value. Integer
    columns add a nonzero integer; boolean columns flip. NaN stays NaN, except in the
    ``flip_missing`` columns (those whose contract allows gaps, e.g. ``vix``): there missing values
    after the cutoff get a value and every :data:`DROP_EVERY`-th present value between two present
    ones goes missing, so a rule decided from the missingness of the whole sample is seen.
    Non-numeric columns and the index are kept. Rows on or before ``cutoff`` are untouched.
    Deterministic for a given ``seed``.
    """
    index = _time_index(frame, "frame")
    unknown = sorted(set(flip_missing) - set(frame.columns))
    if unknown:
        raise KeyError(f"flip_missing names columns not in the frame: {unknown}")
    cutoff = pd.Timestamp(cutoff)
    after = np.asarray(index > cutoff)
    out = frame.copy()
    if not after.any():
        return out
    rng = np.random.default_rng(seed)
    for column in frame.columns:
        series = frame[column]
        if ptypes.is_bool_dtype(series.dtype):
            values = series.to_numpy(copy=True)
            values[after] = ~values[after].astype(bool)
            out[column] = pd.Series(values, index=index, dtype=series.dtype)
        elif ptypes.is_integer_dtype(series.dtype):
            values = series.astype("Int64").to_numpy(dtype=object, na_value=pd.NA).copy()
            steps = rng.integers(1, 4, size=int(after.sum()))
            picked = values[after]
            values[after] = [v if v is pd.NA else int(v) + int(s) for v, s in zip(picked, steps)]
            out[column] = pd.Series(values, index=index).astype(series.dtype)
        elif ptypes.is_float_dtype(series.dtype):
            original = series.to_numpy(dtype=np.float64)
            values = _perturb_numeric(original, after, rng, beyond_range)
            if column in flip_missing:
                values = _flip_missing(values, original, after, rng)
            out[column] = pd.Series(values, index=index, dtype=series.dtype)
    return out


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise bit-for-bit equality, with missing == missing."""
    if ptypes.is_float_dtype(a.dtype) and ptypes.is_float_dtype(b.dtype):
        x = a.to_numpy(dtype=np.float64)
        y = b.to_numpy(dtype=np.float64)
        both_nan = np.isnan(x) & np.isnan(y)
        return both_nan | (x.view(np.int64) == y.view(np.int64))
    x = a.to_numpy(dtype=object)
    y = b.to_numpy(dtype=object)
    missing_x = pd.isna(a).to_numpy()
    missing_y = pd.isna(b).to_numpy()
    equal = np.array(
        [bool(u == v) if not (mx or my) else False for u, v, mx, my in zip(x, y, missing_x, missing_y)], dtype=bool
    )
    return (missing_x & missing_y) | equal


def _show(value: object) -> str:
    """A value for a message: numpy scalars as Python ones; floats in their shortest exact form."""
    item = value.item() if isinstance(value, np.generic) else value
    return repr(item)


def compare_up_to(before: pd.DataFrame, after: pd.DataFrame, until: pd.Timestamp | None) -> list[str]:
    """Every difference between two frames on rows ``<= until``, bit for bit (NaN == NaN).

    Parameters
    ----------
    before, after : pandas.DataFrame
        The outputs computed from the original and from the perturbed inputs.
    until : pandas.Timestamp or None
        Last row (by the time index) that must be identical; None compares every row (use it for
        frames without a time index, e.g. the fold-plan rows of folds ending before ``D``).

    Returns
    -------
    list of str
        One message per differing column (with the number of rows, the first few row keys and
        values), plus any difference of columns, dtypes or row keys; empty when identical.
    """
    problems: list[str] = []
    if until is not None:
        until = pd.Timestamp(until)
        before = before.loc[np.asarray(_time_index(before, "before") <= until)]
        after = after.loc[np.asarray(_time_index(after, "after") <= until)]
    if list(before.columns) != list(after.columns):
        only_b = [c for c in before.columns if c not in after.columns]
        only_a = [c for c in after.columns if c not in before.columns]
        problems.append(
            f"columns differ: only before {only_b}, only after {only_a}" + ("" if only_a or only_b else " (order)")
        )
    if not before.index.equals(after.index):
        problems.append(
            f"rows differ: {len(before)} rows before, {len(after)} rows after"
            + (f" up to {until}" if until is not None else "")
        )
        return problems
    for column in (c for c in before.columns if c in after.columns):
        a, b = before[column], after[column]
        if a.dtype != b.dtype:
            problems.append(f"column {column!r}: dtype {a.dtype} before, {b.dtype} after")
            continue
        differ = ~_same(a, b)
        if differ.any():
            rows = np.flatnonzero(differ)[:MAX_REPORTED_ROWS]
            shown = ", ".join(f"{before.index[i]}: {_show(a.iloc[i])} -> {_show(b.iloc[i])}" for i in rows)
            problems.append(f"column {column!r}: {int(differ.sum())} row(s) differ (first: {shown})")
    return problems
