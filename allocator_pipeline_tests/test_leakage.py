"""The no-forward-leakage proof (docs/design.md section 3) and the harness's own behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.features.table import build_features
from allocator_pipeline.core.folds.checks import usable_sessions
from allocator_pipeline.core.folds.plan import plan_folds
from allocator_pipeline.core.labels.utility import utility_labels
from allocator_pipeline.settings import FeatureSettings, FoldSettings, LabelSettings, Settings
from allocator_pipeline_tests.support.leakage import compare_up_to, perturb_after

H = 10
SETTINGS = Settings(
    labels=LabelSettings(horizon=H),
    features=FeatureSettings(long_ma_sessions=50),
    folds=FoldSettings(
        min_train_years=1,
        validation_sessions=63,
        inner_test_sessions=63,
        n_inner_folds=2,
        inner_scheme="purged_kfold",
        required_oos_years=(),
    ),
)


def synthetic_leg_panel(n: int = 1500, seed: int = 11) -> pd.DataFrame:
    """Every leg-panel input (returns, positions, confidence, drift, market context), fixed seed."""
    rng = np.random.default_rng(seed)
    index = decision_ts_from_dates(pd.bdate_range("2011-01-03", periods=n))
    panel = pd.DataFrame(index=index)
    common = rng.normal(3e-4, 0.01, n)
    for leg, beta in (("qqq", 1.3), ("spy", 1.0)):
        r = beta * common + rng.normal(0, 0.004, n)
        q = np.sort(rng.uniform(0.1, 0.9, (n, 3)), axis=1)
        psi = rng.gamma(2.0, 0.1, n)
        psi[:10] = np.nan
        panel[f"{leg}_leg_return"] = r
        panel[f"{leg}_position"] = rng.uniform(0.0, 1.0, n)
        panel[f"{leg}_prob_up"] = rng.uniform(0.2, 0.8, n)
        panel[f"{leg}_prob_q10"], panel[f"{leg}_prob_q50"], panel[f"{leg}_prob_q90"] = q.T
        panel[f"{leg}_drift_psi"] = psi
        panel[f"{leg}_drift_flag"] = np.where(np.isnan(psi), np.nan, (psi > 0.3).astype(float))
        panel[f"{leg}_adj_close"] = 50.0 * np.cumprod(1 + r)
        panel[f"{leg}_step3_fold"] = pd.Series(index.year.astype(str), index=index, dtype="str")
    vix = 20 + np.cumsum(rng.normal(0, 0.4, n))
    vix[rng.choice(n, 25, replace=False)] = np.nan
    panel["vix"] = np.abs(vix)
    panel["tbill_yield_pct"] = 2 + np.cumsum(rng.normal(0, 0.01, n))
    panel["cash_return"] = (1 + panel["tbill_yield_pct"].shift(1).bfill() / 100) ** (1 / 252) - 1
    return panel


def dataset(panel: pd.DataFrame):
    features = build_features(panel, SETTINGS.features)
    labels, utilities = utility_labels(panel, SETTINGS.labels, CostModel.from_settings(SETTINGS.costs))
    plan = plan_folds(features.index, usable_sessions(features, labels), SETTINGS)
    return features, labels, utilities, plan


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return synthetic_leg_panel()


@pytest.fixture(scope="module")
def original(panel):
    return dataset(panel)


@pytest.mark.parametrize("cut", [1050, 1320])
def test_no_forward_leakage(panel, original, cut):
    cutoff = panel.index[cut]
    perturbed_panel = perturb_after(panel, cutoff, seed=cut, flip_missing=("vix",))
    assert compare_up_to(panel, perturbed_panel, cutoff) == []
    features, labels, utilities, plan = original
    features2, labels2, utilities2, plan2 = dataset(perturbed_panel)
    label_cut = panel.index[cut - H]
    assert compare_up_to(features, features2, cutoff) == []
    assert compare_up_to(labels, labels2, label_cut) == []
    assert compare_up_to(utilities, utilities2, label_cut) == []
    done = plan["test_end"] < cutoff
    assert done.sum() >= 3  # at least one outer fold with its inner splits ended before the cutoff
    assert (
        compare_up_to(plan[done].reset_index(drop=True), plan2[plan2["test_end"] < cutoff].reset_index(drop=True), None)
        == []
    )
    # the proof is not vacuous: the perturbation changes what comes after
    assert len(compare_up_to(features, features2, None)) > len(features.columns) // 2
    assert compare_up_to(utilities, utilities2, panel.index[cut - H + 1]) != []


def test_the_harness_catches_a_leaky_feature(panel, original):
    cutoff = panel.index[1000]
    perturbed_panel = perturb_after(panel, cutoff, seed=1)
    features, features2 = original[0].copy(), build_features(perturbed_panel, SETTINGS.features)
    for frame, source in ((features, panel), (features2, perturbed_panel)):
        frame["next_return"] = source["qqq_leg_return"].shift(-1)  # tomorrow's return: a leak
        frame["centred_mean"] = source["spy_leg_return"].rolling(5, center=True).mean()  # a subtler one
    problems = compare_up_to(features, features2, cutoff)
    assert len(problems) == 2
    assert "'next_return': 1 row(s) differ" in problems[0] and str(cutoff) in problems[0]
    assert "'centred_mean': 2 row(s) differ" in problems[1]


def test_perturb_after_changes_every_numeric_value_after_the_cutoff(panel):
    cutoff = panel.index[500]
    out = perturb_after(panel, cutoff, seed=3, flip_missing=("vix",))
    after = panel.index > cutoff
    assert out.index.equals(panel.index) and list(out.columns) == list(panel.columns)
    assert compare_up_to(panel, out, cutoff) == []
    for column in panel.columns:
        a, b = panel.loc[after, column], out.loc[after, column]
        if column.endswith("step3_fold"):
            assert a.equals(b)  # text is left alone
            continue
        both = a.notna() & b.notna()
        assert (a[both] != b[both]).all(), column
        if column.endswith("drift_flag"):
            assert set(b.dropna().unique()) <= {0.0, 1.0}
            continue
        # beyond the full-sample range: above the maximum, never below the minimum
        assert b.max() > panel[column].max() and b.min() >= min(panel[column].min(), 0.0), column
        assert (b[both] > panel[column].max()).mean() == pytest.approx(1 / 3, abs=0.02), column
        if column == "vix":  # missingness flipped both ways, gaps of one session at most
            assert b[a.isna()].notna().all() and b[a.notna()].isna().sum() >= a.notna().sum() // 8
            runs = b.isna().astype(int).groupby(b.notna().cumsum()).sum()
            assert runs.max() == 1
        else:
            assert b[a.isna()].isna().all() and b[a.notna()].notna().all(), column  # missing stays missing
    assert (out["qqq_leg_return"] > -1).all() and (out["qqq_adj_close"] > 0).all()  # the input contract holds
    within = perturb_after(panel, cutoff, seed=3, beyond_range=False)
    assert within["vix"].max() <= panel["vix"].max() and within["vix"].isna().equals(panel["vix"].isna())
    pd.testing.assert_frame_equal(out, perturb_after(panel, cutoff, seed=3, flip_missing=("vix",)))  # deterministic
    assert not out.equals(perturb_after(panel, cutoff, seed=4, flip_missing=("vix",)))
    with pytest.raises(KeyError, match="not_a_column"):
        perturb_after(panel, cutoff, flip_missing=("not_a_column",))


def test_the_harness_catches_a_full_sample_normalisation(panel, original):
    """A feature scaled by the whole sample's min and max (or decided from the whole sample's
    missingness) changes before the cutoff under the harness, and was invisible to a perturbation
    kept inside the column's range."""
    cutoff = panel.index[1000]

    def normalised(source: pd.DataFrame) -> pd.DataFrame:
        v = source["vix"]
        return pd.DataFrame(
            {
                "vix_minmax": (v - v.min()) / (v.max() - v.min()),  # full-sample min-max: a leak
                "vix_gappy": np.full(len(v), float(v.isna().mean())),  # full-sample missingness: a leak
                "vix_causal": (v - v.expanding().min()) / (v.expanding().max() - v.expanding().min()),
            },
            index=source.index,
        )

    base = normalised(panel)
    problems = compare_up_to(base, normalised(perturb_after(panel, cutoff, seed=2, flip_missing=("vix",))), cutoff)
    assert [p.split(":")[0] for p in problems] == ["column 'vix_minmax'", "column 'vix_gappy'"], problems
    assert "1001 row(s) differ" in problems[1]
    # the old harness (inside the range, missingness kept) saw neither
    old = perturb_after(panel, cutoff, seed=2, beyond_range=False)
    assert compare_up_to(base, normalised(old), cutoff) == []


