"""The Step 3 input contract: every kind of bad input is refused with file, column, row and value."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.inputs.step3 import Step3Data, build_leg_panel, read_step3_dir, write_step3_dir

SYMBOLS = {"qqq": "QQQ", "spy": "SPY"}
N_ROWS = 30


@pytest.fixture
def small_market(make_market: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    return make_market(n_sessions=60, start="2021-03-01", seed=3)


def valid_leg(calendar: pd.DatetimeIndex, symbol: str, first: int = 5, n: int = N_ROWS, seed: int = 1) -> pd.DataFrame:
    """A valid leg frame over ``n`` consecutive calendar sessions from position ``first``."""
    rng = np.random.default_rng(seed)
    q50 = rng.uniform(0.3, 0.7, n)
    return pd.DataFrame(
        {
            "decision_ts": calendar[first : first + n],
            "symbol": symbol,
            "leg_return": rng.normal(0.0, 0.01, n),
            "position": rng.uniform(0.0, 1.0, n),
            "prob_up": rng.uniform(0.0, 1.0, n),
            "prob_q10": q50 - 0.1,
            "prob_q50": q50,
            "prob_q90": q50 + 0.1,
            "step3_fold": np.where(np.arange(n) < n // 2, "2021a", "2021b"),
            "drift_psi": rng.uniform(0.0, 0.5, n),
            "drift_flag": (rng.uniform(0.0, 1.0, n) > 0.7).astype("int64"),
        }
    )


def summary_frame(calendar: pd.DatetimeIndex) -> pd.DataFrame:
    rows = []
    for symbol in SYMBOLS.values():
        for fold in ("2021a", "2021b"):
            rows.append(
                {
                    "step3_fold": fold,
                    "symbol": symbol,
                    "test_start": calendar[5],
                    "test_end": calendar[40],
                    "drift_psi": 0.1,
                    "drift_flag": 0,
                }
            )
    return pd.DataFrame(rows)


def write_raw(
    root: Path, legs: dict[str, pd.DataFrame], summary: pd.DataFrame, events: dict[str, pd.DataFrame] | None = None
) -> Path:
    """Write frames as they are (no validation), the way a user's Step 3 engine might."""
    (root / "backtest").mkdir(parents=True, exist_ok=True)
    (root / "folds").mkdir(parents=True, exist_ok=True)
    for symbol, frame in legs.items():
        frame.to_parquet(root / "backtest" / f"{symbol}.parquet", index=False)
    summary.to_parquet(root / "folds" / "summary.parquet", index=False)
    for symbol, frame in (events or {}).items():
        (root / "events").mkdir(exist_ok=True)
        frame.to_parquet(root / "events" / f"{symbol}.parquet", index=False)
    return root


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def valid_dir(root: Path, calendar: pd.DatetimeIndex) -> Path:
    legs = {"QQQ": valid_leg(calendar, "QQQ", seed=1), "SPY": valid_leg(calendar, "SPY", seed=2)}
    events = {"QQQ": legs["QQQ"].loc[[0, 7], ["decision_ts", "position"]]}
    return write_raw(root, legs, summary_frame(calendar), events)


def test_valid_directory_reads_back(tmp_path: Path, small_market: pd.DataFrame) -> None:
    cal = small_market.index
    root = valid_dir(tmp_path / "step3_out", cal)
    before = tree_digest(root)
    data = read_step3_dir(root, SYMBOLS, cal)
    assert tree_digest(root) == before
    assert data.has_confidence and data.has_drift
    written = pd.read_parquet(root / "backtest" / "QQQ.parquet")
    leg = data.leg("qqq")
    assert str(leg.index.tz) == "UTC" and leg.index.name == "decision_ts"
    assert leg.index.equals(pd.DatetimeIndex(written["decision_ts"]))
    np.testing.assert_array_equal(leg["leg_return"].to_numpy(), written["leg_return"].to_numpy())
    assert leg["drift_flag"].dtype == np.int64
    assert list(data.events) == ["qqq"] and len(data.events["qqq"]) == 2
    assert len(data.summary) == 4
    with pytest.raises(KeyError, match="roles"):
        data.leg("tlt")


