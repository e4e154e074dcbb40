"""The embedded market data, users' price files, and the market panel (core/inputs/market.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR
from allocator_pipeline.core.inputs.market import load_prices, market_panel, read_price_file

PANEL_COLUMNS = [
    "spy_adj_close",
    "spy_close",
    "spy_volume",
    "qqq_adj_close",
    "qqq_close",
    "qqq_volume",
    "vix",
    "tbill_yield_pct",
    "cash_return",
]
NEW_SESSIONS = pd.to_datetime(["2025-09-29", "2025-09-30", "2025-10-01"])
NEW_RETURNS = np.array([0.01, -0.005, 0.002])


def series(long: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return long[long["symbol"] == symbol].drop(columns="symbol").reset_index(drop=True)


def write_yahoo(path: Path, frame: pd.DataFrame, symbol: str) -> Path:
    """Yahoo layout A: four header lines, then Date,AdjClose,Close,High,Low,Open,Volume."""
    lines = [
        "Price,Price,Close,High,Low,Open,Volume",
        f"Ticker,{','.join([symbol] * 6)}",
        f"Ticker,{','.join([symbol] * 6)}",
        "Date,,,,,,",
    ]
    for row in frame.itertuples(index=False):
        session = row.session if isinstance(row.session, str) else f"{row.session:%Y-%m-%d} 00:00:00"
        lines.append(
            f"{session},{row.adj_close!r},{row.close!r},{row.close!r},{row.close!r},{row.close!r},{row.volume}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_two_columns(path: Path, sessions: list, values: list, header: str = "date,value") -> Path:
    rows = [f"{s:%Y-%m-%d}" if not isinstance(s, str) else s for s in sessions]
    path.write_text(header + "\n" + "\n".join(f"{s},{v}" for s, v in zip(rows, values)) + "\n")
    return path


def extended(base: pd.DataFrame, factor: float, n_overlap: int = 80) -> pd.DataFrame:
    """The last ``n_overlap`` embedded rows rescaled by ``factor``, plus three new sessions."""
    tail = base.tail(n_overlap).copy()
    tail["adj_close"] *= factor
    tail["close"] *= factor
    last = tail["adj_close"].iloc[-1]
    new_prices = last * np.cumprod(1.0 + NEW_RETURNS)
    new = pd.DataFrame({"session": NEW_SESSIONS, "adj_close": new_prices, "close": new_prices, "volume": 1_000_000.0})
    return pd.concat([tail, new], ignore_index=True)


def test_embedded_ranges(market_long: pd.DataFrame) -> None:
    spans = market_long.groupby("symbol")["session"].agg(["min", "max"])
    assert spans.loc["SPY", "min"] == pd.Timestamp("1993-01-29")
    assert spans.loc["QQQ", "min"] == pd.Timestamp("1999-03-10")
    assert spans.loc["SPY", "max"] == spans.loc["QQQ", "max"] == pd.Timestamp("2025-09-26")
    assert set(spans.index) == {"SPY", "QQQ", "VIX", "IRX"}


def test_embedded_vix_has_no_holiday_rows(market_long: pd.DataFrame) -> None:
    vix = series(market_long, "VIX")
    assert not vix[["adj_close", "close"]].isna().any().any()
    sessions = set(vix["session"])
    for holiday in ("1996-11-28", "1996-12-25", "1997-01-01"):  # all-empty rows in Yahoo's VIX file
        assert pd.Timestamp(holiday) not in sessions
    assert vix["session"].is_monotonic_increasing and vix["session"].is_unique


def test_holiday_rows_are_dropped_and_row_numbers_kept(tmp_path: Path) -> None:
    path = tmp_path / "VIX.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2019-12-31,12,12,12,12.5,12.5,0\n"
        "2020-01-01,,,,,,\n"  # New Year's Day: Yahoo's empty holiday row
        "2020-01-02,13,13,13,13.5,13.5,0\n"
    )
    frame = read_price_file(path)
    assert list(frame["session"]) == [pd.Timestamp("2019-12-31"), pd.Timestamp("2020-01-02")]
    path.write_text(path.read_text().replace("13.5,13.5", "x13,13.5"))
    with pytest.raises(InputDataError) as info:
        read_price_file(path)
    # data row 2 of the file (0-based, header not counted), even though row 1 was dropped
    assert info.value.row == 2 and info.value.value == "x13" and info.value.column == "Close"


def test_irx_is_forward_filled_on_bond_holidays(market: pd.DataFrame, market_long: pd.DataFrame) -> None:
    irx = series(market_long, "IRX").set_index("session")["close"]
    sessions = market.index.tz_convert("America/New_York").tz_localize(None).normalize()
    holidays = sessions[~sessions.isin(irx.index) & (sessions > irx.index[0])]
    assert len(holidays) > 20  # Columbus Day, Veterans Day...: stocks trade, bonds do not
    yields = pd.Series(market["tbill_yield_pct"].to_numpy(), index=sessions)
    for day in holidays:
        assert yields[day] == irx[irx.index < day].iloc[-1]
    y_prev = market["tbill_yield_pct"].shift(1).to_numpy()[1:]
    expected = (1.0 + y_prev / 100.0) ** (1.0 / SESSIONS_PER_YEAR) - 1.0
    np.testing.assert_allclose(market["cash_return"].to_numpy()[1:], expected, rtol=0, atol=1e-15)


def test_decision_ts_is_the_new_york_close_in_utc(market: pd.DataFrame) -> None:
    idx = market.index
    assert idx.name == "decision_ts" and str(idx.tz) == "UTC"
    assert pd.Timestamp("2025-07-01 20:00", tz="UTC") in idx  # EDT: 16:00 = 20:00 UTC
    assert pd.Timestamp("2025-01-02 21:00", tz="UTC") in idx  # EST: 16:00 = 21:00 UTC
    assert pd.Timestamp("2025-07-01 21:00", tz="UTC") not in idx
    local = idx.tz_convert("America/New_York")
    assert (local.hour == 16).all() and (local.minute == 0).all()
    assert idx.is_monotonic_increasing and idx.is_unique


def test_market_panel_has_the_documented_columns(market: pd.DataFrame) -> None:
    assert list(market.columns) == PANEL_COLUMNS
    assert (market.dtypes == np.float64).all()
    assert market.index[0] == pd.Timestamp("1993-01-29 21:00", tz="UTC")
    assert market.index[-1] == pd.Timestamp("2025-09-26 20:00", tz="UTC")
    assert not market["spy_adj_close"].isna().any()
    qqq = market["qqq_adj_close"]
    first_qqq = qqq.first_valid_index()
    assert first_qqq == pd.Timestamp("1999-03-10 21:00", tz="UTC")
    assert not qqq.loc[first_qqq:].isna().any()
    assert not market["tbill_yield_pct"].isna().any() and (market["cash_return"] > -1e-4).all()


def test_user_files_in_both_layouts_merge_and_extend(tmp_path: Path, market_long: pd.DataFrame) -> None:
    qqq, spy = series(market_long, "QQQ"), series(market_long, "SPY")
    prices = tmp_path / "prices"
    prices.mkdir()
    write_yahoo(prices / "QQQ.csv", extended(qqq, factor=1.7), "QQQ")
    spy_user = extended(spy, factor=0.5)
    write_two_columns(prices / "SPY.csv", list(spy_user["session"]), [repr(v) for v in spy_user["adj_close"]])
    long = load_prices(prices, tolerance=1e-4)
    for symbol, base in (("QQQ", qqq), ("SPY", spy)):
        merged = series(long, symbol)
        assert len(merged) == len(base) + 3
        assert list(merged["session"].tail(3)) == list(NEW_SESSIONS)
        # embedded values are kept; new sessions continue the embedded level with the user's returns
        np.testing.assert_array_equal(merged["adj_close"].to_numpy()[: len(base)], base["adj_close"].to_numpy())
        expected = base["adj_close"].iloc[-1] * np.cumprod(1.0 + NEW_RETURNS)
        np.testing.assert_allclose(merged["adj_close"].tail(3).to_numpy(), expected, rtol=1e-12)
    panel = market_panel(long)
    assert panel.index[-1] == pd.Timestamp("2025-10-01 20:00", tz="UTC")
    tail = panel.tail(3)
    assert tail["vix"].isna().all()  # no VIX file given: not filled by the panel
    assert (tail["tbill_yield_pct"] == series(market_long, "IRX")["close"].iloc[-1]).all()
    np.testing.assert_allclose(tail["qqq_adj_close"].pct_change().to_numpy()[1:], NEW_RETURNS[1:], rtol=1e-9)


def test_tampered_file_is_refused_listing_the_date(tmp_path: Path, market_long: pd.DataFrame) -> None:
    user = extended(series(market_long, "QQQ"), factor=1.7)
    tampered_day = user["session"].iloc[40]
    user.loc[40:, "adj_close"] *= 1.01  # one daily return changed by ~1 %
    prices = tmp_path / "prices"
    prices.mkdir()
    path = write_yahoo(prices / "QQQ.csv", user, "QQQ")
    with pytest.raises(InputDataError) as info:
        load_prices(prices, tolerance=1e-4)
    message = str(info.value)
    assert f"{tampered_day:%Y-%m-%d}" in message and "1 overlapping session(s)" in message
    assert info.value.file == str(path) and info.value.column == "adj_close"
    assert info.value.row == f"{tampered_day:%Y-%m-%d}"
    assert info.value.value == pytest.approx(user["adj_close"].iloc[40])


GOOD_ROWS = [("2024-01-02", "100.0"), ("2024-01-03", "101.0"), ("2024-01-04", "99.5"), ("2024-01-05", "100.2")]


def _with(row: int, date: str | None = None, value: str | None = None) -> list[tuple[str, str]]:
    rows = list(GOOD_ROWS)
    d, v = rows[row]
    rows[row] = (date or d, value or v)
    return rows


BAD_FILES = [
    # id, rows, column, row, value, problem
    ("non_numeric", _with(2, value="1O1.5"), "value", 2, "1O1.5", "not a number"),
    ("duplicate_date", _with(2, date="2024-01-03"), "Date", 2, "2024-01-03", "duplicate date"),
    ("unsorted_dates", _with(1, date="2024-01-08"), "Date", 2, "2024-01-04", "not sorted"),
    ("zero_price", _with(3, value="0"), "value", 3, 0.0, "price must be > 0"),
    ("negative_price", _with(1, value="-5.5"), "value", 1, -5.5, "price must be > 0"),
    ("bad_date", _with(0, date="2024-13-45"), "Date", 0, "2024-13-45", "not a date"),
]


@pytest.mark.parametrize(
    ("rows", "column", "row", "value", "problem"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_two_column_file(tmp_path: Path, rows: list, column: str, row: int, value: object, problem: str) -> None:
    path = write_two_columns(tmp_path / "TLT.csv", [r[0] for r in rows], [r[1] for r in rows])
    with pytest.raises(InputDataError) as info:
        read_price_file(path)
    err = info.value
    assert (err.file, err.column, err.row, err.value) == (str(path), column, row, value)
    assert problem in str(err) and str(path) in str(err) and f"row {row}" in str(err)


@pytest.mark.parametrize(
    ("rows", "column", "row", "value", "problem"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_yahoo_file(tmp_path: Path, rows: list, column: str, row: int, value: object, problem: str) -> None:
    frame = pd.DataFrame(
        {
            "session": [f"{d} 00:00:00" for d, _ in rows],
            "adj_close": [v for _, v in rows],
            "close": [v for _, v in rows],
            "volume": 1000,
        }
    )
    path = tmp_path / "QQQ.csv"
    lines = [
        "Price,Price,Close,High,Low,Open,Volume",
        "Ticker,QQQ,QQQ,QQQ,QQQ,QQQ,QQQ",
        "Ticker,QQQ,QQQ,QQQ,QQQ,QQQ,QQQ",
        "Date,,,,,,",
    ]
    lines += [
        f"{r.session},{r.adj_close},{r.close},{r.close},{r.close},{r.close},{r.volume}"
        for r in frame.itertuples(index=False)
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputDataError) as info:
        read_price_file(path)
    err = info.value
    expected_value = f"{value} 00:00:00" if column == "Date" and problem == "not a date" else value
    assert (err.file, err.row, err.value) == (str(path), row, expected_value)
    assert err.column == ("AdjClose" if column == "value" else "Date")
    assert problem in str(err)


def test_user_file_without_overlap_is_refused(tmp_path: Path) -> None:
    prices = tmp_path / "prices"
    prices.mkdir()
    path = write_two_columns(prices / "SPY.csv", ["1980-01-02", "1980-01-03"], ["1.0", "1.1"])
    with pytest.raises(InputDataError, match="no session overlaps") as info:
        load_prices(prices)
    assert info.value.file == str(path)


def test_missing_prices_directory(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="prices directory not found"):
        load_prices(tmp_path / "nowhere")