def test_perturb_after_other_dtypes():
    index = decision_ts_from_dates(pd.bdate_range("2020-01-01", periods=6))
    frame = pd.DataFrame(
        {"i": np.arange(6), "n": pd.array([1, None, 3, 4, None, 6], dtype="Int64"), "b": [True, False] * 3, "c": 7.0},
        index=index,
    )
    out = perturb_after(frame, index[2], seed=0)
    assert (out["i"].iloc[3:] != frame["i"].iloc[3:]).all() and out["i"].iloc[:3].tolist() == [0, 1, 2]
    assert out["n"].iloc[4] is pd.NA and (out["n"].iloc[[3, 5]] != frame["n"].iloc[[3, 5]]).all()
    assert (out["b"].iloc[3:] == ~frame["b"].iloc[3:]).all()
    assert (out["c"].iloc[3:] != 7.0).all() and (out["c"].iloc[:3] == 7.0).all()
    assert out.dtypes.equals(frame.dtypes)


def test_compare_up_to_is_bit_for_bit():
    index = decision_ts_from_dates(pd.bdate_range("2020-01-01", periods=4))
    a = pd.DataFrame({"x": [1.0, np.nan, 0.0, 2.0], "k": pd.array([1, pd.NA, 3, 4], dtype="Int64")}, index=index)
    assert compare_up_to(a, a.copy(), index[-1]) == []  # NaN == NaN, <NA> == <NA>
    b = a.copy()
    b.loc[index[2], "x"] = -0.0  # equal as numbers, not bit for bit
    b.loc[index[3], "x"] = 2.0 + 1e-15
    assert compare_up_to(a, b, index[1]) == []
    assert compare_up_to(a, b, index[2]) == [f"column 'x': 1 row(s) differ (first: {index[2]}: 0.0 -> -0.0)"]
    c = a.copy()
    c.loc[index[1], "k"] = 5
    assert compare_up_to(a, c, index[0]) == [] and "column 'k'" in compare_up_to(a, c, index[1])[0]
    assert "columns differ" in compare_up_to(a, a[["x"]], None)[0]
    assert "rows differ" in compare_up_to(a, a.iloc[1:], None)[0]
    assert "dtype" in compare_up_to(a, a.astype({"k": "float64"}), None)[0]
    with pytest.raises(TypeError, match="indexed by timestamps"):
        compare_up_to(a.reset_index(drop=True), a.reset_index(drop=True), index[0])
