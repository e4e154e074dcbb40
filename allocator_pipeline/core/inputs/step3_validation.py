"""Validation rules of the Step 3 input contract (see core/inputs/step3.py for the contract).

Each function checks one kind of Step 3 file held in memory and raises
:class:`InputDataError` on the first problem, naming the file, the column, the row (0-based data
row of the file, or ``"header"`` for a missing column) and the offending value. The same rules
serve the reader (user data, the reference engine's output read back) and the writer (frames
checked before anything is written).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import EXCHANGE_TZ, session_dates

BACKTEST_DIR = "backtest"
FOLDS_SUMMARY = Path("folds") / "summary.parquet"
EVENTS_DIR = "events"
BASE_COLUMNS = ("decision_ts", "symbol", "leg_return", "position", "step3_fold")
CONFIDENCE_COLUMNS = ("prob_up", "prob_q10", "prob_q50", "prob_q90")
DRIFT_COLUMNS = ("drift_psi", "drift_flag")
REQUIRED_COLUMNS = BASE_COLUMNS + CONFIDENCE_COLUMNS
SUMMARY_COLUMNS = ("step3_fold", "symbol", "test_start", "test_end", "drift_psi", "drift_flag")
SUMMARY_TIME_COLUMNS = ("train_start", "train_end", "calibration_start", "calibration_end", "test_start", "test_end")


def first_index(mask: np.ndarray) -> int:
    """Position of the first True of a boolean mask (the caller knows there is one)."""
    return int(np.flatnonzero(mask)[0])


def _plain(value: object) -> object:
    """A numpy scalar as the Python scalar (readable in messages); anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _decision_ts(
    frame: pd.DataFrame, file: Path, column: str = "decision_ts", allow_nat: bool = False
) -> pd.DatetimeIndex:
    """The tz-aware UTC timestamps of ``column``; refuses other dtypes, naive values and NaT."""
    values = frame[column]
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        idx = pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns")
    elif pd.api.types.is_datetime64_dtype(dtype):
        i = first_index(values.notna().to_numpy()) if values.notna().any() else 0
        raise InputDataError(
            "naive (tz-less) timestamps: store tz-aware UTC decision timestamps (the 16:00 "
            f"{EXCHANGE_TZ} close of each session)",
            file=file,
            column=column,
            row=i,
            value=str(values.iloc[i]) if len(values) else None,
        )
    else:
        raise InputDataError(
            f"wrong dtype {dtype}: expected a tz-aware UTC datetime column",
            file=file,
            column=column,
            row=0,
            value=_plain(values.iloc[0]) if len(values) else None,
        )
    nat = idx.isna()
    if nat.any() and not allow_nat:
        raise InputDataError("missing timestamp (NaT)", file=file, column=column, row=first_index(nat), value="NaT")
    return idx


def _float_column(frame: pd.DataFrame, column: str, file: Path, *, allow_nan: bool = False) -> np.ndarray:
    """A real-valued column as float64; refuses strings, booleans, NaN (unless allowed) and inf."""
    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        parsed = pd.to_numeric(values, errors="coerce")
        bad = parsed.isna().to_numpy() & values.notna().to_numpy()
        i = first_index(bad) if bad.any() else 0
        raise InputDataError(
            f"wrong dtype {values.dtype}: expected float",
            file=file,
            column=column,
            row=i,
            value=_plain(values.iloc[i]) if len(values) else None,
        )
    out = values.to_numpy(dtype="float64", na_value=np.nan)
    nan = np.isnan(out)
    if nan.any() and not allow_nan:
        raise InputDataError(
            "missing value (NaN) in a required column",
            file=file,
            column=column,
            row=first_index(nan),
            value=float("nan"),
        )
    inf = np.isinf(out)
    if inf.any():
        raise InputDataError(
            "value is not finite", file=file, column=column, row=first_index(inf), value=float(out[first_index(inf)])
        )
    return out


def _str_column(frame: pd.DataFrame, column: str, file: Path) -> pd.Series:
    values = frame[column]
    if values.isna().any():
        i = first_index(values.isna().to_numpy())
        raise InputDataError(
            "missing value in a required text column",
            file=file,
            column=column,
            row=i,
            value=None if values.iloc[i] is None else str(values.iloc[i]),
        )
    if isinstance(values.dtype, pd.StringDtype):  # every value a str by the dtype (NA refused above)
        return values.astype("str")
    if not pd.api.types.is_string_dtype(values.dtype) or not all(isinstance(v, str) for v in values):
        kinds = np.array([not isinstance(v, str) for v in values])
        i = first_index(kinds) if kinds.any() else 0
        raise InputDataError(
            f"wrong dtype {values.dtype}: expected str",
            file=file,
            column=column,
            row=i,
            value=_plain(values.iloc[i]) if len(values) else None,
        )
    return values.astype("str")


