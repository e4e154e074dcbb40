"""Output policy: utility matrix, expected utility, smoothing/cap, and the shared allocator path."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from allocator_pipeline.core.allocation.path import Segment, continue_path
from allocator_pipeline.core.allocation.policy import (
    EU_COLUMNS,
    allocator_path,
    class_prior,
    expected_utility,
    held_weight,
    policy_with_turnover,
    raw_weight,
    sized_weight,
    smooth_and_cap,
    utility_matrix,
)
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import BUCKETS, PROBA_COLUMNS, UTILITY_COLUMNS
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.settings import EnvelopeSettings, PolicySettings, Settings


def _index(n: int, start: str = "2021-01-04") -> pd.DatetimeIndex:
    return decision_ts_from_dates(pd.bdate_range(start, periods=n))


def _context(n: int, seed: int = 0, drift: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ctx = pd.DataFrame(
        {
            "qqq_leg_return": rng.normal(0.0003, 0.02, n),
            "spy_leg_return": rng.normal(0.0002, 0.012, n),
            "cash_return": np.full(n, 0.0001),
        },
        index=_index(n),
    )
    if drift:
        ctx["qqq_drift_psi"] = rng.uniform(0.0, 0.5, n)
        ctx["spy_drift_psi"] = rng.uniform(0.0, 0.5, n)
    return ctx


# ----------------------------------------------------------------------------- utility matrix


def _utility_table() -> tuple[pd.DataFrame, pd.Series]:
    idx = _index(5)
    table = pd.DataFrame(99.0, index=idx, columns=UTILITY_COLUMNS)  # odd grid columns: never used
    base = np.array([0.10, 0.30, -0.20, 0.05, np.nan])  # per-row level; the last row is unlabelled
    for j in range(11):
        table[UTILITY_COLUMNS[2 * j]] = base + 0.01 * j
    table.iloc[4] = np.nan
    classes = pd.Series(pd.array([0, 0, 3, 10, pd.NA], dtype="Int64"), index=idx)
    return table, classes


def test_utility_matrix_hand_example_with_missing_classes():
    table, classes = _utility_table()
    m = utility_matrix(table, classes)
    assert m.shape == (11, 11)
    for j in range(11):
        assert m[j, 0] == pytest.approx((0.10 + 0.30) / 2 + 0.01 * j)
        assert m[j, 3] == pytest.approx(-0.20 + 0.01 * j)
        assert m[j, 10] == pytest.approx(0.05 + 0.01 * j)
        unconditional = (0.10 + 0.30 - 0.20 + 0.05) / 4 + 0.01 * j  # classes never seen
        for k in (1, 2, 4, 5, 6, 7, 8, 9):
            assert m[j, k] == pytest.approx(unconditional)


def test_utility_matrix_refuses_no_labels_and_bad_class():
    table, classes = _utility_table()
    with pytest.raises(InputDataError, match="no labelled row"):
        utility_matrix(table, pd.Series(pd.array([pd.NA] * 5, dtype="Int64"), index=table.index))
    bad = classes.copy()
    bad.iloc[2] = 11
    with pytest.raises(InputDataError, match="label_class"):
        utility_matrix(table, bad)


def test_expected_utility_is_probability_weighted_column_mix():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(11, 11))
    p = np.zeros((2, 11))
    p[0, 4] = 1.0
    p[1, 2], p[1, 9] = 0.25, 0.75
    eu = expected_utility(p, m)
    np.testing.assert_allclose(eu[0], m[:, 4])
    np.testing.assert_allclose(eu[1], 0.25 * m[:, 2] + 0.75 * m[:, 9])
    with pytest.raises(InputDataError):
        expected_utility(np.ones((3, 10)), m)


# ----------------------------------------------------------------------------- smoothing and cap


def test_smooth_and_cap_hand_example():
    out = smooth_and_cap(np.array([1.0, 1.0, 0.0, 0.4]), alpha=0.5, max_daily_change=0.1, w_prev0=0.5)
    # 0.5*0.5+0.5*1 = 0.75 -> capped 0.6; 0.8 -> 0.7; 0.35 -> 0.6; 0.5*0.6+0.5*0.4 = 0.5 (step 0.1)
    np.testing.assert_allclose(out, [0.6, 0.7, 0.6, 0.5])


def test_the_no_trade_band_skips_small_steps_and_stops_large_ones_at_its_edge():
    """By hand, no smoothing, band 0.05: 0.5 -> 0.53 is within it (held), 0.5 -> 0.7 stops at 0.65,
    then 0.65 -> 0.62 is held, 0.65 -> 0.2 stops at 0.25; the cap 0.3 then limits a larger move."""
    out = smooth_and_cap(np.array([0.53, 0.7, 0.62, 0.2]), alpha=0.0, max_daily_change=1.0, w_prev0=0.5, band=0.05)
    np.testing.assert_allclose(out, [0.5, 0.65, 0.65, 0.25], atol=1e-15)
    capped = smooth_and_cap(np.array([1.0]), alpha=0.0, max_daily_change=0.3, w_prev0=0.0, band=0.05)
    np.testing.assert_allclose(capped, [0.3], atol=1e-15)  # the band first (0.95), then the cap
    np.testing.assert_allclose(smooth_and_cap(np.array([0.6, 0.4]), 0.5, 1.0, 0.5, band=0.0), [0.55, 0.475], atol=1e-15)


@hsettings(max_examples=60, deadline=None)
@given(
    raw=st.lists(st.sampled_from(list(BUCKETS)), min_size=1, max_size=40),
    alpha=st.floats(0.0, 0.99),
    cap=st.floats(0.001, 1.0),
    w0=st.floats(0.0, 1.0),
)
def test_smooth_and_cap_properties(raw, alpha, cap, w0):
    w = smooth_and_cap(np.array(raw), alpha, cap, w0)
    assert ((w >= 0.0) & (w <= 1.0)).all()
    prev = np.concatenate([[w0], w[:-1]])
    assert (np.abs(w - prev) <= cap + 1e-12).all()
    lo, hi = np.minimum(prev, raw), np.maximum(prev, raw)
    assert ((w >= lo - 1e-12) & (w <= hi + 1e-12)).all()  # between yesterday and today's target


@hsettings(max_examples=30, deadline=None)
@given(raw=st.lists(st.sampled_from(list(BUCKETS)), min_size=1, max_size=30), w0=st.floats(0.0, 1.0))
def test_no_smoothing_and_huge_cap_returns_raw(raw, w0):
    np.testing.assert_allclose(smooth_and_cap(np.array(raw), 0.0, 1.0, w0), raw, atol=1e-15)


# ----------------------------------------------------------------------------- allocator path


def _settings(sizing: str = "argmax", **env) -> Settings:
    return Settings(
        policy=PolicySettings(alpha=0.3, max_daily_change=0.15, sizing=sizing),
        envelope=EnvelopeSettings(**{"dd_guard": True, "vol_scaling": True, **env}),
    )


def test_allocator_path_without_smoothing_or_envelope_trades_argmax():
    n = 30
    ctx = _context(n, seed=1)
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(11), n)
    m = rng.normal(size=(11, 11))
    s = Settings(
        policy=PolicySettings(
            alpha=0.0, no_trade_band=0.0, max_daily_change=1.0, turnover_penalty=0.0, sizing="argmax"
        ),
        envelope=EnvelopeSettings(dd_guard=False, vol_scaling=False, drift_throttle=False),
    )
    path = allocator_path(proba, m, ctx, s, w_prev0=0.5)
    expected = BUCKETS[np.argmax(proba @ m.T, axis=1)]
    np.testing.assert_allclose(path["w_raw"], expected)
    np.testing.assert_allclose(path["w_final"], expected)
    np.testing.assert_allclose(path[EU_COLUMNS].to_numpy(), proba @ m.T)
    assert (path["exposure"] == 1.0).all()


def test_argmax_ties_go_to_the_lower_bucket():
    m = np.zeros((11, 11))
    m[3, :] = 1.0
    m[7, :] = 1.0
    ctx = _context(2, drift=False)
    path = allocator_path(np.full((2, 11), 1 / 11), m, ctx, _settings(), w_prev0=0.3)
    assert (path["w_raw"] == 0.3).all()


@pytest.mark.parametrize("penalty", [0.0, 5.0])
def test_exact_ties_go_to_the_lower_bucket_whatever_the_weight_held(penalty):
    """Buckets 0.3 and 0.7 tie exactly on expected utility and, on the first row, on the charge
    from the weight held, 0.5 (flat legs: both 0.2 away): nothing but the rule breaks that tie,
    and it picks 0.3; later rows hold 0.3, so the charge (when there is one) agrees with the rule.
    A rule sending ties to the higher bucket gives 0.7 from the first row on."""
    m = np.zeros((11, 11))
    m[3, :] = 1.0
    m[7, :] = 1.0
    ctx = _context(4, drift=False)
    ctx[["qqq_leg_return", "spy_leg_return"]] = 0.0
    s = Settings(
        policy=PolicySettings(
            alpha=0.0,
            no_trade_band=0.0,
            max_daily_change=1.0,
            turnover_penalty=penalty,
            hold_out_of_range=False,
            sizing="argmax",
        ),
        envelope=EnvelopeSettings(dd_guard=False, vol_scaling=False, drift_throttle=False),
    )
    path = allocator_path(np.full((4, 11), 1 / 11), m, ctx, s, w_prev0=0.5)
    assert path["w_raw"].tolist() == [0.3, 0.3, 0.3, 0.3]
    # the mirror image: bucket 0.3 is worth a hair less, so 0.7 wins (the rule is a tie rule only)
    m[3, :] = 1.0 - 1e-12
    assert allocator_path(np.full((1, 11), 1 / 11), m, ctx.iloc[:1], s, w_prev0=0.5)["w_raw"].tolist() == [0.7]


@pytest.mark.parametrize("sizing", ["argmax", "expected_weight"])
@pytest.mark.parametrize("lag", [0, 1])
def test_allocator_path_continued_from_state_equals_full_path(lag, sizing):
    """The production continuation (path.continue_path, state_after) gives the rows of one long path,
    cut once and then stepped one session at a time like the live decision, with either sizing."""
    n, cut = 90, 55
    ctx = _context(n, seed=5)
    rng = np.random.default_rng(5)
    proba = pd.DataFrame(rng.dirichlet(np.ones(11) * 0.3, n), index=ctx.index, columns=PROBA_COLUMNS)
    m = rng.normal(size=(11, 11))
    prior = rng.dirichlet(np.ones(11))
    s = _settings(sizing, dd_soft=0.02, dd_hard=0.04, vol_target=0.12, vol_window=10)
    s = s.model_copy(update={"backtest": s.backtest.model_copy(update={"execution_lag": lag})})
    full, _ = continue_path(Segment("m", proba, m, s, prior), ctx, None)
    assert full["exposure_dd"].lt(1.0).any() and full["exposure_vol"].lt(1.0).any()  # stages active
    head, state = continue_path(Segment("m", proba.iloc[:cut], m, s, prior), ctx, None)
    tail, _ = continue_path(Segment("m", proba.iloc[cut:], m, s, prior), ctx, state)
    pd.testing.assert_frame_equal(pd.concat([head, tail]), full, check_exact=True)

    days = [head]
    for i in range(cut, cut + 6):
        day, state = continue_path(Segment("m", proba.iloc[i : i + 1], m, s, prior), ctx, state)
        days.append(day)
    pd.testing.assert_frame_equal(pd.concat(days), full.iloc[: cut + 6], check_exact=True)


def test_allocator_path_refuses_misaligned_probabilities():
    ctx = _context(5)
    with pytest.raises(InputDataError, match="shape"):
        allocator_path(np.full((4, 11), 1 / 11), np.zeros((11, 11)), ctx, _settings(), 0.5)


def test_turnover_penalty_charges_the_move_from_the_weight_held():
    """policy.turnover_penalty: w_raw maximises EU minus lambda * cost(2 |B_j - held|), held = the
    previous weight drifted through the session's leg returns; checked row by row by hand."""
    n = 40
    ctx = _context(n, seed=4)
    rng = np.random.default_rng(4)
    proba = rng.dirichlet(np.ones(11), n)
    m = rng.normal(scale=0.002, size=(11, 11))
    lam = 10.0
    s = Settings(
        policy=PolicySettings(
            alpha=0.0, no_trade_band=0.0, max_daily_change=1.0, turnover_penalty=lam, sizing="argmax"
        ),
        envelope=EnvelopeSettings(dd_guard=False, vol_scaling=False, drift_throttle=False),
    )
    path = allocator_path(proba, m, ctx, s, w_prev0=0.5)
    costs = CostModel.from_settings(s.costs)
    prev = 0.5
    for i in range(n):
        q = prev * (1 + ctx["qqq_leg_return"].iloc[i])
        held = q / (q + (1 - prev) * (1 + ctx["spy_leg_return"].iloc[i]))
        net = proba[i] @ m.T - lam * costs.rebalance_cost(BUCKETS, held)
        assert path["w_raw"].iloc[i] == BUCKETS[np.argmax(net)], i
        prev = path["w_smoothed"].iloc[i]
    free = allocator_path(
        proba,
        m,
        ctx,
        s.model_copy(
            update={"policy": PolicySettings(alpha=0.0, no_trade_band=0.0, turnover_penalty=0.0, sizing="argmax")}
        ),
        w_prev0=0.5,
    )
    assert np.abs(np.diff(path["w_final"])).sum() < np.abs(np.diff(free["w_final"])).sum()  # it trades less


