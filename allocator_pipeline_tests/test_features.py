"""Feature table: hand-checked values per block, switches, input errors, warm-up, causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.features.inputs import fold_blocks
from allocator_pipeline.core.features.table import available_blocks, build_features, feature_dictionary
from allocator_pipeline.core.inputs.market import load_prices, market_panel
from allocator_pipeline.settings import FEATURE_BLOCKS, FeatureSettings
from allocator_pipeline_tests.support.leakage import compare_up_to, perturb_after

SQRT252 = np.sqrt(252.0)
DRIFT_LEAD = 5  # leading NaN rows of the synthetic drift columns (the Step 3 drift window filling up)

# every block on, VIX included (the project default leaves VIX off; see FeatureSettings.blocks)
ALL_BLOCKS = FeatureSettings(blocks=FEATURE_BLOCKS)


def synthetic_panel(n: int = 420, seed: int = 3) -> pd.DataFrame:
    """A full leg panel (all blocks' inputs) on business-day sessions, fixed seed."""
    rng = np.random.default_rng(seed)
    index = decision_ts_from_dates(pd.bdate_range("2014-01-02", periods=n))
    r_q = rng.normal(4e-4, 0.012, n)
    r_s = 0.6 * r_q + rng.normal(2e-4, 0.006, n)
    q = np.sort(rng.uniform(0.2, 0.8, (n, 2, 3)), axis=2)
    psi = rng.gamma(2.0, 0.08, (n, 2))
    psi[:DRIFT_LEAD] = np.nan
    vix = 18 + np.cumsum(rng.normal(0, 0.5, n))
    vix[[40, 41, 42, 200, 333]] = np.nan  # missing VIX days within the staleness limit
    yield_pct = 1.0 + np.cumsum(rng.normal(0, 0.01, n))
    panel = pd.DataFrame(index=index)
    for i, (leg, r) in enumerate((("qqq", r_q), ("spy", r_s))):
        panel[f"{leg}_leg_return"] = r
        panel[f"{leg}_position"] = rng.uniform(0.2, 1.0, n)
        panel[f"{leg}_prob_up"] = rng.uniform(0.3, 0.7, n)
        for j, qn in enumerate(("q10", "q50", "q90")):
            panel[f"{leg}_prob_{qn}"] = q[:, i, j]
        panel[f"{leg}_drift_psi"] = psi[:, i]
        panel[f"{leg}_drift_flag"] = np.where(np.isnan(psi[:, i]), np.nan, (psi[:, i] > 0.25).astype(float))
        panel[f"{leg}_adj_close"] = 100 * np.cumprod(1 + r)
    panel["vix"] = vix
    panel["tbill_yield_pct"] = yield_pct
    panel["cash_return"] = (1 + np.r_[yield_pct[0], yield_pct[:-1]] / 100) ** (1 / 252) - 1
    return panel


def leg_panel(qqq: list[float], spy: list[float] | None = None, **extra: list[float]) -> pd.DataFrame:
    """A minimal leg panel with the given returns (and extra columns) on business-day sessions."""
    n = len(qqq)
    index = decision_ts_from_dates(pd.bdate_range("2020-01-02", periods=n))
    frame = pd.DataFrame(
        {
            "qqq_leg_return": qqq,
            "spy_leg_return": spy if spy is not None else [0.0] * n,
            "qqq_position": 1.0,
            "spy_position": 1.0,
        },
        index=index,
    )
    for name, values in extra.items():
        frame[name] = values
    return frame


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return synthetic_panel()


@pytest.fixture(scope="module")
def features(panel: pd.DataFrame) -> pd.DataFrame:
    return build_features(panel, ALL_BLOCKS)


@pytest.fixture(scope="module")
def real_passive_panel() -> pd.DataFrame:
    """Passive legs from the embedded prices (leg return = adjusted close pct change), 2006-2009."""
    market = market_panel(load_prices())
    market = market[(market.index >= "2006-01-01") & (market.index < "2010-01-01")]
    panel = market[["qqq_adj_close", "spy_adj_close", "vix", "tbill_yield_pct", "cash_return"]].copy()
    panel["qqq_leg_return"] = market["qqq_adj_close"].pct_change()
    panel["spy_leg_return"] = market["spy_adj_close"].pct_change()
    panel["qqq_position"] = 1.0
    panel["spy_position"] = 1.0
    return panel.iloc[1:]


def only(*blocks: str, **kw) -> FeatureSettings:
    return FeatureSettings(blocks=blocks, **kw)


# ---- hand-checked values per block -------------------------------------------------------------


def test_returns_block_by_hand():
    r = [0.01, -0.02, 0.03, 0.0, 0.01, 0.02]
    f = build_features(leg_panel(r, [0.005] * 6), only("returns"))
    # (1.01)(0.98)(1.03)(1.00)(1.01) - 1 = 1.02968894 - 1
    assert f["qqq_ret_5"].iloc[4] == pytest.approx(0.02968894, abs=1e-12)
    assert f["qqq_ret_1"].iloc[5] == 0.02
    assert f["spread_ret_5"].iloc[4] == pytest.approx(0.02968894 - (1.005**5 - 1), abs=1e-12)
    assert f["qqq_ret_5"].iloc[:4].isna().all() and f["qqq_ret_21"].isna().all()


def test_volatility_block_by_hand():
    r = [0.01, -0.01, 0.01, -0.01, 0.01]
    f = build_features(leg_panel(r), only("volatility"))
    # mean 0.002; squared deviations sum to 4.8e-4; / (5 - 1) = 1.2e-4 -> sqrt(1.2e-4 * 252)
    assert f["qqq_vol_5"].iloc[4] == pytest.approx(np.sqrt(0.03024), rel=1e-12)
    # downside: mean(min(r, 0)^2) = 2e-4 / 5 = 4e-5 -> sqrt(4e-5 * 252)
    assert f["qqq_downvol_5"].iloc[4] == pytest.approx(np.sqrt(0.01008), rel=1e-12)
    assert f["spy_vol_5"].iloc[4] == 0.0
    assert f["spread_vol_5"].iloc[4] == pytest.approx(np.sqrt(0.03024), rel=1e-12)
    assert np.isnan(f["qqq_vol_5"].iloc[3])


def test_drawdown_block_by_hand():
    r = [0.0] * 254
    r[251], r[252], r[253] = 0.10, -0.20, 0.05  # equity 1.10, 0.88, 0.924
    f = build_features(leg_panel(r), only("drawdown"))
    last = f.iloc[253]
    assert last["qqq_dd_63"] == pytest.approx(0.2, abs=1e-12)  # 1 - 0.88 / 1.10
    assert last["qqq_dd_252"] == pytest.approx(0.2, abs=1e-12)
    assert last["qqq_dd_now"] == pytest.approx(0.16, abs=1e-12)  # 1 - 0.924 / 1.10
    assert last["qqq_since_peak"] == 2.0
    assert last["qqq_rebound_21"] == pytest.approx(0.05, abs=1e-12)  # 0.924 / 0.88 - 1
    assert f["qqq_dd_63"].iloc[251] == 0.0  # a rising path has no drawdown
    assert f["qqq_dd_now"].iloc[251] == 0.0 and f["qqq_since_peak"].iloc[251] == 0.0
    assert f["qqq_dd_252"].iloc[:251].isna().all()


def test_hit_rate_block_by_hand():
    r = [0.01] * 12 + [-0.02] * 6 + [0.0] * 3
    f = build_features(leg_panel(r), only("hit_rate"))
    assert f["qqq_hit_21"].iloc[20] == pytest.approx(12 / 21, abs=1e-15)
    assert f["qqq_payoff_21"].iloc[20] == pytest.approx(0.0101 / 0.0201, rel=1e-12)
    assert f["spy_payoff_21"].iloc[20] == 1.0  # a flat leg: (0 + 1bp) / (0 + 1bp)
    assert f["spy_hit_21"].iloc[20] == 0.0


def test_confidence_and_drift_blocks_by_hand():
    n = 25
    p_up = [0.5 + 0.01 * i for i in range(n)]
    psi = [0.01 * i for i in range(n)]
    cols = {
        f"{leg}_{c}": v
        for leg in ("qqq", "spy")
        for c, v in (
            ("prob_up", p_up),
            ("prob_q10", [0.3] * n),
            ("prob_q50", [0.5] * n),
            ("prob_q90", [0.75] * n),
            ("drift_psi", psi),
            ("drift_flag", [0.0] * 20 + [1.0] * 5),
        )
    }
    f = build_features(leg_panel([0.0] * n, **cols), only("confidence", "drift"))
    assert f["qqq_prob_spread"].iloc[0] == pytest.approx(0.45, abs=1e-15)
    assert f["qqq_prob_up_chg_5"].iloc[10] == pytest.approx(0.05, abs=1e-12)
    assert f["qqq_position"].iloc[3] == 1.0
    assert f["qqq_drift_psi_mean_21"].iloc[20] == pytest.approx(0.10, abs=1e-12)  # mean(0.00 .. 0.20)
    assert f["spy_drift_flag_mean_21"].iloc[24] == pytest.approx(5 / 21, abs=1e-15)


def test_regime_block_by_hand():
    n = 45
    r_s = [0.01 if i % 2 else -0.01 for i in range(n)]
    close = [100.0] * (n - 1) + [110.0]
    f = build_features(
        leg_panel([2 * x for x in r_s], r_s, qqq_adj_close=close, spy_adj_close=[50.0] * n),
        only("regime", long_ma_sessions=20),
    )
    assert f["qqq_trend"].iloc[-1] == pytest.approx(110 / 100.5 - 1, rel=1e-12)  # MA(20) = (19*100+110)/20
    assert f["qqq_ma_slope_21"].iloc[-1] == pytest.approx(100.5 / 100 - 1, rel=1e-12)
    assert f["corr_21"].iloc[-1] == pytest.approx(1.0, abs=1e-12)
    assert f["log_vol_ratio_63"].isna().all()
    assert f["rel_strength_trend"].iloc[-1] == pytest.approx(2.2 / 2.01 - 1, rel=1e-12)
    flat = build_features(
        leg_panel(r_s, [0.0] * n, qqq_adj_close=close, spy_adj_close=[50.0] * n), only("regime", long_ma_sessions=20)
    )
    assert flat["corr_21"].iloc[-1] == 0.0  # a flat leg gives no co-movement information


def test_vix_staleness_rule_by_hand():
    vix = [20.0, 21.0, np.nan, np.nan, 22.0, np.nan, 23.0, 24.0, 25.0, 26.0]
    f = build_features(leg_panel([0.0] * 10, vix=vix), only("vix", vix_max_stale_sessions=2))
    assert f["vix"].tolist() == [20, 21, 21, 21, 22, 22, 23, 24, 25, 26]
    assert f["vix_stale_sessions"].tolist() == [0, 0, 1, 2, 0, 1, 0, 0, 0, 0]
    assert f["vix_chg_5"].iloc[6] == 23.0 - 21.0
    assert f["vix_chg_5"].iloc[:5].isna().all()


def test_vix_beyond_the_staleness_limit_is_refused():
    vix = [20.0, 21.0, np.nan, np.nan, np.nan, 22.0]
    p = leg_panel([0.0] * 6, vix=vix)
    with pytest.raises(InputDataError, match="(?i)switch the 'vix' feature block off") as err:
        build_features(p, only("returns", "vix", vix_max_stale_sessions=2))
    assert err.value.column == "vix" and err.value.row == str(p.index[4])
    assert "vix" not in available_blocks(p, only("vix", vix_max_stale_sessions=2))
    assert "vix" in available_blocks(p, only("vix", vix_max_stale_sessions=3))
    assert build_features(p, only("returns")).shape == (6, 12)  # the block off: fine


def test_vix_availability_is_decided_from_data_up_to_the_cutoff():
    """VIX stale beyond the limit from session 6 on: available for a cutoff before the gap turns
    stale, not after; perturbing VIX after the cutoff (stale or not) never changes the answer."""
    vix = [20.0, 21.0, 22.0, 23.0, np.nan, np.nan, np.nan, np.nan, 24.0, 25.0]
    p = leg_panel([0.0] * 10, vix=vix)
    s = only("vix", vix_max_stale_sessions=2)
    assert "vix" not in available_blocks(p, s)  # the whole panel: stale 3 sessions at row 6
    assert "vix" in available_blocks(p, s, until=p.index[5])  # stale 2 at row 5: within the limit
    assert "vix" not in available_blocks(p, s, until=p.index[6])
    fresh = p.copy()
    fresh.loc[fresh.index[6:], "vix"] = 30.0  # what comes after the cutoff cannot matter
    for until in p.index[:6]:
        assert available_blocks(p, s, until=until) == available_blocks(fresh, s, until=until)
    plan = pd.DataFrame(
        {"fold": ["a", "b"], "inner": [-1, -1], "train_end": [p.index[1], p.index[3]],
         "val_end": [p.index[5], p.index[9]]}
    )  # fmt: skip
    blocks = fold_blocks(p, plan, s)
    assert "vix" in blocks["a"] and "vix" not in blocks["b"]
    assert blocks["b"] == tuple(b for b in blocks["a"] if b != "vix")


def test_vix_zscore_and_tbill_block(panel: pd.DataFrame, features: pd.DataFrame):
    filled = panel["vix"].ffill().to_numpy()
    window = filled[300 - 251 : 301]
    expected = (filled[300] - window.mean()) / window.std(ddof=1)
    assert features["vix_z_252"].iloc[300] == pytest.approx(expected, rel=1e-10)
    assert features["vix_z_252"].iloc[:251].isna().all() and np.isfinite(features["vix_z_252"].iloc[251])
    r = [0.001] * 70
    f = build_features(leg_panel(r, tbill_yield_pct=[1.0] * 40 + [1.5] * 30, cash_return=[1e-4] * 70), only("tbill"))
    assert f["qqq_excess_63"].iloc[62] == pytest.approx((1.001**63 - 1) - (1.0001**63 - 1), rel=1e-10)
    assert f["tbill_chg_21"].iloc[45] == pytest.approx(0.5) and f["tbill_chg_21"].iloc[39] == 0.0


# ---- switches, dictionary, errors -------------------------------------------------------------


def test_block_switches_and_dictionary(panel: pd.DataFrame, features: pd.DataFrame):
    dictionary = feature_dictionary(ALL_BLOCKS, panel.columns)
    assert list(dictionary.columns) == ["name", "block", "formula", "window", "units"]
    assert list(dictionary["name"]) == list(features.columns)
    assert set(dictionary["block"]) == set(FEATURE_BLOCKS)
    assert {"qqq_vol_21", "qqq_dd_63", "qqq_ret_5", "vix_stale_sessions"} <= set(features.columns)
    for block in FEATURE_BLOCKS:
        one = build_features(panel, only(block))
        names = dictionary.loc[dictionary["block"] == block, "name"].tolist()
        assert list(one.columns) == names
        pd.testing.assert_frame_equal(one, features[names])
    reordered = build_features(panel, only("vix", "returns"))
    assert list(reordered.columns) == list(build_features(panel, only("returns", "vix")).columns)
    assert (features.dtypes == np.float64).all() and features.index.equals(panel.index)


def test_absent_block_inputs_raise_a_clear_error(real_passive_panel: pd.DataFrame):
    for block in ("confidence", "drift"):
        with pytest.raises(InputDataError, match=f"switch the block off.*without '{block}'"):
            build_features(real_passive_panel, only("returns", block))
        with pytest.raises(InputDataError, match=f"feature block '{block}' needs"):
            feature_dictionary(only(block), real_passive_panel.columns)
    assert available_blocks(real_passive_panel) == (
        "returns",
        "volatility",
        "drawdown",
        "hit_rate",
        "regime",
        "vix",
        "tbill",
    )


@pytest.mark.parametrize(
    "column, row, value, match",
    [
        ("qqq_leg_return", 7, np.nan, "finite"),
        ("spy_leg_return", 3, -1.2, "> -1"),
        ("tbill_yield_pct", 9, np.nan, "after the column's first value"),
        ("qqq_adj_close", 2, -5.0, "> 0"),
    ],
)
def test_bad_inputs_name_column_row_and_value(panel, column, row, value, match):
    bad = panel.copy()
    bad.loc[bad.index[row], column] = value
    with pytest.raises(InputDataError, match=match) as err:
        build_features(bad, ALL_BLOCKS)
    assert err.value.column == column and err.value.row == str(panel.index[row])


def test_bad_index_is_refused(panel):
    naive = panel.set_axis(panel.index.tz_localize(None))
    with pytest.raises(InputDataError, match="tz-aware UTC"):
        build_features(naive, ALL_BLOCKS)
    with pytest.raises(InputDataError, match="strictly increasing"):
        build_features(panel.iloc[::-1], ALL_BLOCKS)


# ---- warm-up, causality, realism --------------------------------------------------------------


def test_nan_only_during_warm_up(panel: pd.DataFrame, features: pd.DataFrame):
    dictionary = feature_dictionary(ALL_BLOCKS).set_index("name")
    for name in features.columns:
        warm = int(dictionary.loc[name, "window"]) - 1 + (DRIFT_LEAD if dictionary.loc[name, "block"] == "drift" else 0)
        values = features[name].to_numpy()
        assert np.isfinite(values[warm:]).all(), name
        assert np.isnan(values[:warm]).all(), name  # the documented window is the real warm-up


@pytest.mark.parametrize("cut", [260, 300, 419])
def test_features_are_causal(panel: pd.DataFrame, features: pd.DataFrame, cut: int):
    cutoff = panel.index[cut]
    perturbed = build_features(perturb_after(panel, cutoff, seed=cut, flip_missing=("vix",)), ALL_BLOCKS)
    assert compare_up_to(features, perturbed, cutoff) == []
    if cut < len(panel) - 1:  # the perturbation does reach the rows after the cutoff
        assert len(compare_up_to(features, perturbed, None)) >= len(features.columns) - 2


def test_real_passive_prices_check(real_passive_panel: pd.DataFrame):
    p = real_passive_panel
    f = build_features(p, FeatureSettings(blocks=available_blocks(p)))
    # passive legs: the compounded 63-session leg return is the adjusted-close ratio (the panel's
    # first price has no return row, so the price ratio starts one row later)
    pd.testing.assert_series_equal(
        f["qqq_ret_63"].iloc[63:], p["qqq_adj_close"].pct_change(63).iloc[63:], check_names=False, rtol=1e-9, atol=1e-12
    )
    pd.testing.assert_series_equal(
        f["spy_vol_21"], p["spy_leg_return"].rolling(21).std() * SQRT252, check_names=False, rtol=1e-8
    )
    pd.testing.assert_series_equal(
        f["corr_63"], p["qqq_leg_return"].rolling(63).corr(p["spy_leg_return"]), check_names=False, rtol=1e-8
    )
    trend = p["spy_adj_close"] / p["spy_adj_close"].rolling(200).mean() - 1
    pd.testing.assert_series_equal(f["spy_trend"], trend, check_names=False, rtol=1e-9)
    crisis = f.loc["2008-09-01":"2009-03-31"]
    assert crisis["spy_dd_252"].max() > 0.4 and crisis["spy_vol_21"].max() > 0.6
    assert crisis["vix"].max() > 60 and crisis["spy_trend"].min() < -0.3
    assert f.loc["2006-06-01":"2006-12-31", "spy_vol_21"].max() < crisis["spy_vol_21"].max() / 3


def test_feature_docs_are_up_to_date():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("write_feature_docs", root / "scripts" / "write_feature_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "docs" / "FEATURES.md").read_text() == module.render(), "run scripts/write_feature_docs.py"
