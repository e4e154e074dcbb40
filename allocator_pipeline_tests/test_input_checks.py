"""The NYSE calendar check of price series, and the Step 3 legs' alignment, plausibility and coverage."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.inputs import (
    alignment_correlations,
    check_alignment,
    check_coverage,
    check_legs,
    check_sessions,
    nyse_sessions,
)
from allocator_pipeline.core.inputs.market import load_embedded
from allocator_pipeline.settings.sections import DataSettings

CLOSURES = [
    "2001-09-11",
    "2001-09-14",
    "2004-06-11",
    "2007-01-02",
    "2012-10-29",
    "2012-10-30",
    "2018-12-05",
    "2025-01-09",
]


@pytest.mark.parametrize("symbol", ["SPY", "QQQ", "VIX"])
def test_the_embedded_data_holds_exactly_the_nyse_sessions(symbol: str):
    embedded = load_embedded()
    sessions = pd.DatetimeIndex(embedded.loc[embedded["symbol"] == symbol, "session"])
    check_sessions(sessions, file="market.parquet")  # raises on a missing or extra date
    assert sessions.equals(nyse_sessions(sessions[0], sessions[-1]).rename(sessions.name))
    closed = pd.DatetimeIndex(CLOSURES)
    assert not closed[(closed >= sessions[0])].isin(sessions).any()


def test_missing_and_extra_dates_are_listed():
    sessions = nyse_sessions(pd.Timestamp("2024-03-01"), pd.Timestamp("2024-04-30"))
    holed = sessions.delete(range(10, 20))
    with pytest.raises(InputDataError, match=r"10 NYSE session\(s\) missing.*2024-03-15, 2024-03-18") as info:
        check_sessions(holed, file="SPY.csv")
    assert (info.value.row, info.value.value, info.value.column) == (10, "2024-03-15", "Date")
    with pytest.raises(InputDataError, match="Good Friday|holiday or an exchange closure") as info:
        check_sessions(sessions.append(pd.DatetimeIndex(["2024-03-29"])).sort_values(), file="SPY.csv")
    assert info.value.value == "2024-03-29"


@pytest.fixture
def legs(synthetic_market: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Legs following the contract: leg_return_t = p_{t-1} r_t - costs, long-biased positions."""
    rng = np.random.default_rng(3)
    out = {}
    for role in ("qqq", "spy"):
        r = synthetic_market[f"{role}_adj_close"].pct_change().fillna(0.0)
        position = pd.Series(np.clip(0.8 + rng.normal(0, 0.15, len(r)), 0, 1), index=r.index)
        cost = position.diff().abs().fillna(0.0).shift(1).fillna(0.0) * 2e-4
        out[role] = pd.DataFrame({"leg_return": position.shift(1).fillna(0.0) * r - cost, "position": position})
    return out


def returns(market: pd.DataFrame, role: str) -> pd.Series:
    return market[f"{role}_adj_close"].pct_change()


def test_a_leg_following_the_contract_is_aligned(legs, synthetic_market):
    corr = alignment_correlations(legs["qqq"], returns(synthetic_market, "qqq"))
    assert corr[0] > 0.95 and abs(corr[1]) < 0.2 and abs(corr[-1]) < 0.2
    check_legs(
        legs,
        {"qqq": "QQQ.parquet", "spy": "SPY.parquet"},
        {"qqq": "QQQ", "spy": "SPY"},
        synthetic_market,
        DataSettings(),
    )


@pytest.mark.parametrize(("shift", "lag"), [(-1, "lag +1"), (1, "lag -1")])
def test_a_shifted_leg_is_refused_naming_the_lag(legs, synthetic_market, shift, lag):
    leg = legs["qqq"].assign(leg_return=legs["qqq"]["leg_return"].shift(shift))
    with pytest.raises(InputDataError, match="explained by the") as info:
        check_alignment(leg, returns(synthetic_market, "qqq"), DataSettings(), file="QQQ.parquet", symbol="QQQ")
    assert info.value.value == lag and info.value.column == "leg_return"