@pytest.mark.parametrize("lam", [0.0, 5.0])
def test_out_of_range_sessions_hold_the_baseline_weight(lam):
    """policy.hold_out_of_range: on a session flagged out of range, w_raw is the baseline weight
    (smoothing and the envelope then apply as usual); every other session takes the policy's
    argmax, which the same path without the flags reproduces; switched off, the flags change
    nothing."""
    n = 30
    ctx = _context(n, seed=2)
    rng = np.random.default_rng(2)
    proba = rng.dirichlet(np.ones(11) * 0.2, n)
    m = rng.normal(scale=0.01, size=(11, 11))
    flags = np.zeros(n, dtype=bool)
    flags[[3, 4, 5, 17]] = True
    s = Settings(
        policy=PolicySettings(
            alpha=0.0, no_trade_band=0.0, max_daily_change=1.0, turnover_penalty=lam, sizing="argmax"
        ),
        envelope=EnvelopeSettings(dd_guard=False, vol_scaling=False, drift_throttle=False),
    )
    held = allocator_path(proba, m, ctx, s, w_prev0=0.5, out_of_range=flags)
    free = allocator_path(proba, m, ctx, s, w_prev0=0.5)
    assert (held["w_raw"][flags] == s.labels.baseline_weight).all()
    assert held["out_of_range"].tolist() == flags.tolist() and not free["out_of_range"].any()
    assert (free["w_raw"][flags] != s.labels.baseline_weight).any()  # the flags did change something
    if lam == 0.0:  # without the turnover charge, rows do not depend on each other
        pd.testing.assert_series_equal(held["w_raw"][~flags], free["w_raw"][~flags])
    else:  # the first flagged row follows an unflagged history, so it is decided as before up to there
        pd.testing.assert_frame_equal(
            held.iloc[:3].drop(columns="out_of_range"), free.iloc[:3].drop(columns="out_of_range")
        )
    off = s.model_copy(update={"policy": s.policy.model_copy(update={"hold_out_of_range": False})})
    pd.testing.assert_series_equal(allocator_path(proba, m, ctx, off, 0.5, out_of_range=flags)["w_raw"], free["w_raw"])
    with pytest.raises(InputDataError, match="out_of_range"):
        allocator_path(proba, m, ctx, s, 0.5, out_of_range=flags[:-1])