def test_reader_accepts_decision_ts_index_and_other_time_zone(tmp_path: Path, small_market: pd.DataFrame) -> None:
    cal = small_market.index
    legs = {"QQQ": valid_leg(cal, "QQQ"), "SPY": valid_leg(cal, "SPY")}
    new_york = legs["QQQ"].assign(decision_ts=legs["QQQ"]["decision_ts"].dt.tz_convert("America/New_York"))
    legs["QQQ"] = new_york.set_index("decision_ts")
    root = tmp_path / "s3"
    write_raw(root, {"SPY": legs["SPY"]}, summary_frame(cal))
    legs["QQQ"].to_parquet(root / "backtest" / "QQQ.parquet")
    data = read_step3_dir(root, SYMBOLS, cal)
    assert data.leg("qqq").index.equals(data.leg("spy").index)
    assert str(data.leg("qqq").index.tz) == "UTC"


Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def _set(column: str, row: int, value: object) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        if isinstance(value, str) and column not in ("symbol", "step3_fold"):
            out[column] = out[column].astype(object)
        out.loc[row, column] = value
        return out

    return mutate


def _swap(i: int, j: int) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        order = list(range(len(frame)))
        order[i], order[j] = order[j], order[i]
        return frame.iloc[order].reset_index(drop=True)

    return mutate


def _retime(row: int, shift: pd.Timedelta) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        ts = out["decision_ts"].copy()
        ts.iloc[row] = ts.iloc[row] + shift
        out["decision_ts"] = ts
        return out

    return mutate


def _duplicate(row: int) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        ts = out["decision_ts"].copy()
        ts.iloc[row] = ts.iloc[row - 1]
        out["decision_ts"] = ts
        return out

    return mutate


def _drop_rows(*rows: int) -> Mutation:
    return lambda frame: frame.drop(index=list(rows)).reset_index(drop=True)


