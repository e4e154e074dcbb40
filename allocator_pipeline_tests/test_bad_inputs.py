"""A battery of bad inputs, as a new user would produce them: each is refused before any run with
exit code 2, the last line of the output names what is wrong (file, column, row and value where
they apply), and not one byte of the home changes (every file hashed before and after).

One home is built once (quick profile, the passive engine's legs as a user Step 3 directory inside
the home, folds 2024..2025); each case works on a copy of it. Validation only: nothing is fitted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from allocator_pipeline import cli
from allocator_pipeline.core.inputs import load_prices, market_panel, run_reference_engine
from allocator_pipeline.settings import load_settings
from allocator_pipeline_tests.support.homes import QUICK_PASSIVE_TOML

TOML = QUICK_PASSIVE_TOML
STEP3 = "user_step3"
EXTENSION = ["2025-09-29", "2025-09-30", "2025-10-01", "2025-10-02", "2025-10-03"]


def invoke(home: Path, *args: str):
    env = {"DAGSTER_HOME": str(home / ".dagster_home"), "ALLOCATOR_HOME": "", "ALLOCATOR_PRICES": ""}
    env |= {"ALLOCATOR_STEP3": "", "ALLOCATOR_PROFILE": "", "ALLOCATOR_CONFIG": ""}
    return CliRunner().invoke(cli.main, ["--home", str(home), *args], env=env, catch_exceptions=False)


def home_digest(home: Path) -> dict[str, str]:
    """sha256 of every file under the home (the Dagster instance included)."""
    return {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def built_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("built")
    (home / "allocator.toml").write_text(TOML)
    settings = load_settings(home=home, environ={})
    run_reference_engine(market_panel(load_prices(None)), settings, home / STEP3)
    result = invoke(home, "--step3", str(home / STEP3), "build-dataset")
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def home(built_home: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(built_home, copy)
    return copy


# --- price files --------------------------------------------------------------------------------


def embedded_tail(symbol: str, n: int = 60) -> pd.DataFrame:
    long = load_prices(None)
    return long[long["symbol"] == symbol].tail(n)[["session", "adj_close"]].reset_index(drop=True)


def write_prices(home: Path, symbol: str, rows: list[tuple[str, str]], header: str = "date,adj_close") -> list[str]:
    prices = home / "prices"
    prices.mkdir(exist_ok=True)
    text = header + "\n" + "".join(f"{d},{v}\n" for d, v in rows)
    (prices / f"{symbol}.csv").write_text(text)
    return ["--prices", str(prices), "build-dataset"]


def good_rows(symbol: str = "SPY", extension: bool = True) -> list[tuple[str, str]]:
    tail = embedded_tail(symbol)
    rows = [(f"{d:%Y-%m-%d}", repr(float(v))) for d, v in zip(tail["session"], tail["adj_close"])]
    last = float(tail["adj_close"].iloc[-1])
    if extension:
        rows += [(d, repr(last * (1.0 + 0.001 * (i + 1)))) for i, d in enumerate(EXTENSION)]
    return rows


def replaced(rows: list[tuple[str, str]], i: int, date: str | None = None, value: str | None = None) -> list:
    rows = list(rows)
    rows[i] = (date or rows[i][0], value or rows[i][1])
    return rows


def extension_sessions(n: int) -> list[str]:
    return [f"{d:%Y-%m-%d}" for d in pd.bdate_range("2025-09-29", periods=n)]


PRICE_CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "price_not_a_date": (
        lambda h: write_prices(h, "SPY", replaced(good_rows(), 3, date="2025-13-45")),
        ["SPY.csv", "column 'Date'", "row 3", "'2025-13-45'", "not a date"],
    ),
    "price_not_a_number": (
        lambda h: write_prices(h, "SPY", replaced(good_rows(), 5, value="12.5x")),
        ["SPY.csv", "row 5", "not a number"],
    ),
    "price_duplicate_date": (
        lambda h: write_prices(h, "SPY", replaced(good_rows(), 6, date=good_rows()[5][0])),
        ["SPY.csv", "column 'Date'", "row 6", "duplicate date"],
    ),
    "price_unsorted": (
        lambda h: write_prices(h, "SPY", [*good_rows()[:10], good_rows()[11], good_rows()[10], *good_rows()[12:]]),
        ["SPY.csv", "column 'Date'", "row 11", "not sorted"],
    ),
    "price_not_positive": (
        lambda h: write_prices(h, "SPY", replaced(good_rows(), 7, value="-3.5")),
        ["SPY.csv", "column 'adj_close'", "row 7", "value -3.5", "> 0"],
    ),
    "price_disagrees_with_embedded": (
        lambda h: write_prices(h, "SPY", replaced(good_rows(), 20, value=repr(float(good_rows()[20][1]) * 1.05))),
        ["SPY.csv", "column 'adj_close'", f"row {good_rows()[20][0]}", "value", "differs from the embedded data"],
    ),
    "price_no_overlap": (
        lambda h: write_prices(h, "SPY", [("1985-01-02", "1.0"), ("1985-01-03", "1.1")]),
        ["SPY.csv", "no session overlaps"],
    ),
    "price_unknown_layout": (
        lambda h: write_prices(h, "SPY", [("2025-09-26", "1,2")], header="date,open,close"),
        ["SPY.csv", "column", "unknown layout"],
    ),
    "price_no_date_column": (
        lambda h: write_prices(h, "SPY", [("2025-09-26", "1")], header="day,adj_close"),
        ["SPY.csv", "no 'date' column"],
    ),
    "price_no_rows": (lambda h: write_prices(h, "SPY", []), ["SPY.csv", "no data rows"]),
    "price_hole_in_overlap": (
        lambda h: write_prices(h, "SPY", good_rows()[:20] + good_rows()[30:]),
        ["SPY.csv", "column 'Date'", "row 20", f"value '{good_rows()[20][0]}'", "10 NYSE session(s) missing"],
    ),
    "price_hole_in_extension": (
        lambda h: write_prices(
            h,
            "SPY",
            good_rows(extension=False)
            + [(d, repr(700.0 + i)) for i, d in enumerate(extension_sessions(20)) if not 2 <= i < 12],
        ),
        ["SPY.csv", "column 'Date'", "row 62", "value '2025-10-01'", "10 NYSE session(s) missing"],
    ),
    "price_saturday_row": (
        lambda h: write_prices(h, "SPY", [*good_rows(), ("2025-10-04", "700.0")]),
        ["SPY.csv", "column 'Date'", "row 65", "value '2025-10-04'", "Saturday", "not an NYSE session"],
    ),
    "price_holiday_row": (
        lambda h: write_prices(
            h,
            "SPY",
            [r for r in good_rows() if r[0] < "2025-07-07"]
            + [("2025-07-04", "620.0")]
            + [r for r in good_rows() if r[0] >= "2025-07-07"],
        ),
        ["SPY.csv", "column 'Date'", "value '2025-07-04'", "holiday"],
    ),
    "price_qqq_hole": (
        lambda h: write_prices(h, "QQQ", good_rows("QQQ")[:40] + good_rows("QQQ")[43:]),
        ["QQQ.csv", "column 'Date'", "row 40", "3 NYSE session(s) missing"],
    ),
    "price_yahoo_layout_bad_close": (
        lambda h: (
            (h / "prices").mkdir(),
            (h / "prices" / "SPY.csv").write_text(
                "Price,Adj Close,Close,High,Low,Open,Volume\nTicker,SPY,SPY,SPY,SPY,SPY,SPY\n"
                "Ticker,SPY,SPY,SPY,SPY,SPY,SPY\nDate,,,,,,\n"
                "2025-09-25,650.1,650.1,651,649,650,1000\n2025-09-26,abc,655.0,656,654,655,1000\n"
            ),
            ["--prices", str(h / "prices"), "build-dataset"],
        )[-1],
        ["SPY.csv", "column 'AdjClose'", "row 1", "value 'abc'", "not a number"],
    ),
    "price_directory_without_files": (
        lambda h: ((h / "prices").mkdir(), ["--prices", str(h / "prices"), "build-dataset"])[-1],
        ["prices", "no <SYMBOL>.csv files"],
    ),
}


# --- Step 3 directories -------------------------------------------------------------------------


def step3_copy(home: Path) -> Path:
    bad = home / "bad_step3"
    shutil.copytree(home / STEP3, bad)
    return bad


def with_leg(symbol: str, change: Callable[[pd.DataFrame], pd.DataFrame], command: str = "build-dataset"):
    def apply(home: Path) -> list[str]:
        bad = step3_copy(home)
        path = bad / "backtest" / f"{symbol}.parquet"
        change(pd.read_parquet(path)).to_parquet(path, index=False)
        return ["--step3", str(bad), command]

    return apply


def with_file(relative: str, write: Callable[[Path], None]):
    def apply(home: Path) -> list[str]:
        bad = step3_copy(home)
        write(bad / relative)
        return ["--step3", str(bad), "build-dataset"]

    return apply


def set_value(column: str, row: int, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[row, column] = value
        return frame

    return change


def shift_leg(periods: int, from_row: int = 0) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        shifted = frame["leg_return"].shift(-periods).fillna(0.0)
        frame.loc[from_row:, "leg_return"] = shifted.loc[from_row:]
        return frame

    return change


def last_year_row(frame: pd.DataFrame) -> int:
    return int(np.flatnonzero(frame["decision_ts"].dt.year.to_numpy() == 2025)[0])


STEP3_CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "step3_missing_file": (
        with_file("backtest/QQQ.parquet", lambda p: p.unlink()),
        ["QQQ.parquet", "Step 3 file not found"],
    ),
    "step3_missing_column": (
        with_leg("QQQ", lambda f: f.drop(columns="leg_return")),
        ["QQQ.parquet", "column 'leg_return'", "row header", "required column missing"],
    ),
    "step3_wrong_dtype": (
        with_leg("SPY", lambda f: f.assign(leg_return=f["leg_return"].map(lambda v: f"{v:.4f}"))),
        ["SPY.parquet", "column 'leg_return'", "row 0", "value '", "expected float"],
    ),
    "step3_nan": (
        with_leg("SPY", set_value("leg_return", 100, np.nan)),
        ["SPY.parquet", "column 'leg_return'", "row 100", "value nan", "NaN"],
    ),
    "step3_inf_position": (
        with_leg("QQQ", set_value("position", 50, np.inf)),
        ["QQQ.parquet", "column 'position'", "row 50", "value inf", "not finite"],
    ),
    "step3_duplicate_ts": (
        with_leg("QQQ", lambda f: f.assign(decision_ts=f["decision_ts"].where(f.index != 30, f["decision_ts"][29]))),
        ["QQQ.parquet", "column 'decision_ts'", "row 30", "value '", "duplicate decision_ts"],
    ),
    "step3_unsorted_ts": (
        with_leg("QQQ", lambda f: f.iloc[[*range(40), 41, 40, *range(42, len(f))]].reset_index(drop=True)),
        ["QQQ.parquet", "column 'decision_ts'", "row 41", "not sorted"],
    ),
    "step3_naive_ts": (
        with_leg("SPY", lambda f: f.assign(decision_ts=f["decision_ts"].dt.tz_localize(None))),
        ["SPY.parquet", "column 'decision_ts'", "row 0", "value '", "naive"],
    ),
    "step3_not_at_close": (
        with_leg(
            "SPY",
            lambda f: f.assign(
                decision_ts=f["decision_ts"].where(f.index != 70, f["decision_ts"][70] - pd.Timedelta(hours=1))
            ),
        ),
        ["SPY.parquet", "column 'decision_ts'", "row 70", "value '", "16:00"],
    ),
    "step3_weekend_ts": (
        with_leg(
            "SPY",
            lambda f: f.assign(
                decision_ts=f["decision_ts"].where(f.index != len(f) - 1, pd.Timestamp("2025-09-27 20:00", tz="UTC"))
            ),
        ),
        ["SPY.parquet", "column 'decision_ts'", "value '2025-09-27 20:00:00+00:00'", "not a session"],
    ),
    "step3_skipped_session": (
        with_leg("QQQ", lambda f: f.drop(index=200).reset_index(drop=True)),
        ["QQQ.parquet", "column 'decision_ts'", "row 200", "value '", "missing"],
    ),
    "step3_position_out_of_range": (
        with_leg("QQQ", set_value("position", 12, 1.5)),
        ["QQQ.parquet", "column 'position'", "row 12", "value 1.5", "outside [-1, 1]"],
    ),
    "step3_symbol_mismatch": (
        with_leg("QQQ", set_value("symbol", 3, "QQQM")),
        ["QQQ.parquet", "column 'symbol'", "row 3", "value 'QQQM'", "does not match"],
    ),
    "step3_unknown_fold": (
        with_leg("SPY", set_value("step3_fold", 9, "1901")),
        ["SPY.parquet", "column 'step3_fold'", "row 9", "value '1901'", "summary.parquet"],
    ),
    "step3_partial_confidence": (
        with_leg("QQQ", lambda f: f.assign(prob_up=0.5)),
        ["QQQ.parquet", "column 'prob_q10'", "row header", "four confidence columns"],
    ),
    "step3_corrupt_parquet": (
        with_file("backtest/SPY.parquet", lambda p: p.write_bytes(b"PAR1 this is not parquet")),
        ["SPY.parquet", "not a readable parquet file"],
    ),
    "step3_summary_missing_column": (
        with_file("folds/summary.parquet", lambda p: pd.read_parquet(p).drop(columns="drift_psi").to_parquet(p)),
        ["summary.parquet", "column 'drift_psi'", "row header", "required column missing"],
    ),
    "step3_directory_missing": (
        lambda h: ["--step3", str(h / "nowhere"), "build-dataset"],
        ["--step3", "nowhere", "does not exist"],
    ),
    # (a) alignment
    "step3_leg_shifted_ahead": (
        with_leg("QQQ", shift_leg(1)),
        ["QQQ.parquet", "column 'leg_return'", "row 0", "value 'lag +1'", "NEXT session"],
    ),
    "step3_leg_shifted_late": (
        with_leg("SPY", shift_leg(-1)),
        ["SPY.parquet", "column 'leg_return'", "row 0", "value 'lag -1'", "PREVIOUS session"],
    ),
    "step3_leg_shifted_in_last_year_only": (
        lambda h: with_leg("QQQ", lambda f: shift_leg(1, last_year_row(f))(f))(h),
        ["QQQ.parquet", "column 'leg_return'", "value 'lag +1'", "year 2025"],
    ),
    # (b) plausibility
    "step3_leg_return_50": (
        with_leg("QQQ", set_value("leg_return", 1500, 50.0)),
        ["QQQ.parquet", "column 'leg_return'", "row 1500", "value 50.0", "plausibility bound"],
    ),
    "step3_leg_return_minus_0_4": (
        with_leg("SPY", set_value("leg_return", 4000, -0.4)),
        ["SPY.parquet", "column 'leg_return'", "row 4000", "value -0.4", "plausibility bound"],
    ),
    # (c) coverage
    "step3_legs_end_apart": (
        with_leg("QQQ", lambda f: f.iloc[:-5]),
        ["QQQ.parquet", "column 'decision_ts'", "row ", "value '2025-09-19", "end on the same session"],
    ),
    "step3_legs_end_apart_other_leg": (
        with_leg("SPY", lambda f: f.iloc[:-1]),
        ["SPY.parquet", "column 'decision_ts'", "value '2025-09-25", "end on the same session"],
    ),
}


# --- settings -------------------------------------------------------------------------------------


def with_toml(extra: str, *args: str):
    def apply(home: Path) -> list[str]:
        (home / "allocator.toml").write_text(TOML + extra)
        return ["--step3", str(home / STEP3), *args] if args else ["--step3", str(home / STEP3), "build-dataset"]

    return apply


def replace_toml(text: str, *args: str):
    """The settings file replaced by ``text``; ``args``: the command on the home's Step 3 directory
    (default: ``build-dataset`` on the reference engine)."""

    def apply(home: Path) -> list[str]:
        (home / "allocator.toml").write_text(text)
        return ["--step3", str(home / STEP3), *args] if args else ["build-dataset"]

    return apply


# the fold plan the legs cannot give (history 1999-03-11 .. 2025-09-26, three years of training first)
FOLDS = "first_test_year = 2024\nrequired_oos_years = [2024]"


SETTINGS_CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "settings_out_of_range": (with_toml("[policy]\nalpha = 1.5\n"), ["allocator.toml", "policy.alpha = 1.5", "lt 1.0"]),
    "settings_unknown_field": (
        with_toml("[policy]\nalpah = 0.5\n"),
        ["allocator.toml", "policy.alpah = 0.5", "Extra inputs"],
    ),
    "settings_bad_toml": (with_toml("[policy\n"), ["allocator.toml", "settings file"]),
    "settings_leg_bound_zero": (
        replace_toml(TOML.replace('step3_mode = "passive"', 'step3_mode = "passive"\nmax_abs_leg_return = 0')),
        ["allocator.toml", "data.max_abs_leg_return = 0", "gt 0"],
    ),
    "settings_passive_with_confidence": (
        replace_toml('profile = "quick"\n[data]\nstep3_mode = "passive"\n'),
        ["features.blocks", "'confidence'", "step3_mode = 'passive'"],
    ),
    "settings_bad_profile": (replace_toml('profile = "fast"\n'), ["allocator.toml", "profile = 'fast'"]),
    "settings_fold_plan_oos_year_before_the_data": (
        replace_toml(TOML.replace(FOLDS, "required_oos_years = [2000, 2024]"), "build-dataset"),
        [
            "folds.required_oos_years [2000, 2024]: [2000] not covered",
            "the data: 6679 sessions 1999-03-11 .. 2025-09-26",
            "user_step3",
        ],
    ),
    "settings_fold_plan_first_test_year_too_early": (
        replace_toml(TOML.replace("first_test_year = 2024", "first_test_year = 2001"), "run"),
        ["folds.first_test_year=2001 is not allowed", "the data: 6679 sessions 1999-03-11 .. 2025-09-26"],
    ),
}


# --- rebalance --date -----------------------------------------------------------------------------


def rebalance(date: str):
    return lambda h: ["--step3", str(h / STEP3), "rebalance", "--date", date]


DATE_CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "date_saturday": (
        rebalance("2025-09-27"),
        ["--date 2025-09-27", "Saturday", "not an NYSE session", "previous session 2025-09-26"],
    ),
    "date_holiday": (rebalance("2025-07-04"), ["--date 2025-07-04", "holiday", "previous session 2025-07-03"]),
    "date_closure_sandy": (rebalance("2012-10-30"), ["--date 2012-10-30", "exchange closure", "next 2012-10-31"]),
    "date_before_data": (
        rebalance("1990-01-02"),
        ["--date 1990-01-02", "before the first session of the data (1999-03-11)"],
    ),
    "date_after_data": (
        rebalance("2025-10-06"),
        ["--date 2025-10-06", "after the last session of the data (2025-09-26)"],
    ),
    "date_not_a_date": (rebalance("2025-13-01"), ["--date", "'2025-13-01'", "YYYY-MM-DD"]),
}

CASES = {**PRICE_CASES, **STEP3_CASES, **SETTINGS_CASES, **DATE_CASES}


def test_the_battery_covers_every_class():
    assert len(CASES) >= 40
    prefixes = {name.split("_", 1)[0] for name in CASES}
    assert prefixes == {"price", "step3", "settings", "date"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_before_anything_is_written(name: str, home: Path):
    make, expected = CASES[name]
    args = make(home)
    before = home_digest(home)
    result = invoke(home, *args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    last = lines[-1]
    for fragment in expected:
        assert fragment in last, f"{fragment!r} not in the last line: {last}"
    assert home_digest(home) == before
    assert not (home / ".allocator-journal").exists()
    assert os.listdir(home)  # the home itself is intact


def test_a_run_that_fails_publishes_nothing(home: Path, monkeypatch: pytest.MonkeyPatch):
    """A failure during a run (exit 1; here the fold plan's step meets a full disk): the stages that
    succeeded before it are rolled back, the fold partitions are put back, and the failed runs are
    tagged as rolled back."""
    import dagster as dg

    from allocator_pipeline.defs import folds

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(folds, "plan_for_data", full_disk)  # the run's step only, not the check before it
    (home / "allocator.toml").write_text(TOML.replace("first_test_year = 2024", "first_test_year = 2023"))
    outside_instance = {k: v for k, v in home_digest(home).items() if not k.startswith(".dagster_home")}
    (home / "step3_out" / "allocator" / "dataset" / ".features.parquet.a1b2c3d4e5f6.tmp").write_bytes(b"\0" * 742)
    result = invoke(home, "--step3", str(home / STEP3), "build-dataset")
    assert result.exit_code == 1, result.output
    assert "fold_plan" in result.output.splitlines()[-1] and "No space left" in result.output.splitlines()[-1]
    assert "leg_panel: done" in result.output  # earlier stages did run (and wrote) ...
    after = {k: v for k, v in home_digest(home).items() if not k.startswith(".dagster_home")}
    assert after == outside_instance  # ... and were put back; the stale temporary file is gone
    os.environ["DAGSTER_HOME"], previous = str(home / ".dagster_home"), os.environ.get("DAGSTER_HOME")
    try:
        instance = dg.DagsterInstance.get()
        assert sorted(instance.get_dynamic_partitions("fold")) == ["2024", "2025"]
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert failed and all(run.tags.get("allocator/rolled_back") == "true" for run in failed)
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = previous


def test_an_impossible_fold_plan_of_the_reference_engine_fails_its_run_as_bad_input(home: Path):
    """The reference engine's legs exist only inside the dataset run: there the fold plan the
    settings ask for is refused as bad input (exit 2, the setting and the data's range on the last
    line) and the run's writes are rolled back."""
    (home / "allocator.toml").write_text(TOML.replace(FOLDS, "required_oos_years = [2000]"))
    outside_instance = {k: v for k, v in home_digest(home).items() if not k.startswith(".dagster_home")}
    result = invoke(home, "build-dataset")
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert "folds.required_oos_years [2000]: [2000] not covered" in last and "the data: " in last
    assert "leg_panel: done" in result.output  # the legs were built in the run, then put back
    assert {k: v for k, v in home_digest(home).items() if not k.startswith(".dagster_home")} == outside_instance


def test_artifacts_are_readable_by_others_and_the_instance_has_telemetry_off(built_home: Path):
    umask = os.umask(0)
    os.umask(umask)
    panel = built_home / "step3_out" / "allocator" / "dataset" / "leg_panel.parquet"
    assert panel.stat().st_mode & 0o777 == 0o666 & ~umask
    assert "enabled: false" in (built_home / ".dagster_home" / "dagster.yaml").read_text()


def test_an_input_error_inside_a_run_fails_its_step_with_the_message(home: Path):
    """What the UI shows (and what the CLI reports with exit 2 should a run meet bad input): the step
    fails with a dagster.Failure whose description is the input's message and whose metadata holds
    its fields, not a chain of wrapped exceptions."""
    import dagster as dg

    from allocator_pipeline.cli.context import InputError, check_run
    from allocator_pipeline.defs.execution import materialize
    from allocator_pipeline.settings import RunOptions

    write_prices(home, "SPY", good_rows()[:20] + good_rows()[30:])
    options = RunOptions(home=str(home), prices=str(home / "prices"), step3=str(home / STEP3))
    result = materialize(["market_prices"], options, dg.DagsterInstance.ephemeral())
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    assert failure.user_failure_data is not None
    description, metadata = failure.user_failure_data.description, failure.user_failure_data.metadata
    assert "SPY.csv" in description and "10 NYSE session(s) missing" in description
    assert {key: metadata[key].value for key in ("column", "row", "value")} == {
        "column": "Date",
        "row": "20",
        "value": good_rows()[20][0],
    }
    assert failure.error is not None and failure.error.cause is None  # one exception, no chain
    with pytest.raises(InputError) as info:
        check_run(result, "build-dataset")
    assert info.value.exit_code == 2 and info.value.message == description
