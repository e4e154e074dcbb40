"""The planted-signal family (core/inputs/synthetic.py, synthetic_legs.py): each member plants what its
documentation says, and the resampled legs are real rows in a new order that the validator accepts.

No model is fitted: these tests check the measuring instrument itself, against first principles
(correlations by regime, the rows of a bootstrap, prices compounding the returns they earn)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.inputs import load_market, read_step3_dir, run_reference_engine
from allocator_pipeline.core.inputs.synthetic import (
    CONFIG_FILE,
    plant_signal,
    planted_signal,
    read_planted,
    synth_step3,
    volatility_regime,
)
from allocator_pipeline.core.inputs.synthetic_legs import resample_legs
from allocator_pipeline.settings import load_settings


@pytest.fixture(scope="module")
def passive(tmp_path_factory):
    settings = load_settings(profile="quick", environ={}, overrides={"data": {"step3_mode": "passive"}})
    market = load_market(settings)
    source = tmp_path_factory.mktemp("passive-legs")
    run_reference_engine(market, settings, source)
    return market, source


def _returns(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vol = np.where((np.arange(n) // 250) % 2 == 0, 0.01, 0.03)  # calm and rough years alternate
    return rng.normal(0, 1, n) * vol, rng.normal(0, 1, n) * vol * 0.8


def test_the_volatility_regime_is_known_at_the_close():
    """Causal: the regime of session d computed from rows <= d equals the one computed from the
    whole series (a forward-looking line, e.g. a centred window, would change the prefix)."""
    r, _ = _returns(3000, 0)
    full = volatility_regime(r)
    for cut in (400, 1300, 2999):
        assert np.array_equal(volatility_regime(r[:cut]), full[:cut])
    assert (full[:252] == -1).all() and (full == 1).mean() > 0.3


@pytest.mark.parametrize("condition", ["none", "high_vol", "flip"])
def test_each_condition_plants_its_correlation_by_regime(condition):
    """corr(s, spread) is c * IC on the sessions whose loading is c (1, 0 or -1), within sampling
    error (a few hundred effective observations: 0.1)."""
    r_q, r_s = _returns(6000, 1)
    s, spread, loading = planted_signal(r_q, r_s, 0.5, 5, seed=3, condition=condition)
    has = np.isfinite(spread)
    expected = {"none": {1.0: 0.5}, "high_vol": {1.0: 0.5, 0.0: 0.0}, "flip": {1.0: 0.5, -1.0: -0.5}}[condition]
    assert set(np.unique(loading)) == set(expected)
    for c, corr in expected.items():
        rows = has & (loading == c)
        assert rows.sum() > 1000
        assert np.corrcoef(s[rows], spread[rows])[0, 1] == pytest.approx(corr, abs=0.1), c
    assert np.std(s) == pytest.approx(1.0, abs=0.05)  # N(0, 1) marginally whatever the condition


@pytest.mark.parametrize("informative", ["both", "qqq", "spy"])
def test_only_the_informative_legs_carry_the_signal(informative):
    r_q, r_s = _returns(4000, 2)
    ts = pd.date_range("2010-01-04 21:00", periods=4000, freq="D", tz="UTC")
    legs = {
        sym: pd.DataFrame({"decision_ts": ts, "leg_return": r, "position": 1.0, "step3_fold": ts.year})
        for sym, r in (("QQQ", r_q), ("SPY", r_s))
    }
    out, signal = plant_signal(legs, 0.6, 10, 5, informative=informative)
    has = signal["spread"].notna().to_numpy()
    spread = signal["spread"].to_numpy()[has]

    def corr(symbol: str) -> float:
        p = out[symbol]["prob_up"].to_numpy()[has]
        return float(np.corrcoef(np.log(p / (1 - p)), spread)[0, 1])

    q, sp = corr("QQQ"), corr("SPY")
    if informative in ("both", "qqq"):
        assert q > 0.5
    else:
        assert abs(q) < 0.1
    if informative in ("both", "spy"):
        assert sp < -0.5  # the SPY leg carries -s: less bullish on SPY when QQQ should win
    else:
        assert abs(sp) < 0.1


def test_resampled_legs_are_real_rows_in_a_new_order_with_the_prices_they_earn():
    ts = pd.date_range("2020-01-02 21:00", periods=500, freq="D", tz="UTC")
    rng = np.random.default_rng(4)
    q, s = rng.normal(0, 0.01, 500), rng.normal(0, 0.01, 500)
    legs = {
        sym: pd.DataFrame(
            {"decision_ts": ts, "symbol": sym, "leg_return": r, "position": 1.0, "asset_return": r, "step3_fold": 2020}
        )
        for sym, r in (("QQQ", q), ("SPY", s))
    }
    out, prices = resample_legs(legs, 20.0, seed=1)
    new_q, new_s = out["QQQB"], out["SPYB"]
    assert new_q["decision_ts"].equals(legs["QQQ"]["decision_ts"])  # the calendar stays
    pos = {v: i for i, v in enumerate(q)}
    idx = np.array([pos[v] for v in new_q["leg_return"]])
    assert np.array_equal(new_s["leg_return"].to_numpy(), s[idx])  # the two legs move together
    assert not np.array_equal(idx, np.arange(500))
    assert (np.diff(idx) == 1).mean() > 0.8  # blocks of mean 20: most neighbours stay neighbours
    growth = prices["QQQB"]["Adj Close"].to_numpy()
    np.testing.assert_allclose(
        growth[1:] / growth[:-1] - 1.0, new_q["asset_return"].to_numpy()[1:], rtol=1e-9, atol=1e-15
    )
    again, _ = resample_legs(legs, 20.0, seed=1)
    pd.testing.assert_frame_equal(again["QQQB"], new_q)  # seeded


def test_a_resampled_fixture_passes_the_validator_and_brings_its_settings(passive, tmp_path):
    """synth-step3 --resample on the passive legs: a Step 3 directory for QQQB/SPYB that the
    project's own validator accepts against their price files (the legs' alignment with their
    market holds), and an allocator.toml that loads."""
    market, source = passive
    out = tmp_path / "rs"
    manifest = synth_step3(source, out, market.index, 0.3, horizon=10, seed=2, resample_block=60.0)
    assert manifest["symbols"] == {"qqq": "QQQB", "spy": "SPYB"} and manifest["resample_block"] == 60.0
    settings = load_settings(profile="quick", environ={}, config_file=out / CONFIG_FILE)
    assert (settings.data.qqq_symbol, settings.data.spy_symbol) == ("QQQB", "SPYB")
    resampled_market = load_market(settings)
    data = read_step3_dir(out, {"qqq": "QQQB", "spy": "SPYB"}, resampled_market.index)
    assert data.has_confidence
    meta, signal = read_planted(out)
    assert meta["horizon"] == 10 and "loading" in signal.columns
    real = read_step3_dir(source, {"qqq": "QQQ", "spy": "SPY"}, market.index, require_confidence=False)
    a = np.sort(data.legs["qqq"]["leg_return"].to_numpy())
    common = real.legs["qqq"].index.intersection(real.legs["spy"].index)
    b = real.legs["qqq"].loc[common, "leg_return"].to_numpy()
    assert set(a).issubset(set(b)) and not np.array_equal(data.legs["qqq"]["leg_return"].to_numpy(), b)


def test_the_command_takes_the_family_options(passive, tmp_path):
    from click.testing import CliRunner

    from allocator_pipeline import cli

    _, source = passive
    out = tmp_path / "family"
    args = ["--home", str(tmp_path), "synth-step3", str(out), "--ic", "0.2", "--horizon", "5", "--legs", "spy"]
    args += ["--condition", "flip", "--resample", "40", "--source", str(source)]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert f"allocator --config {out / CONFIG_FILE} run" in result.output
    meta, _ = read_planted(out)
    assert (meta["informative"], meta["condition"], meta["resample_block"], meta["horizon"]) == ("spy", "flip", 40.0, 5)
    bad = CliRunner().invoke(cli.main, [*args[:3], str(tmp_path / "x"), "--ic", "0.2", "--legs", "none"])
    assert bad.exit_code == 2 and "Invalid value for '--legs'" in bad.output, bad.output


@pytest.mark.parametrize("horizon", [5, 10, 20])
def test_the_planted_rule_reads_a_fixed_twenty_sessions_and_the_informative_column(horizon):
    """The yardstick of issue 22: one confidence pulse on the QQQ leg at session k tilts the planted
    rule toward QQQ for exactly the 20 sessions k .. k+19, whatever the planted horizon; a rule on
    the SPY column alone does not see it, one on the QQQ column alone does not see a SPY pulse;
    the rule that knows a negative condition tilts away."""
    from allocator_pipeline.core.common.errors import InputDataError
    from allocator_pipeline.core.evaluation.retention import planted_rule

    n, k = 80, 30
    idx = pd.date_range("2020-01-01", periods=n, freq="B", tz="UTC")
    pulse = np.full(n, 0.5)
    pulse[k] = 0.7
    flat = np.full(n, 0.5)
    panel = pd.DataFrame({"qqq_prob_up": pulse, "spy_prob_up": flat}, index=idx)
    signal = pd.DataFrame({"loading": np.full(n, -1.0)}, index=idx)

    def rule(frame: pd.DataFrame, **meta) -> np.ndarray:
        return planted_rule(frame, ({"horizon": horizon, "informative": "both", **meta}, signal))["w"].to_numpy()

    w = rule(panel)
    tilted = np.flatnonzero(w != 0.5)
    assert tilted.tolist() == list(range(k, k + 20)) and (w[tilted] > 0.5).all()
    assert (rule(panel, informative="spy") == 0.5).all()
    spy_pulse = pd.DataFrame({"qqq_prob_up": flat, "spy_prob_up": pulse}, index=idx)
    assert (rule(spy_pulse, informative="qqq") == 0.5).all() and (rule(spy_pulse, informative="spy")[k] < 0.5)
    assert (rule(panel, condition="flip")[k : k + 20] < 0.5).all()
    with pytest.raises(InputDataError, match="loading"):
        planted_rule(panel, ({"horizon": horizon, "condition": "flip"}, signal.drop(columns="loading")))
