"""Utility labels: vectorised == per-session reference, a hand-computed example, tail, ties, timing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import UTILITY_COLUMNS
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.labels.utility import path_statistics, utility_labels, utility_labels_loop
from allocator_pipeline.settings import LabelSettings
from allocator_pipeline_tests.support.leakage import compare_up_to


def leg_panel(r_qqq, r_spy) -> pd.DataFrame:
    index = decision_ts_from_dates(pd.bdate_range("2021-03-01", periods=len(r_qqq)))
    return pd.DataFrame(
        {"qqq_leg_return": np.asarray(r_qqq, float), "spy_leg_return": np.asarray(r_spy, float)}, index=index
    )


def random_panel(n: int, seed: int, scale: float = 0.015) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r_q = rng.normal(5e-4, scale, n)
    return leg_panel(r_q, 0.7 * r_q + rng.normal(2e-4, scale / 2, n))


def assert_identical(a: tuple[pd.DataFrame, pd.DataFrame], b: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    assert compare_up_to(a[0], b[0], None) == []
    assert compare_up_to(a[1], b[1], None) == []


@pytest.mark.parametrize(
    "horizon, lambda_dd, lambda_tc, costs, baseline",
    [
        (1, 0.0, 0.0, CostModel(0, 0, 0), 0.5),
        (5, 1.0, 1.0, CostModel(), 0.5),
        (20, 2.5, 10.0, CostModel(5, 5, 50), 0.3),
        (7, 0.3, 50.0, CostModel(100, 100, 1000), 1.0),
    ],
)
def test_vectorised_equals_loop_reference(horizon, lambda_dd, lambda_tc, costs, baseline):
    panel = random_panel(160, seed=horizon)
    s = LabelSettings(horizon=horizon, lambda_dd=lambda_dd, lambda_tc=lambda_tc, baseline_weight=baseline)
    assert_identical(utility_labels(panel, s, costs), utility_labels_loop(panel, s, costs))


@hsettings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 45),
    horizon=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    lambda_dd=st.floats(0, 50),
    lambda_tc=st.floats(0, 50),
    fee=st.floats(0, 100),
    impact=st.floats(0, 1000),
    baseline=st.sampled_from([0.0, 0.25, 0.5, 0.8, 1.0]),
    scale=st.sampled_from([0.0, 0.001, 0.03]),
)
def test_vectorised_equals_loop_property(n, horizon, seed, lambda_dd, lambda_tc, fee, impact, baseline, scale):
    panel = random_panel(n, seed, scale)
    s = LabelSettings(horizon=horizon, lambda_dd=lambda_dd, lambda_tc=lambda_tc, baseline_weight=baseline)
    costs = CostModel(fee, fee / 2, impact)
    assert_identical(utility_labels(panel, s, costs), utility_labels_loop(panel, s, costs))


def test_hand_computed_three_session_example():
    # rows 1..3 are the 3 sessions after decision 0: QQQ +10%, -20%, +5%; SPY flat
    panel = leg_panel([0.0, 0.10, -0.20, 0.05], [0.0, 0.0, 0.0, 0.0])
    s = LabelSettings(horizon=3, lambda_dd=1.0, lambda_tc=1.0, baseline_weight=0.5)
    labels, utilities = utility_labels(panel, s, CostModel(fee_bps=1, slippage_bps=2, impact_bps=5))
    # w = 1: path 1.10, 0.88, 0.924 -> future_return -0.076, drawdown 1 - 0.88/1.10 = 0.2
    #        turnover from 0.5: traded 2*0.5 = 1.0 -> cost 1.0*3/1e4 + 5*1.0^2/1e4 = 8e-4
    assert utilities["u_100"].iloc[0] == pytest.approx(-0.076 - 0.2 - 8e-4, abs=1e-14)
    # w = 0.5: path 1.05, 0.945, 0.968625 -> return -0.031375, drawdown 1 - 0.945/1.05 = 0.1, no cost
    assert utilities["u_050"].iloc[0] == pytest.approx(-0.031375 - 0.1, abs=1e-14)
    # w = 0: flat path -> return 0, drawdown 0, cost 8e-4
    assert utilities["u_000"].iloc[0] == pytest.approx(-8e-4, abs=1e-15)
    assert labels["best_weight"].iloc[0] == 0.0 and labels["label_class"].iloc[0] == 0
    assert labels["best_utility"].iloc[0] == utilities["u_000"].iloc[0]


def test_drawdown_is_zero_on_a_rising_path_and_the_grid_is_ordered():
    panel = leg_panel([0.0, 0.01, 0.02, 0.01], [0.0, 0.005, 0.004, 0.001])
    labels, utilities = utility_labels(panel, LabelSettings(horizon=3, lambda_dd=5.0, lambda_tc=0.0), CostModel())
    expected = (1.01 * 1.02 * 1.01 - 1.0) - 0.0  # w = 1, no drawdown penalty on a rising path
    assert utilities["u_100"].iloc[0] == pytest.approx(expected, abs=1e-14)
    assert labels["best_weight"].iloc[0] == 1.0 and labels["label_class"].iloc[0] == 10
    assert list(utilities.columns) == UTILITY_COLUMNS


def test_last_h_rows_unlabelled():
    panel = random_panel(50, seed=1)
    labels, utilities = utility_labels(panel, LabelSettings(horizon=7), CostModel())
    assert str(labels["label_class"].dtype) == "Int64"
    assert labels["label_class"].isna().tolist() == [False] * 43 + [True] * 7
    assert labels["best_weight"].iloc[-7:].isna().all() and labels["best_utility"].iloc[-7:].isna().all()
    assert utilities.iloc[-7:].isna().all().all() and utilities.iloc[:-7].notna().all().all()
    assert set(labels["label_class"].dropna().unique()) <= set(range(11))
    short = random_panel(5, seed=2)
    few, _ = utility_labels(short, LabelSettings(horizon=7), CostModel())
    assert few["label_class"].isna().all() and len(few) == 5


def test_ties_go_to_the_lower_weight():
    r = [0.0, 0.01, -0.02, 0.015, 0.0, 0.01]
    panel = leg_panel(r, r)  # identical legs: every weight has the same path
    free, _ = utility_labels(panel, LabelSettings(horizon=2), CostModel(0, 0, 0))
    assert free["best_weight"].iloc[:4].tolist() == [0.0] * 4
    reference, _ = utility_labels_loop(panel, LabelSettings(horizon=2), CostModel(0, 0, 0))
    assert reference["best_weight"].iloc[:4].tolist() == [0.0] * 4  # the reference breaks ties alike
    costly, u = utility_labels(
        panel, LabelSettings(horizon=2, baseline_weight=0.55, lambda_tc=1.0, class_rule="nearest"), CostModel()
    )
    assert costly["best_weight"].iloc[:4].tolist() == [0.55] * 4  # staying put is free
    assert costly["label_class"].iloc[0] == 5  # 0.55 is half way between buckets 0.5 and 0.6: lower
    assert (u.iloc[0].drop("u_055") < u["u_055"].iloc[0]).all()
    # bucket_argmax (the default rule) picks among the 11 bucket utilities themselves: 0.5 and 0.6
    # cost the same move from 0.55, so the tie goes to the lower bucket here too, by utility
    by_bucket, _ = utility_labels(
        panel, LabelSettings(horizon=2, baseline_weight=0.55, lambda_tc=1.0, class_rule="bucket_argmax"), CostModel()
    )
    assert by_bucket["label_class"].iloc[0] == 5


def test_bucket_argmax_class_is_the_best_bucket_and_symmetric():
    """Penalty-free labels (the defaults): the class is the bucket with the highest utility, so a
    day whose best grid weight is 0.05 (an odd grid weight) is not pushed to SPY by rounding."""
    panel = random_panel(120, seed=3)
    labels, utilities = utility_labels(panel, LabelSettings(horizon=5), CostModel())
    rows = labels["label_class"].notna()
    buckets = utilities.loc[rows, [f"u_{k * 10:03d}" for k in range(11)]].to_numpy()
    assert np.array_equal(labels.loc[rows, "label_class"].to_numpy(dtype=int), buckets.argmax(axis=1))
    mirrored, _ = utility_labels(
        panel.rename(columns={"qqq_leg_return": "spy_leg_return", "spy_leg_return": "qqq_leg_return"}),
        LabelSettings(horizon=5, lambda_dd=0.0),
        CostModel(),
    )
    plain, _ = utility_labels(panel, LabelSettings(horizon=5, lambda_dd=0.0), CostModel())
    both = plain["label_class"].notna()
    assert (plain.loc[both, "label_class"] + mirrored.loc[both, "label_class"] == 10).mean() > 0.99


def test_turnover_cost_follows_the_previous_label():
    panel = random_panel(80, seed=5, scale=0.002)
    sticky, _ = utility_labels(
        panel,
        LabelSettings(horizon=5, lambda_tc=50.0, baseline_weight=0.35, class_rule="nearest"),
        CostModel(100, 100, 1000),
    )
    assert (sticky["best_weight"].dropna() == 0.35).all()  # moving costs more than any small return
    assert sticky["label_class"].dropna().eq(3).all()  # 0.35 -> nearest bucket, ties to the lower (0.3)


def test_labels_read_exactly_rows_d_plus_1_to_d_plus_h():
    panel = random_panel(60, seed=9)
    d, h = 20, 5
    # without turnover cost a session's utilities read exactly rows d+1 .. d+H
    s0 = LabelSettings(horizon=h, lambda_tc=0.0)
    _, base = utility_labels(panel, s0, CostModel())
    for row in range(d - 3, d + h + 4):
        changed = panel.copy()
        changed.iloc[row, 0] += 0.05
        _, u2 = utility_labels(changed, s0, CostModel())
        reaches = d + 1 <= row <= d + h
        assert (u2.iloc[d].to_numpy() != base.iloc[d].to_numpy()).any() == reaches, row
    # with turnover cost the w_prev chain adds earlier labels (rows <= d - 1 + H), never later rows
    s = LabelSettings(horizon=h)
    labels, utilities = utility_labels(panel, s, CostModel())
    changed = panel.copy()
    changed.iloc[d + h + 1 :, :] *= -3.0
    labels2, utilities2 = utility_labels(changed, s, CostModel())
    assert compare_up_to(labels, labels2, panel.index[d]) == []
    assert compare_up_to(utilities, utilities2, panel.index[d]) == []
    assert compare_up_to(utilities, utilities2, panel.index[d + 1]) != []


def test_bad_returns_are_refused():
    panel = random_panel(30, seed=0)
    panel.iloc[4, 1] = np.nan
    with pytest.raises(InputDataError, match="finite") as err:
        utility_labels(panel, LabelSettings(horizon=3), CostModel())
    assert err.value.column == "spy_leg_return" and err.value.row == str(panel.index[4])
    with pytest.raises(InputDataError, match="no leg return column"):
        utility_labels(panel.drop(columns="qqq_leg_return"), LabelSettings(horizon=3), CostModel())


def test_the_output_frames_are_float_on_decision_ts_and_a_missing_leg_is_named():
    panel = random_panel(8, seed=1).rename_axis(None)
    labels, utilities = utility_labels(panel, LabelSettings(horizon=3), CostModel())
    assert labels.index.name == "decision_ts" and utilities.index.name == "decision_ts"
    assert labels["best_weight"].dtype == float and labels["best_utility"].dtype == float
    assert set(utilities.dtypes.astype(str)) == {"float64"} and utilities.iloc[-3:].isna().all().all()
    with pytest.raises(InputDataError, match=r"^column 'spy_leg_return': the leg panel has no leg return column$"):
        utility_labels(panel.drop(columns="spy_leg_return"), LabelSettings(horizon=3), CostModel())


def test_path_statistics_do_not_depend_on_the_chunk():
    """Chunks of 2 sessions (several chunks, the last one partial) give the one-chunk figures."""
    panel = random_panel(13, seed=2)
    r_q, r_s = panel["qqq_leg_return"].to_numpy(), panel["spy_leg_return"].to_numpy()
    whole = path_statistics(r_q, r_s, 3)
    for got, expected in zip(path_statistics(r_q, r_s, 3, chunk=2), whole, strict=True):
        np.testing.assert_array_equal(got, expected)