def test_expected_weight_sizing_holds_the_baseline_on_the_prior_and_tilts_in_proportion_to_belief():
    """policy.sizing 'expected_weight': probabilities equal to the class prior hold the baseline
    (a model that learnt nothing does not bet); mass moved toward bucket 1.0 by a share q raises
    w_raw by kappa * q * (1 - centre) exactly, by hand; the result is clipped to [0, 1]; without a
    prior the path is refused with the reason."""
    rng = np.random.default_rng(3)
    prior = rng.dirichlet(np.ones(11))
    centre = float(prior @ BUCKETS)
    q = np.array([0.0, 0.05, 0.1, 0.2])
    proba = (1 - q)[:, None] * prior[None, :] + q[:, None] * np.eye(11)[10][None, :]
    n = len(q)
    ctx = _context(n, seed=3)
    s = Settings(
        policy=PolicySettings(
            alpha=0.0, no_trade_band=0.0, max_daily_change=1.0, sizing="expected_weight", sizing_gain=2.0
        ),
        envelope=EnvelopeSettings(dd_guard=False, vol_scaling=False, drift_throttle=False),
    )
    path = allocator_path(proba, rng.normal(size=(11, 11)), ctx, s, w_prev0=0.5, prior=prior)
    expected = np.clip(0.5 + 2.0 * q * (1.0 - centre), 0, 1)
    np.testing.assert_allclose(path["w_raw"], expected, atol=1e-12)
    assert path["w_raw"].iloc[0] == pytest.approx(0.5, abs=1e-12)
    assert (np.diff(path["w_raw"]) > 0).all()
    big = s.model_copy(update={"policy": s.policy.model_copy(update={"sizing_gain": 10.0})})
    assert allocator_path(proba, np.zeros((11, 11)), ctx, big, 0.5, prior=prior)["w_raw"].max() == 1.0
    with pytest.raises(InputDataError, match="class prior"):
        allocator_path(proba, np.zeros((11, 11)), ctx, s, w_prev0=0.5)