def _range_check(values: np.ndarray, lo: float, hi: float, column: str, file: Path) -> None:
    bad = ~np.isnan(values) & ((values < lo) | (values > hi))
    if bad.any():
        i = first_index(bad)
        raise InputDataError(f"value outside [{lo:g}, {hi:g}]", file=file, column=column, row=i, value=float(values[i]))


def _check_calendar(ts: pd.DatetimeIndex, calendar: pd.DatetimeIndex, file: Path) -> None:
    """Every timestamp is a session close of ``calendar`` and no session is skipped."""
    pos = calendar.get_indexer(ts)
    off = pos < 0
    if off.any():
        i = first_index(off)
        day = session_dates(ts[i : i + 1])[0]
        sessions = session_dates(calendar)
        if day in sessions:
            expected = calendar[sessions.get_loc(day)]
            problem = f"not at the 16:00 {EXCHANGE_TZ} close of session {day.date()} (expected {expected})"
        else:
            problem = (
                f"not a session of the price calendar ({calendar[0]} .. {calendar[-1]}); "
                "extend the price data or drop the row"
            )
        raise InputDataError(problem, file=file, column="decision_ts", row=i, value=str(ts[i]))
    gaps = np.diff(pos) > 1
    if gaps.any():
        i = first_index(gaps) + 1
        missing = calendar[pos[i - 1] + 1]
        n_missing = int((np.diff(pos) - 1).sum())
        raise InputDataError(
            f"session {missing} of the price calendar is missing before this row "
            f"({n_missing} session(s) missing in all; every session between the first and the last "
            "row must be present)",
            file=file,
            column="decision_ts",
            row=i,
            value=str(missing),
        )


def _flag_column(frame: pd.DataFrame, file: Path) -> np.ndarray:
    """``drift_flag`` as int64 0/1; raises naming the first row that is neither."""
    flag = _float_column(frame, "drift_flag", file)
    bad = (flag != 0.0) & (flag != 1.0)
    if bad.any():
        i = first_index(bad)
        raise InputDataError("drift_flag must be 0 or 1", file=file, column="drift_flag", row=i, value=float(flag[i]))
    return flag.astype("int64")


def require_columns(frame: pd.DataFrame, columns: Sequence[str], file: Path) -> None:
    """Raise naming the first missing column (row "header", value: the columns present)."""
    for column in columns:
        if column not in frame.columns:
            raise InputDataError(
                "required column missing", file=file, column=column, row="header", value=[str(c) for c in frame.columns]
            )


