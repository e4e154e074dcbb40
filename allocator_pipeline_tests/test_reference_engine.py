"""The reference Step 3 engine: contract, determinism, causality, passive mode, and its parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import allocator_pipeline.core.inputs.reference_engine as engine
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_for, session_dates
from allocator_pipeline.core.inputs.reference_engine import isotonic_calibration, leg_returns, plan_year_folds
from allocator_pipeline.core.inputs.reference_features import direction_target, price_features, trailing_psi
from allocator_pipeline.core.inputs.reference_output import position_events, run_reference_engine
from allocator_pipeline.core.inputs.step3 import CONFIDENCE_COLUMNS, Step3Data, read_step3_dir
from allocator_pipeline.settings import Settings, load_settings

SMALL_ENGINE = {"num_boost_round": 10, "calibration_sessions": 126, "min_data_in_leaf": 50, "min_train_years": 3}
SYMBOLS = {"qqq": "QQQ", "spy": "SPY"}
CUTOFF = decision_ts_for("2010-06-30")


def settings_for(home: Path, **data: str) -> Settings:
    return load_settings(
        home=home, profile="quick", environ={}, overrides={"step3": SMALL_ENGINE, **({"data": data} if data else {})}
    )


@pytest.fixture(scope="module")
def market_slice(market: pd.DataFrame) -> pd.DataFrame:
    """2005..2012 of the real panel: folds 2008..2012 with min_train_years = 3."""
    return market.loc["2005-01-01":"2012-12-31"]


@pytest.fixture(scope="module")
def reference_run(market_slice: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Step3Data]:
    home = tmp_path_factory.mktemp("engine")
    out = home / "step3_out"
    return out, run_reference_engine(market_slice, settings_for(home), out)


def perturbed_after(market: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Every price, volume and rate strictly after ``cutoff`` changed (positive, smooth factors)."""
    out = market.copy()
    after = out.index > cutoff
    wave = 1.0 + 0.03 * np.sin(1.0 + np.arange(after.sum()) / 3.0)
    for column in out.columns:
        out.loc[after, column] = out.loc[after, column].to_numpy() * wave
    return out


def assert_step3_equal(a: Step3Data, b: Step3Data) -> None:
    assert a.legs.keys() == b.legs.keys() and a.events.keys() == b.events.keys()
    for role in a.legs:
        pd.testing.assert_frame_equal(a.legs[role], b.legs[role], check_exact=True)
        pd.testing.assert_frame_equal(a.events[role], b.events[role], check_exact=True)
    pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)


def test_output_is_the_step3_contract(reference_run: tuple[Path, Step3Data], market_slice: pd.DataFrame) -> None:
    out, data = reference_run
    for name in (
        "backtest/QQQ.parquet",
        "backtest/SPY.parquet",
        "folds/summary.parquet",
        "events/QQQ.parquet",
        "events/SPY.parquet",
    ):
        assert (out / name).is_file(), name
    assert_step3_equal(data, read_step3_dir(out, SYMBOLS, market_slice.index))
    assert data.has_confidence and data.has_drift
    first_2008 = market_slice.index[session_dates(market_slice.index).year == 2008][0]
    for role, leg in data.legs.items():
        assert leg.index[0] == first_2008 and leg.index[-1] == market_slice.index[-1]
        years = session_dates(leg.index).year.astype(str)
        assert (leg["step3_fold"].to_numpy() == years).all()
        assert (leg["symbol"] == SYMBOLS[role]).all()
    summary = data.summary
    assert sorted(zip(summary["symbol"], summary["step3_fold"])) == sorted(
        (s, str(y)) for s in ("QQQ", "SPY") for y in range(2008, 2013)
    )
    assert (summary["train_end"] < summary["calibration_start"]).all()
    assert (summary["calibration_end"] < summary["test_start"]).all()
    assert set(data.events["qqq"]["event"]) <= {"entry", "increase", "decrease", "drift_on", "drift_off"}


def test_probabilities_positions_and_leg_returns(
    reference_run: tuple[Path, Step3Data], market_slice: pd.DataFrame, tmp_path: Path
) -> None:
    _, data = reference_run
    cfg = settings_for(tmp_path).step3
    for role, leg in data.legs.items():
        q10, q50, q90, up = (leg[c].to_numpy() for c in ("prob_q10", "prob_q50", "prob_q90", "prob_up"))
        assert (q10 <= q50).all() and (q50 <= q90).all()
        assert ((up > 0) & (up < 1)).all() and (q10 < q90).any()
        np.testing.assert_array_equal(
            leg["position"].to_numpy(), np.clip(cfg.long_bias + cfg.position_slope * (up - 0.5), 0.0, 1.0)
        )
        # leg return recomputed independently: yesterday's position earns today's total return,
        # minus the cost of yesterday's trade; flat before the first row
        asset = market_slice[f"{role}_adj_close"].pct_change().reindex(leg.index)
        held = leg["position"].shift(1, fill_value=0.0)
        trade = (held - held.shift(1, fill_value=0.0)).abs()
        expected = held * asset - trade * (cfg.fee_bps + cfg.slippage_bps) / 1e4
        np.testing.assert_allclose(leg["leg_return"].to_numpy(), expected.to_numpy(), rtol=0, atol=1e-15)
        assert leg["leg_return"].iloc[0] == 0.0
        assert ((leg["drift_psi"] > cfg.drift_flag_psi) == (leg["drift_flag"] == 1)).all()