def test_short_passive_flat_and_unrelated_legs_pass(legs, synthetic_market):
    r = returns(synthetic_market, "spy")
    short = pd.DataFrame({"leg_return": -r, "position": -1.0}, index=r.index)  # short, position-weighted
    passive = pd.DataFrame({"leg_return": r, "position": 1.0}, index=r.index)
    flat = pd.DataFrame({"leg_return": 0.0, "position": 0.0}, index=r.index)  # no variance: nothing to say
    noise = pd.DataFrame(
        {"leg_return": np.random.default_rng(5).normal(0, 0.01, len(r)), "position": 1.0}, index=r.index
    )
    for leg in (short, passive, flat, noise):
        check_alignment(leg, r, DataSettings(), file="SPY.parquet", symbol="SPY")
    assert alignment_correlations(short, r)[0] == pytest.approx(1.0)


def test_implausible_returns_and_legs_ending_apart_are_refused(legs, synthetic_market):
    files, symbols = {"qqq": "QQQ.parquet", "spy": "SPY.parquet"}, {"qqq": "QQQ", "spy": "SPY"}
    bad = dict(legs, spy=legs["spy"].assign(leg_return=legs["spy"]["leg_return"].where(np.arange(750) != 42, 5.0)))
    with pytest.raises(InputDataError, match="plausibility bound") as info:
        check_legs(bad, files, symbols, synthetic_market, DataSettings())
    assert (info.value.file, info.value.row, info.value.value) == ("SPY.parquet", 42, 5.0)
    check_legs(bad, files, symbols, synthetic_market, DataSettings(max_abs_leg_return=6))  # a bound is a setting
    with pytest.raises(InputDataError, match="must end on the same session") as info:
        check_coverage(dict(legs, qqq=legs["qqq"].iloc[:-3]), files, symbols)
    assert (info.value.file, info.value.row) == ("QQQ.parquet", 746)


def test_the_calendar_cache_holds_what_the_library_computes_and_is_rebuilt_when_broken(tmp_path, monkeypatch):
    import exchange_calendars

    from allocator_pipeline.core.inputs import calendar

    monkeypatch.setenv("ALLOCATOR_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings():  # exchange_calendars 4.13 uses pandas API that pandas 3.1 deprecates
        warnings.simplefilter("ignore")
        library = exchange_calendars.get_calendar("XNYS", start="2010-01-01", end="2013-12-31").sessions
    expected = pd.DatetimeIndex(library).tz_localize(None) if library.tz is not None else pd.DatetimeIndex(library)
    calendar._sessions.cache_clear()
    first = calendar._sessions(2010, 2013)
    path = calendar.cache_file(2010, 2013)
    assert path.parent == tmp_path / "cache" and path.name.startswith("XNYS-v1-" + exchange_calendars.__version__)
    assert first.equals(expected.as_unit("ns")) and first.freq is None
    assert pd.Timestamp("2012-10-29") not in first and pd.Timestamp("2012-10-31") in first  # hurricane Sandy

    # a new process reads the file: the library is not asked again
    calendar._sessions.cache_clear()
    monkeypatch.setattr(calendar, "_computed", lambda *a: pytest.fail("the cache file was not read"))
    again = calendar._sessions(2010, 2013)
    assert again.equals(first) and again.freq == first.freq and again.dtype == first.dtype
    monkeypatch.undo()
    monkeypatch.setenv("ALLOCATOR_CACHE_DIR", str(tmp_path / "cache"))

    # a truncated, unsorted or foreign file (sorted sessions of other years, times of day, a zip) is
    # computed again and replaced
    foreign = pd.DatetimeIndex(["1970-01-02", "1970-01-05"]).as_unit("ns").asi8
    for broken in (b"not an npy file", first.asi8[::-1], foreign, first.asi8 + 3_600_000_000_000, "zip"):
        if isinstance(broken, bytes):
            path.write_bytes(broken)
        elif isinstance(broken, str):
            with path.open("wb") as fh:
                np.savez(fh, first.asi8)
        else:
            np.save(path, broken, allow_pickle=False)
        calendar._sessions.cache_clear()
        assert calendar._sessions(2010, 2013).equals(first)
        assert np.array_equal(np.load(path), first.asi8)

    # a cache folder that cannot be made: the calendar is still given, nothing left behind
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("ALLOCATOR_CACHE_DIR", str(blocker / "cache"))
    calendar._sessions.cache_clear()
    assert calendar._sessions(2010, 2013).equals(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "file"]
    calendar._sessions.cache_clear()