def validate_leg_frame(
    frame: pd.DataFrame,
    *,
    file: str | Path,
    symbol: str,
    calendar: pd.DatetimeIndex | None = None,
    require_confidence: bool = True,
) -> pd.DataFrame:
    """Validate one leg's rows (the ``backtest/<SYMBOL>.parquet`` contract) and normalise them.

    Parameters
    ----------
    frame : DataFrame
        The rows as stored; ``decision_ts`` is a column or the index.
    file : path
        Named in error messages.
    symbol : str
        The symbol of the file name; the ``symbol`` column must equal it.
    calendar : DatetimeIndex, optional
        The price calendar's decision timestamps (UTC). When given, every row must be at a
        session close of it and no session may be skipped between the first and last row.
    require_confidence : bool
        Refuse a leg without the confidence columns (the confidence feature block needs them).

    Returns
    -------
    DataFrame
        Indexed by ``decision_ts`` (UTC, ns), required columns float64 / str, ``drift_flag``
        int64, optional columns kept.

    Raises
    ------
    InputDataError
        On the first problem, naming file, column, row (0-based data row) and value.
    """
    file = Path(file)
    if "decision_ts" not in frame.columns and frame.index.name == "decision_ts":
        frame = frame.reset_index()
    else:
        frame = frame.reset_index(drop=True)
    require_columns(frame, BASE_COLUMNS, file)
    n_conf = sum(c in frame.columns for c in CONFIDENCE_COLUMNS)
    if 0 < n_conf < len(CONFIDENCE_COLUMNS) or (n_conf == 0 and require_confidence):
        column = next(c for c in CONFIDENCE_COLUMNS if c not in frame.columns)
        hint = (
            " Without confidence columns, switch the confidence block off (remove 'confidence' "
            "from features.blocks, which reads the legs with require_confidence=False)."
            if n_conf == 0
            else " The four confidence columns come together."
        )
        raise InputDataError(
            "required column missing." + hint,
            file=file,
            column=column,
            row="header",
            value=[str(c) for c in frame.columns],
        )
    if frame.empty:
        raise InputDataError("no rows", file=file, column="decision_ts", row=0, value=None)

    ts = _decision_ts(frame, file)
    out = frame.drop(columns="decision_ts")
    out.index = ts.rename("decision_ts")
    names = _str_column(frame, "symbol", file)
    wrong = (names != symbol).to_numpy()
    if wrong.any():
        i = first_index(wrong)
        raise InputDataError(
            f"symbol does not match the file name ({symbol})", file=file, column="symbol", row=i, value=names.iloc[i]
        )
    out["symbol"] = names.to_numpy()
    out["step3_fold"] = _str_column(frame, "step3_fold", file).to_numpy()
    numeric = ["leg_return", "position"] + list(CONFIDENCE_COLUMNS if n_conf else ())
    values = {c: _float_column(frame, c, file) for c in numeric}

    step = np.diff(ts.asi8)
    if (step <= 0).any():
        i = first_index(step <= 0) + 1
        problem = "duplicate decision_ts" if step[i - 1] == 0 else "decision_ts not sorted ascending"
        raise InputDataError(problem, file=file, column="decision_ts", row=i, value=str(ts[i]))
    if calendar is not None:
        _check_calendar(ts, pd.DatetimeIndex(calendar).tz_convert("UTC").as_unit("ns"), file)

    _range_check(values["position"], -1.0, 1.0, "position", file)
    if n_conf:
        for column in CONFIDENCE_COLUMNS:
            _range_check(values[column], 0.0, 1.0, column, file)
        for lo, hi in (("prob_q10", "prob_q50"), ("prob_q50", "prob_q90")):
            bad = values[lo] > values[hi]
            if bad.any():
                i = first_index(bad)
                raise InputDataError(
                    f"quantiles out of order: {lo} = {values[lo][i]!r} > {hi}",
                    file=file,
                    column=hi,
                    row=i,
                    value=float(values[hi][i]),
                )
    for column, vals in values.items():
        out[column] = vals
    if "drift_psi" in frame.columns:
        psi = _float_column(frame, "drift_psi", file, allow_nan=True)
        _range_check(psi, 0.0, np.inf, "drift_psi", file)
        out["drift_psi"] = psi
    if "drift_flag" in frame.columns:
        if pd.api.types.is_bool_dtype(frame["drift_flag"].dtype):  # True/False is a fine 0/1 flag
            frame = frame.assign(drift_flag=frame["drift_flag"].astype("int64"))
        out["drift_flag"] = _flag_column(frame, file)
    return out


def validate_summary(frame: pd.DataFrame, file: str | Path) -> pd.DataFrame:
    """Validate ``folds/summary.parquet`` (schema, one row per fold and symbol, ranges, drift)."""
    file = Path(file)
    frame = frame.reset_index(drop=True)
    require_columns(frame, SUMMARY_COLUMNS, file)
    out = frame.copy()
    out["step3_fold"] = _str_column(frame, "step3_fold", file).to_numpy()
    out["symbol"] = _str_column(frame, "symbol", file).to_numpy()
    for column in SUMMARY_TIME_COLUMNS:
        if column in frame.columns:
            out[column] = _decision_ts(frame, file, column, allow_nat=not column.startswith("test"))
    bad = (out["test_start"] > out["test_end"]).to_numpy()
    if bad.any():
        i = first_index(bad)
        raise InputDataError(
            "test_start after test_end", file=file, column="test_start", row=i, value=str(out["test_start"].iloc[i])
        )
    dup = out.duplicated(["step3_fold", "symbol"]).to_numpy()
    if dup.any():
        i = first_index(dup)
        raise InputDataError(
            "duplicate (step3_fold, symbol) row", file=file, column="step3_fold", row=i, value=out["step3_fold"].iloc[i]
        )
    psi = _float_column(frame, "drift_psi", file, allow_nan=True)
    _range_check(psi, 0.0, np.inf, "drift_psi", file)
    out["drift_psi"] = psi
    out["drift_flag"] = _flag_column(frame, file)
    return out


def validate_events(frame: pd.DataFrame, file: str | Path) -> pd.DataFrame:
    """Validate ``events/<SYMBOL>.parquet``: a ``decision_ts`` column (tz-aware, no NaT) + anything."""
    file = Path(file)
    if "decision_ts" not in frame.columns and frame.index.name == "decision_ts":
        frame = frame.reset_index()
    frame = frame.reset_index(drop=True)
    if "decision_ts" not in frame.columns:
        raise InputDataError(
            "required column missing",
            file=file,
            column="decision_ts",
            row="header",
            value=[str(c) for c in frame.columns],
        )
    out = frame.copy()
    out["decision_ts"] = _decision_ts(frame, file)
    return out