def test_two_runs_are_identical(
    reference_run: tuple[Path, Step3Data], market_slice: pd.DataFrame, tmp_path: Path
) -> None:
    _, first = reference_run
    second = run_reference_engine(market_slice, settings_for(tmp_path), tmp_path / "again")
    assert_step3_equal(first, second)


def test_prices_after_a_date_do_not_change_earlier_rows(
    reference_run: tuple[Path, Step3Data], market_slice: pd.DataFrame, tmp_path: Path
) -> None:
    _, base = reference_run
    changed = run_reference_engine(perturbed_after(market_slice, CUTOFF), settings_for(tmp_path), tmp_path / "p")
    for role in base.legs:
        before, after = base.legs[role], changed.legs[role]
        pd.testing.assert_frame_equal(before.loc[:CUTOFF], after.loc[:CUTOFF], check_exact=True)
        ev_a, ev_b = base.events[role], changed.events[role]
        pd.testing.assert_frame_equal(
            ev_a[ev_a["decision_ts"] <= CUTOFF], ev_b[ev_b["decision_ts"] <= CUTOFF], check_exact=True
        )
        # the check has power: the perturbation does reach every later row's inputs
        late_a, late_b = before.loc[before.index > CUTOFF], after.loc[after.index > CUTOFF]
        assert (late_a["leg_return"].to_numpy() != late_b["leg_return"].to_numpy()).mean() > 0.9
        assert (late_a["prob_up"].to_numpy() != late_b["prob_up"].to_numpy()).any()
    early = base.summary["test_end"] <= CUTOFF
    pd.testing.assert_frame_equal(base.summary[early], changed.summary[early], check_exact=True)