def test_class_prior_counts_the_labelled_rows():
    labels = pd.Series([0, 0, 10, pd.NA, 5], dtype="Int64")
    prior = class_prior(labels)
    assert prior.sum() == pytest.approx(1.0)
    assert prior[0] == 0.5 and prior[10] == 0.25 and prior[5] == 0.25
    with pytest.raises(InputDataError, match="no labelled row"):
        class_prior(pd.Series([pd.NA], dtype="Int64"))


# ----------------------------------------------------------------------------- contract details, by hand

OFF = EnvelopeSettings(dd_guard=False, vol_scaling=False, drift_throttle=False)


def test_utility_matrix_errors_name_the_column_row_and_value():
    """Bad input gets an error naming the column (the first missing one), and for a bad class the
    session and the value: a class above 10, below 0, or not an integer."""
    table, classes = _utility_table()
    with pytest.raises(InputDataError, match=r"^column 'u_020': utility table lacks columns$"):
        utility_matrix(table.drop(columns=["u_020", "u_030"]), classes)
    none = pd.Series(pd.array([pd.NA] * 5, dtype="Int64"), index=table.index)
    with pytest.raises(
        InputDataError, match=r"^column 'label_class': no labelled row to build the utility matrix from$"
    ):
        utility_matrix(table, none)
    for row, value in ((2, 12.0), (3, -1.0), (2, 2.5)):
        bad = classes.astype(float)  # labelled rows 0, 1 are class 0: a valid class the check must pass over
        bad.iloc[row] = value
        expected = f"column 'label_class', row {table.index[row]}, value {value}: class must be an integer in 0..10"
        with pytest.raises(InputDataError, match=f"^{re.escape(expected)}$"):
            utility_matrix(table, bad)