def _naive(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(decision_ts=frame["decision_ts"].dt.tz_localize(None))


def _q10_above_q50(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.loc[4, "prob_q10"] = out.loc[4, "prob_q50"] + 0.05
    return out


def _string_returns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(leg_return=pd.Series(["0.0100"] * len(frame), dtype="str"))


def _integer_folds(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(step3_fold=np.arange(len(frame)))


# (id, mutation of the QQQ leg, column, row, value fragment, problem fragment)
BAD_LEGS = [
    (
        "missing_column",
        lambda f: f.drop(columns="leg_return"),
        "leg_return",
        "header",
        "['decision_ts'",
        "required column missing",
    ),
    (
        "missing_confidence_quantile",
        lambda f: f.drop(columns="prob_q90"),
        "prob_q90",
        "header",
        "['decision_ts'",
        "come together",
    ),
    ("leg_return_as_string", _string_returns, "leg_return", "0", "'0.0100'", "expected float"),
    ("step3_fold_not_str", _integer_folds, "step3_fold", "0", "0", "expected str"),
    ("nan_position", _set("position", 5, np.nan), "position", "5", "nan", "missing value"),
    ("nan_prob", _set("prob_q50", 8, np.nan), "prob_q50", "8", "nan", "missing value"),
    ("infinite_return", _set("leg_return", 3, np.inf), "leg_return", "3", "inf", "not finite"),
    ("duplicate_decision_ts", _duplicate(7), "decision_ts", "7", "'2021-", "duplicate decision_ts"),
    ("unsorted_decision_ts", _swap(7, 8), "decision_ts", "8", "'2021-", "not sorted"),
    ("naive_timestamps", _naive, "decision_ts", "0", "'2021-", "naive"),
    ("not_at_close", _retime(4, pd.Timedelta(hours=1)), "decision_ts", "4", "'2021-", "16:00"),
    (
        "not_a_session",
        _retime(N_ROWS - 1, pd.Timedelta(days=200)),
        "decision_ts",
        str(N_ROWS - 1),
        "'2021-",
        "not a session of the price calendar",
    ),
    ("missing_session", _drop_rows(10, 11), "decision_ts", "10", "'2021-", "missing"),
    ("prob_above_one", _set("prob_up", 3, 1.2), "prob_up", "3", "1.2", "outside [0, 1]"),
    ("prob_below_zero", _set("prob_q10", 2, -0.05), "prob_q10", "2", "-0.05", "outside [0, 1]"),
    ("quantiles_out_of_order", _q10_above_q50, "prob_q50", "4", "0.", "out of order"),
    ("position_above_one", _set("position", 6, 1.5), "position", "6", "1.5", "outside [-1, 1]"),
    ("position_below_minus_one", _set("position", 0, -1.01), "position", "0", "-1.01", "outside [-1, 1]"),
    ("symbol_not_file_name", _set("symbol", 9, "SPY"), "symbol", "9", "'SPY'", "does not match the file name"),
    ("negative_drift_psi", _set("drift_psi", 2, -0.3), "drift_psi", "2", "-0.3", "outside [0, inf]"),
    ("drift_flag_not_binary", _set("drift_flag", 11, 2), "drift_flag", "11", "2.0", "0 or 1"),
    ("fold_without_summary", _set("step3_fold", 12, "2099"), "step3_fold", "12", "'2099'", "no row"),
]


@pytest.mark.parametrize(
    ("mutation", "column", "row", "value", "problem"),
    [case[1:] for case in BAD_LEGS],
    ids=[case[0] for case in BAD_LEGS],
)
def test_bad_leg_is_refused_naming_file_column_row_value(
    tmp_path: Path, small_market: pd.DataFrame, mutation: Mutation, column: str, row: str, value: str, problem: str
) -> None:
    cal = small_market.index
    legs = {"QQQ": mutation(valid_leg(cal, "QQQ")), "SPY": valid_leg(cal, "SPY", seed=2)}
    root = write_raw(tmp_path / "step3_out", legs, summary_frame(cal))
    before = tree_digest(root)
    with pytest.raises(InputDataError) as info:
        read_step3_dir(root, SYMBOLS, cal, require_confidence=False)
    message = str(info.value)
    assert str(root / "backtest" / "QQQ.parquet") in message
    assert f"column {column!r}" in message
    assert f"row {row}, value {value}" in message
    assert problem in message
    assert info.value.column == column
    assert tree_digest(root) == before  # the reader never writes


def test_missing_session_names_the_first_missing_session(tmp_path: Path, small_market: pd.DataFrame) -> None:
    cal = small_market.index
    legs = {"QQQ": _drop_rows(10, 11)(valid_leg(cal, "QQQ")), "SPY": valid_leg(cal, "SPY")}
    root = write_raw(tmp_path / "s3", legs, summary_frame(cal))
    with pytest.raises(InputDataError, match="2 session") as info:
        read_step3_dir(root, SYMBOLS, cal)
    assert info.value.value == str(cal[5 + 10])


def test_missing_confidence_requires_the_block_off(tmp_path: Path, small_market: pd.DataFrame) -> None:
    cal = small_market.index
    conf = ["prob_up", "prob_q10", "prob_q50", "prob_q90"]
    legs = {s: valid_leg(cal, s).drop(columns=conf + ["drift_psi", "drift_flag"]) for s in SYMBOLS.values()}
    root = write_raw(tmp_path / "s3", legs, summary_frame(cal))
    with pytest.raises(InputDataError) as info:
        read_step3_dir(root, SYMBOLS, cal, require_confidence=True)
    message = str(info.value)
    assert "QQQ.parquet" in message and "column 'prob_up'" in message and "row header" in message
    assert "switch the confidence block off" in message
    data = read_step3_dir(root, SYMBOLS, cal, require_confidence=False)
    assert not data.has_confidence and not data.has_drift
    panel = build_leg_panel(data, small_market)
    assert not any("prob" in c or "drift" in c for c in panel.columns)


@pytest.mark.parametrize("missing", ["directory", "backtest", "summary"])
def test_missing_directory_or_file(tmp_path: Path, small_market: pd.DataFrame, missing: str) -> None:
    cal = small_market.index
    root = valid_dir(tmp_path / "s3", cal)
    target = {
        "directory": tmp_path / "nowhere",
        "backtest": root / "backtest" / "SPY.parquet",
        "summary": root / "folds" / "summary.parquet",
    }[missing]
    if missing != "directory":
        target.unlink()
    with pytest.raises(InputDataError, match="not found") as info:
        read_step3_dir(tmp_path / "nowhere" if missing == "directory" else root, SYMBOLS, cal)
    assert info.value.file == str(target)


def test_unreadable_parquet(tmp_path: Path, small_market: pd.DataFrame) -> None:
    root = valid_dir(tmp_path / "s3", small_market.index)
    (root / "backtest" / "SPY.parquet").write_text("decision_ts,symbol\n")
    with pytest.raises(InputDataError, match="not a readable parquet file") as info:
        read_step3_dir(root, SYMBOLS, small_market.index)
    assert info.value.file.endswith("SPY.parquet")


BAD_SUMMARIES = [
    ("missing_column", lambda s: s.drop(columns="drift_psi"), "drift_psi", "header", "required column missing"),
    ("naive_range", lambda s: s.assign(test_start=s["test_start"].dt.tz_localize(None)), "test_start", "0", "naive"),
    ("duplicate_fold", lambda s: pd.concat([s, s.iloc[[1]]], ignore_index=True), "step3_fold", "4", "duplicate"),
    ("negative_psi", lambda s: s.assign(drift_psi=[0.1, -1.0, 0.1, 0.1]), "drift_psi", "1", "outside"),
    ("flag_not_binary", lambda s: s.assign(drift_flag=[0, 0, 3, 0]), "drift_flag", "2", "0 or 1"),
    (
        "range_reversed",
        lambda s: s.assign(test_end=s["test_start"] - pd.Timedelta(days=1)),
        "test_start",
        "0",
        "after test_end",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "column", "row", "problem"), [c[1:] for c in BAD_SUMMARIES], ids=[c[0] for c in BAD_SUMMARIES]
)
def test_bad_summary_is_refused(
    tmp_path: Path, small_market: pd.DataFrame, mutation: Callable, column: str, row: str, problem: str
) -> None:
    cal = small_market.index
    legs = {s: valid_leg(cal, s) for s in SYMBOLS.values()}
    root = write_raw(tmp_path / "s3", legs, mutation(summary_frame(cal)))
    with pytest.raises(InputDataError) as info:
        read_step3_dir(root, SYMBOLS, cal)
    message = str(info.value)
    assert str(root / "folds" / "summary.parquet") in message
    assert f"column {column!r}" in message and f"row {row}" in message and "value " in message
    assert problem in message


def test_bad_events_are_refused(tmp_path: Path, small_market: pd.DataFrame) -> None:
    cal = small_market.index
    legs = {s: valid_leg(cal, s) for s in SYMBOLS.values()}
    events = {"SPY": pd.DataFrame({"decision_ts": cal[5:8].tz_localize(None), "event": ["a", "b", "c"]})}
    root = write_raw(tmp_path / "s3", legs, summary_frame(cal), events)
    with pytest.raises(InputDataError, match="naive") as info:
        read_step3_dir(root, SYMBOLS, cal)
    assert info.value.file.endswith("events/SPY.parquet") and info.value.row == 0


def test_leg_panel_aligns_legs_with_the_market(tmp_path: Path, small_market: pd.DataFrame) -> None:
    cal = small_market.index
    legs = {"QQQ": valid_leg(cal, "QQQ", first=10, n=40), "SPY": valid_leg(cal, "SPY", first=0, n=45)}
    root = write_raw(tmp_path / "s3", legs, summary_frame(cal))
    data = read_step3_dir(root, SYMBOLS, cal)
    panel = build_leg_panel(data, small_market)
    assert panel.index.equals(cal[10:45].rename("decision_ts"))
    expected = [
        "qqq_leg_return",
        "qqq_position",
        "qqq_step3_fold",
        "qqq_prob_up",
        "qqq_prob_q10",
        "qqq_prob_q50",
        "qqq_prob_q90",
        "qqq_drift_psi",
        "qqq_drift_flag",
    ]
    assert list(panel.columns[: len(expected)]) == expected
    assert list(panel.columns[-5:]) == ["qqq_adj_close", "spy_adj_close", "vix", "tbill_yield_pct", "cash_return"]
    np.testing.assert_array_equal(panel["spy_leg_return"].to_numpy(), legs["SPY"]["leg_return"].to_numpy()[10:45])
    np.testing.assert_array_equal(panel["qqq_position"].to_numpy(), legs["QQQ"]["position"].to_numpy()[:35])
    np.testing.assert_array_equal(panel["cash_return"].to_numpy(), small_market["cash_return"].to_numpy()[10:45])
    assert panel["qqq_step3_fold"].iloc[0] == "2021a"


def test_leg_panel_refuses_disjoint_legs(tmp_path: Path, small_market: pd.DataFrame) -> None:
    cal = small_market.index
    legs = {"QQQ": valid_leg(cal, "QQQ", first=0, n=20), "SPY": valid_leg(cal, "SPY", first=25, n=20)}
    data = read_step3_dir(write_raw(tmp_path / "s3", legs, summary_frame(cal)), SYMBOLS, cal)
    with pytest.raises(InputDataError, match="do not overlap") as info:
        build_leg_panel(data, small_market)
    assert str(cal[25]) in str(info.value) and str(cal[19]) in str(info.value)


def test_leg_panel_refuses_misaligned_legs(small_market: pd.DataFrame) -> None:
    cal = small_market.index
    qqq = valid_leg(cal, "QQQ").set_index("decision_ts")
    spy = valid_leg(cal, "SPY").set_index("decision_ts").drop(index=cal[12])  # built without the reader
    data = Step3Data(legs={"qqq": qqq, "spy": spy}, symbols=SYMBOLS, summary=summary_frame(cal))
    with pytest.raises(InputDataError, match="not aligned") as info:
        build_leg_panel(data, small_market)
    assert info.value.row == str(cal[12]) and info.value.value == "QQQ"


def test_leg_panel_refuses_missing_market_prices(tmp_path: Path, small_market: pd.DataFrame) -> None:
    cal = small_market.index
    legs = {s: valid_leg(cal, s) for s in SYMBOLS.values()}
    data = read_step3_dir(write_raw(tmp_path / "s3", legs, summary_frame(cal)), SYMBOLS, cal)
    holed = small_market.copy()
    holed.loc[cal[9], "qqq_adj_close"] = np.nan
    with pytest.raises(InputDataError, match="no market value") as info:
        build_leg_panel(data, holed)
    assert info.value.column == "qqq_adj_close" and info.value.row == str(cal[9])
    # VIX may be missing (stale): the panel keeps the NaN for the feature table's staleness rule
    no_vix = small_market.copy()
    no_vix.loc[cal[9], "vix"] = np.nan
    assert np.isnan(build_leg_panel(data, no_vix).loc[cal[9], "vix"])


def test_writer_validates_before_writing(tmp_path: Path, small_market: pd.DataFrame) -> None:
    cal = small_market.index
    good = valid_leg(cal, "SPY")
    bad = _set("position", 3, 2.0)(valid_leg(cal, "QQQ"))
    out = tmp_path / "out"
    with pytest.raises(InputDataError, match="position"):
        write_step3_dir(out, {"SPY": good, "QQQ": bad}, summary_frame(cal), calendar=cal)
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
    written = write_step3_dir(out, {"SPY": good, "QQQ": valid_leg(cal, "QQQ")}, summary_frame(cal), calendar=cal)
    assert sorted(p.name for p in (written / "backtest").iterdir()) == ["QQQ.parquet", "SPY.parquet"]
    assert not [p for p in written.rglob("*.tmp")]
    data = read_step3_dir(written, SYMBOLS, cal)
    pd.testing.assert_series_equal(
        data.leg("spy")["leg_return"], good.set_index("decision_ts")["leg_return"], check_exact=True
    )