def test_causality_check_catches_a_forward_looking_feature(
    market_slice: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feature that peeks one session ahead makes the same check fail (the test is not vacuous)."""

    def leaky(adj_close: pd.Series, volume: pd.Series) -> pd.DataFrame:
        feats = price_features(adj_close, volume)
        feats["ret_1"] = feats["ret_1"].shift(-1)
        return feats

    monkeypatch.setattr(engine, "price_features", leaky)
    short = market_slice.loc[:"2010-12-31"]
    base = run_reference_engine(short, settings_for(tmp_path), tmp_path / "a")
    changed = run_reference_engine(perturbed_after(short, CUTOFF), settings_for(tmp_path), tmp_path / "b")
    before, after = base.leg("qqq").loc[:CUTOFF], changed.leg("qqq").loc[:CUTOFF]
    assert not before["prob_up"].equals(after["prob_up"])


def test_passive_mode(market_slice: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "passive"
    data = run_reference_engine(market_slice, settings_for(tmp_path, step3_mode="passive"), out)
    assert not data.has_confidence and not data.has_drift
    for role, leg in data.legs.items():
        prices = market_slice[f"{role}_adj_close"]
        assert leg.index.equals(market_slice.index[1:].rename("decision_ts"))
        np.testing.assert_array_equal(leg["leg_return"].to_numpy(), prices.pct_change().to_numpy()[1:])
        assert (leg["position"] == 1.0).all() and (leg["step3_fold"] == "passive").all()
        assert not set(CONFIDENCE_COLUMNS) & set(leg.columns)
        assert data.events[role].empty
    assert list(data.summary["step3_fold"]) == ["passive", "passive"]
    with pytest.raises(InputDataError, match="switch the confidence block off"):
        read_step3_dir(out, SYMBOLS, market_slice.index, require_confidence=True)


def test_engine_refuses_a_price_gap(market_slice: pd.DataFrame, tmp_path: Path) -> None:
    holed = market_slice.copy()
    gap = holed.index[300]
    holed.loc[gap, "spy_adj_close"] = np.nan
    with pytest.raises(InputDataError, match="no price on a session") as info:
        run_reference_engine(holed, settings_for(tmp_path), tmp_path / "out")
    assert info.value.column == "spy_adj_close" and info.value.row == str(gap)
    assert not (tmp_path / "out").exists()


def test_year_folds_on_the_real_calendar(market: pd.DataFrame) -> None:
    qqq = market.index[market["qqq_adj_close"].notna().to_numpy()]
    folds = plan_year_folds(qqq, min_train_years=3, calibration_sessions=252)
    assert folds[0].name == "2002" and folds[-1].name == "2025"
    assert plan_year_folds(market.index, 3, 252)[0].name == "1996"
    years = session_dates(qqq).year
    for fold in folds:
        assert fold.calibration_end == fold.test_start - 2  # 1-session purge: target(d) = return(d+1)
        assert fold.train_end == fold.calibration_start - 2
        assert fold.calibration_end - fold.calibration_start + 1 == 252
        test_rows = np.flatnonzero(years == int(fold.name))
        assert (fold.test_start, fold.test_end) == (test_rows[0], test_rows[-1])
    with pytest.raises(ValueError, match="calibration_sessions"):
        plan_year_folds(qqq, min_train_years=1, calibration_sessions=252, min_train_rows=200)


def _toy_prices(n: int = 400, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "adj_close": 50.0 * np.cumprod(1.0 + rng.normal(0.0004, 0.012, n)),
            "volume": rng.integers(1_000, 5_000, n).astype("float64"),
        }
    )


def test_price_features_are_causal_and_target_looks_one_session_ahead() -> None:
    toy = _toy_prices()
    k = 300
    changed = toy.copy()
    changed.loc[k + 1 :, "adj_close"] *= np.linspace(0.7, 1.4, len(toy) - k - 1)
    changed.loc[k + 1 :, "volume"] *= 3.0
    base = price_features(toy["adj_close"], toy["volume"])
    moved = price_features(changed["adj_close"], changed["volume"])
    pd.testing.assert_frame_equal(base.iloc[: k + 1], moved.iloc[: k + 1], check_exact=True)
    assert not base.iloc[k + 1 :].equals(moved.iloc[k + 1 :])
    assert base.iloc[260:].notna().all().all()  # warm-up over after the longest window
    target = direction_target(toy["adj_close"])
    nxt = toy["adj_close"].shift(-1) / toy["adj_close"] - 1.0
    np.testing.assert_array_equal(target.to_numpy()[:-1], (nxt > 0).astype(float).to_numpy()[:-1])
    assert np.isnan(target.iloc[-1])
    t_changed = direction_target(changed["adj_close"])
    np.testing.assert_array_equal(target.to_numpy()[:k], t_changed.to_numpy()[:k])  # row k uses row k+1


def test_trailing_psi_is_causal_and_detects_a_shift() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(size=(600, 3))
    train = np.arange(0, 400)
    psi, _ = trailing_psi(values, train, 400, 599, window=63)
    shifted = values.copy()
    shifted[500:] = shifted[500:] * 3.0 + 2.0
    psi_shifted, whole = trailing_psi(shifted, train, 400, 599, window=63)
    np.testing.assert_array_equal(psi[:100], psi_shifted[:100])  # rows 400..499 see rows <= d only
    assert psi[:100].max() < 0.25 < psi_shifted[150:].min()
    assert whole > trailing_psi(values, train, 400, 599, window=63)[1]
    assert (psi >= 0).all()


def test_isotonic_calibration_is_monotone_and_shrunk() -> None:
    raw = np.linspace(0.0, 1.0, 200)
    target = (raw > 0.5).astype(float)  # perfectly separable: raw isotonic gives 0 and 1
    knots, probs = isotonic_calibration(raw, target)
    assert (np.diff(probs) >= 0).all()
    assert 0.0 < probs.min() < 0.5 < probs.max() < 1.0
    mapped = np.interp([-5.0, 0.25, 0.75, 5.0], knots, probs)  # clipped outside the range
    assert mapped[0] == probs[0] and mapped[-1] == probs[-1] and mapped[1] < mapped[2]


def test_leg_returns_and_events_follow_their_conventions() -> None:
    pos = np.array([0.5, 0.5, 1.0, 0.0, 0.05])
    ret = np.array([0.01, 0.02, -0.01, 0.03, 0.01])
    np.testing.assert_allclose(
        leg_returns(pos, ret, cost_bps=10.0), [0.0, 0.5 * 0.02 - 0.5e-3, 0.5 * -0.01, 1.0 * 0.03 - 0.5e-3, 0.0 - 1e-3]
    )
    ts = pd.date_range("2024-01-02 21:00", periods=6, freq="D", tz="UTC")
    leg = pd.DataFrame(
        {
            "decision_ts": ts,
            "symbol": "X",
            "step3_fold": "2024",
            "position": [0.8, 0.85, 0.95, 0.9, 0.7, 0.75],
            "drift_flag": [0, 0, 1, 1, 0, 0],
        }
    )
    events = position_events(leg, min_change=0.1)
    kinds = list(zip(events["decision_ts"], events["event"]))
    assert kinds == [
        (ts[0], "entry"),
        (ts[2], "drift_on"),
        (ts[2], "increase"),
        (ts[4], "decrease"),
        (ts[4], "drift_off"),
    ]
    later = position_events(leg.assign(position=[0.8, 0.85, 0.95, 0.9, 0.2, 0.9]), min_change=0.1)
    pd.testing.assert_frame_equal(events[events["decision_ts"] < ts[4]], later[later["decision_ts"] < ts[4]])