def test_utility_matrix_aligns_the_classes_by_session_not_by_position():
    """The classes given in reverse order are matched to their sessions: the hand example's M."""
    table, classes = _utility_table()
    m = utility_matrix(table, classes.iloc[::-1])
    for j in range(11):
        assert m[j, 0] == pytest.approx((0.10 + 0.30) / 2 + 0.01 * j)
        assert m[j, 3] == pytest.approx(-0.20 + 0.01 * j)
        assert m[j, 10] == pytest.approx(0.05 + 0.01 * j)


def test_class_prior_has_a_share_for_every_class_even_unseen_high_ones():
    prior = class_prior(pd.Series([0, 0, 5], dtype="Int64"))
    assert prior.shape == (11,) and prior[0] == pytest.approx(2 / 3) and prior[5] == pytest.approx(1 / 3)
    assert prior[6:].tolist() == [0.0] * 5
    with pytest.raises(InputDataError, match=r"^column 'label_class': no labelled row to take the class prior from$"):
        class_prior(pd.Series([pd.NA], dtype="Int64"))


def test_sized_weight_refuses_a_prior_of_the_wrong_shape_or_not_finite():
    proba = np.full((1, 11), 1 / 11)
    with pytest.raises(
        InputDataError, match=r"^column 'class_prior': expected a class prior of shape \(11,\), got \(10,\)$"
    ):
        sized_weight(proba, np.full(10, 0.1), 0.5, 1.0)
    prior = np.full(11, 1 / 11)
    prior[3] = np.nan
    with pytest.raises(InputDataError, match="class prior"):
        sized_weight(proba, prior, 0.5, 1.0)


