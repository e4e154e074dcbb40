"""Walk-forward assembly: one continuous out-of-sample book over all folds, and its metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.allocation.policy import allocator_path
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.core.evaluation.walk_forward import STRATEGIES, assemble_walk_forward, strategy_frame
from allocator_pipeline.settings import Settings

SETTINGS = Settings()
COSTS = CostModel.from_settings(SETTINGS.costs)
REQUIRED = [
    "realized_ts",
    "fold",
    "w_raw",
    "w_smoothed",
    "w_final",
    "exposure",
    "qqq_leg_return",
    "spy_leg_return",
    "cash_return",
    "traded",
    "cost",
    "ret_allocator",
    "ret_baseline",
    "ret_qqq_only",
    "ret_spy_only",
    "ret_inverse_vol",
    "ret_oracle",
]


def _world(n: int = 200, seed: int = 3):
    rng = np.random.default_rng(seed)
    idx = decision_ts_from_dates(pd.bdate_range("2019-10-01", periods=n))
    context = pd.DataFrame(
        {
            "qqq_leg_return": rng.normal(0.0006, 0.018, n),
            "spy_leg_return": rng.normal(0.0004, 0.011, n),
            "cash_return": np.full(n, 0.00008),
        },
        index=idx,
    )
    labels = pd.DataFrame({"best_weight": np.round(rng.integers(0, 21, n) * 0.05, 2)}, index=idx)
    labels.iloc[-20:] = np.nan  # the last H rows have no label
    m = rng.normal(0.0, 0.01, (11, 11))
    prior = rng.dirichlet(np.ones(11))
    paths = {}
    for fold, (a, b) in {"2020b": (140, 200), "2020a": (100, 140), "2019": (60, 100)}.items():
        proba = rng.dirichlet(np.ones(11) * 0.5, b - a)
        paths[fold] = allocator_path(proba, m, context.iloc[a:b], SETTINGS, w_prev0=0.5, prior=prior)
    return context, labels, paths


def test_oos_daily_is_one_continuous_book():
    context, labels, paths = _world()
    oos, metrics = assemble_walk_forward(paths, context, labels, SETTINGS)
    assert all(c in oos.columns for c in REQUIRED)
    assert list(oos.index) == list(context.index[60:199])  # the last decision has no next session
    assert list(oos["realized_ts"]) == list(context.index[61:200])
    assert oos["fold"].tolist() == ["2019"] * 40 + ["2020a"] * 40 + ["2020b"] * 59
    np.testing.assert_array_equal(oos["qqq_leg_return"], context["qqq_leg_return"].iloc[61:200])

    # The first decision trades from the baseline book (0.5 / 0.5, fully invested).
    q0, s0 = oos["exposure"].iloc[0] * oos["w_final"].iloc[0], oos["exposure"].iloc[0] * (1 - oos["w_final"].iloc[0])
    assert oos["traded"].iloc[0] == pytest.approx(abs(q0 - 0.5) + abs(s0 - 0.5))

    # Across a fold boundary the book is the previous fold's last targets drifted by one session.
    i = oos.index.get_loc(paths["2020a"].index[0])
    prev = oos.iloc[i - 1]
    q_prev, s_prev = prev["exposure"] * prev["w_final"], prev["exposure"] * (1 - prev["w_final"])
    gross_prev = prev["ret_allocator"] + prev["cost"]
    q_drift = q_prev * (1 + prev["qqq_leg_return"]) / (1 + gross_prev)
    s_drift = s_prev * (1 + prev["spy_leg_return"]) / (1 + gross_prev)
    row = oos.iloc[i]
    q, s = row["exposure"] * row["w_final"], row["exposure"] * (1 - row["w_final"])
    assert row["traded"] == pytest.approx(abs(q - q_drift) + abs(s - s_drift), rel=1e-12)
    assert row["cost"] == pytest.approx(float(COSTS.cost(row["traded"])), rel=1e-12)

    # Baselines on the same sessions and costs, from the same initial book.
    assert oos["ret_qqq_only"].iloc[0] == pytest.approx(oos["qqq_leg_return"].iloc[0] - float(COSTS.cost(1.0)))
    np.testing.assert_allclose(oos["ret_qqq_only"].iloc[1:], oos["qqq_leg_return"].iloc[1:], atol=1e-17)
    np.testing.assert_allclose(oos["ret_spy_only"].iloc[1:], oos["spy_leg_return"].iloc[1:], atol=1e-17)
    assert oos["ret_baseline"].iloc[0] == pytest.approx(
        0.5 * (oos["qqq_leg_return"].iloc[0] + oos["spy_leg_return"].iloc[0])
    )
    expected_oracle = labels["best_weight"].reindex(oos.index).ffill()
    np.testing.assert_array_equal(oos["w_oracle"], expected_oracle)
    assert set(metrics["strategies"]) == set(STRATEGIES)


def test_metrics_are_recomputable_from_oos_daily():
    context, labels, paths = _world(seed=8)
    oos, metrics = assemble_walk_forward(paths, context, labels, SETTINGS)
    for s in STRATEGIES:
        assert metrics["strategies"][s] == performance_metrics(strategy_frame(oos, s), SETTINGS.report.notional)
    r = oos["ret_allocator"].to_numpy()
    alloc = metrics["strategies"]["allocator"]
    assert alloc["cagr"] == pytest.approx(np.prod(1 + r) ** (252 / len(r)) - 1)
    assert alloc["turnover"] == pytest.approx(oos["traded"].sum() * 252 / len(r))
    assert metrics["strategies"]["inverse_vol"]["turnover"] == pytest.approx(
        oos["traded_inverse_vol"].sum() * 252 / len(r)
    )
    for fold in ("2019", "2020a", "2020b"):
        rows = oos[oos["fold"] == fold]
        fr = rows["ret_allocator"].to_numpy()
        got = metrics["folds"][fold]["allocator"]
        assert got["n_sessions"] == len(rows)
        assert got["cagr"] == pytest.approx(np.prod(1 + fr) ** (252 / len(fr)) - 1)
        assert got["cost_drag"] == pytest.approx(rows["cost"].sum() * 252 / len(fr))


def test_walk_forward_is_deterministic_and_checks_fold_windows():
    context, labels, paths = _world(seed=4)
    a, ma = assemble_walk_forward(paths, context, labels, SETTINGS)
    b, mb = assemble_walk_forward(dict(reversed(list(paths.items()))), context, labels, SETTINGS)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert ma == mb
    gap = {k: v for k, v in paths.items() if k != "2020a"}
    with pytest.raises(InputDataError, match="adjacent"):
        assemble_walk_forward(gap, context, labels, SETTINGS)
    overlap = dict(paths, extra=paths["2019"].iloc[-5:])
    with pytest.raises(InputDataError, match="adjacent"):
        assemble_walk_forward(overlap, context, labels, SETTINGS)
    broken = dict(paths, **{"2019": paths["2019"].drop(columns=["w_raw"])})
    with pytest.raises(InputDataError, match="w_raw"):
        assemble_walk_forward(broken, context, labels, SETTINGS)