def test_raw_weight_says_what_to_do_without_a_prior_and_returns_nothing_for_no_rows():
    expected = Settings(policy=PolicySettings(sizing="expected_weight"))
    argmax = Settings(policy=PolicySettings(sizing="argmax"))
    message = (
        "column 'class_prior': policy.sizing 'expected_weight' needs the model's class prior "
        "(policy.json 'class_prior'): retrain the model, or set policy.sizing = 'argmax'"
    )
    with pytest.raises(InputDataError, match=f"^{re.escape(message)}$"):
        raw_weight(np.full((1, 11), 1 / 11), np.zeros((1, 11)), None, expected)
    empty = np.empty((0, 11))
    for s in (expected, argmax):
        out = raw_weight(empty, empty, np.full(11, 1 / 11), s)
        assert out.shape == (0,) and out.dtype == float


def test_expected_utility_error_gives_both_shapes():
    with pytest.raises(
        InputDataError, match=r"^expected proba \(n, 11\) and M \(11, 11\), got \(3, 10\) and \(11, 11\)$"
    ):
        expected_utility(np.ones((3, 10)), np.zeros((11, 11)))


def test_held_weight_is_the_drifted_qqq_share_by_hand():
    """0.5 / 0.5 with QQQ +10% and SPY +20%: 0.55 / (0.55 + 0.60); 0.2 / 0.8 with QQQ -50% and SPY
    -20%: 0.1 / (0.1 + 0.64); a book wiped out (QQQ -100% on a 100% QQQ book) keeps its weight."""
    assert held_weight(0.5, 0.1, 0.2) == pytest.approx(0.55 / 1.15)
    assert held_weight(0.2, -0.5, -0.2) == pytest.approx(0.1 / 0.74)
    assert held_weight(1.0, -1.0, 0.3) == 1.0


def test_policy_with_turnover_has_no_band_by_default():
    """One row, no charge, no smoothing, no cap: from 0.5 straight to the best bucket (1.0); no
    band unless one is given (with 0.1 the step of 0.5 stops at 0.4)."""
    eu = np.zeros((1, 11))
    eu[0, 10] = 1.0
    zero = np.zeros(1)

    def free(w: np.ndarray, held: float) -> np.ndarray:
        return np.zeros_like(w)

    raw, w = policy_with_turnover(eu, zero, zero, free, 0.0, 1.0, 0.5)
    assert raw.tolist() == [1.0] and w.tolist() == [1.0]
    _, banded = policy_with_turnover(eu, zero, zero, free, 0.0, 1.0, 0.5, band=0.1)
    assert banded == pytest.approx([0.9])


def _one_row(settings: Settings, proba: np.ndarray, m: np.ndarray, **kw) -> pd.DataFrame:
    ctx = pd.DataFrame({"qqq_leg_return": [0.0], "spy_leg_return": [0.0], "cash_return": [0.0]}, index=_index(1))
    return allocator_path(proba, m, ctx, settings, w_prev0=0.5, **kw)


def test_the_turnover_charge_applies_from_a_small_penalty_and_the_band_applies_to_both_sizings():
    """One session from 0.5 held (flat returns), probability 1 on class 0, M[10, 0] = 1e-4 the only
    non-zero utility. Moving to 1.0 trades 2 * 0.5 = 1 of notional: cost 3 bps + 5 bps impact
    = 8e-4 (default costs); at lambda 0.5 the charge 4e-4 exceeds the gain 1e-4, so the policy
    stays at 0.5; free of charge it goes to 1.0. With a gain of 1e-2 it goes, and a no-trade band of
    0.1 stops the step of 0.5 at 0.4 (w_smoothed 0.9), at either sizing."""
    proba = np.zeros((1, 11))
    proba[0, 0] = 1.0
    m = np.zeros((11, 11))
    m[10, 0] = 1e-4
    policy = {"alpha": 0.0, "max_daily_change": 1.0, "sizing": "argmax"}
    charged = Settings(policy=PolicySettings(**policy, turnover_penalty=0.5, no_trade_band=0.0), envelope=OFF)
    assert _one_row(charged, proba, m)["w_raw"].tolist() == [0.5]
    free = Settings(policy=PolicySettings(**policy, turnover_penalty=0.0, no_trade_band=0.0), envelope=OFF)
    assert _one_row(free, proba, m)["w_raw"].tolist() == [1.0]
    m[10, 0] = 1e-2
    banded = Settings(policy=PolicySettings(**policy, turnover_penalty=0.5, no_trade_band=0.1), envelope=OFF)
    path = _one_row(banded, proba, m)
    assert path["w_raw"].tolist() == [1.0] and path["w_smoothed"].tolist() == pytest.approx([0.9])
    # expected_weight, uniform prior, all mass on bucket 1.0, gain 1: w_raw = 0.5 + (1 - 0.5) = 1.0
    sized = Settings(
        policy=PolicySettings(
            alpha=0.0, max_daily_change=1.0, sizing="expected_weight", sizing_gain=1.0, no_trade_band=0.1
        ),
        envelope=OFF,
    )
    top = np.zeros((1, 11))
    top[0, 10] = 1.0
    path = _one_row(sized, top, m, prior=np.full(11, 1 / 11))
    assert path["w_raw"].tolist() == [1.0] and path["w_smoothed"].tolist() == pytest.approx([0.9])


def test_allocator_path_names_the_first_session_with_a_probability_not_finite_and_flags_bool():
    n = 4
    ctx = _context(n)
    proba = np.full((n, 11), 1 / 11)
    proba[2, 5] = np.nan
    proba[3, 0] = np.inf
    s = Settings(policy=PolicySettings(sizing="argmax"), envelope=OFF)
    expected = f"column 'proba', row {ctx.index[2]}: probability is not finite"
    with pytest.raises(InputDataError, match=f"^{re.escape(expected)}$"):
        allocator_path(proba, np.zeros((11, 11)), ctx, s, w_prev0=0.5)
    path = allocator_path(np.full((n, 11), 1 / 11), np.zeros((11, 11)), ctx, s, w_prev0=0.5)
    assert path["out_of_range"].dtype == bool and not path["out_of_range"].any()
