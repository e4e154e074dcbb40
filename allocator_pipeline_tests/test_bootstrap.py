"""The paired block bootstrap (core/evaluation/bootstrap.py) on hand-made paths: the calendar's
months, the path metrics by hand, the bookkeeping of undefined resamples and the errors."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.evaluation.bootstrap import (
    _interval,
    contrast_bootstrap,
    month_starts,
    paired_bootstrap,
    path_metrics,
)
from allocator_pipeline.settings import BootstrapSettings

TS = pd.DatetimeIndex(
    ["2024-01-30 21:00", "2024-02-01 02:00", "2024-02-01 21:00", "2024-02-02 21:00", "2024-03-01 21:00"], tz="UTC"
)  # 2024-02-01 02:00 UTC is 2024-01-31 in New York: months start at positions 0, 2, 4


def test_month_starts_are_new_york_months_and_bad_calendars_are_refused():
    assert month_starts(TS).tolist() == [0, 2, 4]
    assert month_starts(pd.Series(TS)).tolist() == [0, 2, 4]
    empty = month_starts(pd.DatetimeIndex([], tz="UTC"))
    assert empty.shape == (0,) and empty.dtype.kind == "i"
    with pytest.raises(InputDataError, match=r"^column 'realized_ts': realized_ts must be tz-aware UTC$"):
        month_starts(TS.tz_localize(None))
    with pytest.raises(InputDataError, match=r"^column 'realized_ts': realized_ts must be sorted$"):
        month_starts(TS[::-1])


def test_path_metrics_by_hand():
    """Equity 1.1, 0.88, 0.924, 1.0164 (months [0, 2) and [2, 4)): drawdown 0.88 / 1.1 - 1 = -0.2,
    CAGR 1.0164 ** 63 - 1, Calmar CAGR / 0.2, monthly returns 1.1 * 0.8 - 1 and 1.05 * 1.1 - 1.
    A path that only rises has no drawdown (Calmar NaN); one wiped out has CAGR -1."""
    r = np.array([[0.10, -0.20, 0.05, 0.10], [0.01, 0.02, 0.0, 0.01], [0.5, -1.0, 0.0, 0.0]])
    out = path_metrics(r, np.array([0, 2]))
    end = 1.1 * 0.8 * 1.05 * 1.1
    assert out["cagr"][0] == pytest.approx(end**63 - 1) and out["max_drawdown"][0] == pytest.approx(-0.2)
    assert out["calmar"][0] == pytest.approx((end**63 - 1) / 0.2)
    assert out["avg_monthly_pnl"][0] == pytest.approx(((1.1 * 0.8 - 1) + (1.05 * 1.1 - 1)) / 2)
    assert out["max_drawdown"][1] == 0.0 and math.isnan(out["calmar"][1])
    assert out["cagr"][2] == -1.0 and out["max_drawdown"][2] == pytest.approx(-1.0)
    assert out["calmar"][2] == pytest.approx(-1.0)
    one = path_metrics(np.array([0.10, -0.20, 0.05, 0.10]), np.array([0, 2]))  # one path, 1-d
    assert one["calmar"].shape == (1,) and one["calmar"][0] == pytest.approx(out["calmar"][0])


def _ts(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-02 21:00", periods=n, freq="B", tz="UTC")


def test_identical_series_give_a_zero_interval_and_no_positive_share():
    r = np.random.default_rng(1).normal(0.0, 0.01, 60)
    s = BootstrapSettings(block_length=5, resamples=100, seed=3, confidence=0.9)
    out = paired_bootstrap(r, r.copy(), _ts(60), s)
    assert out["method"] == "stationary block bootstrap (Politis-Romano), paired, percentile interval"
    settings = (out["block_length"], out["resamples"], out["seed"], out["confidence"], out["n_sessions"])
    assert settings == (5, 100, 3, 0.9, 60)
    for m in ("calmar", "avg_monthly_pnl"):
        assert out[m] == {"point": 0.0, "lower": 0.0, "upper": 0.0, "share_positive": 0.0, "undefined": 0}


def test_resamples_without_a_drawdown_are_counted_out_across_chunks():
    """Both series only rise: every resample's Calmar is undefined (no drawdown), all 260 of them
    over two chunks (250 + 10); the monthly PnL of a series 0.001 a day above the other is always
    higher: share positive 1, interval above 0."""
    n = 40
    a, b = np.full(n, 0.002), np.full(n, 0.001)
    out = paired_bootstrap(a, b, _ts(n), BootstrapSettings(block_length=4, resamples=260, seed=0, confidence=0.8))
    assert out["calmar"] == {"point": None, "lower": None, "upper": None, "share_positive": None, "undefined": 260}
    pnl = out["avg_monthly_pnl"]
    assert pnl["undefined"] == 0 and pnl["share_positive"] == 1.0 and 0.0 < pnl["lower"] <= pnl["upper"]


def test_the_interval_is_the_percentile_interval_of_the_resampled_differences():
    """Constant paths (a 0.001 a day, b 0): every resample is the original path, so every
    difference equals the point estimate and the interval is that value at any confidence."""
    n = 30
    a = np.full(n, 0.001)
    for confidence in (0.6, 0.95):
        out = paired_bootstrap(a, np.zeros(n), _ts(n), BootstrapSettings(resamples=100, confidence=confidence))
        pnl = out["avg_monthly_pnl"]
        assert pnl["lower"] == pytest.approx(pnl["point"]) and pnl["upper"] == pytest.approx(pnl["point"])


def test_a_contrast_of_four_series_is_the_difference_of_the_two_differences():
    """(a1 - b1) - (a2 - b2) with a2 = a1 and b2 = b1 is 0 on the path and, up to rounding of
    the sum (the terms are added one at a time), on every resample."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.0005, 0.01, 50), rng.normal(0.0, 0.01, 50)
    out = contrast_bootstrap([(1.0, a), (-1.0, b), (-1.0, a), (1.0, b)], _ts(50), BootstrapSettings(resamples=100))
    for m in ("calmar", "avg_monthly_pnl"):
        assert out[m]["point"] == 0.0
        assert out[m]["lower"] == pytest.approx(0.0, abs=1e-15) and out[m]["upper"] == pytest.approx(0.0, abs=1e-15)


def test_bad_inputs_are_refused_with_the_reason():
    s = BootstrapSettings(resamples=100)
    with pytest.raises(
        InputDataError, match=re.escape("paired returns must be 1-d series of the same length (got (3,), (2,))")
    ):
        paired_bootstrap(np.zeros(3), np.zeros(2), _ts(3), s)
    with pytest.raises(
        InputDataError, match=re.escape("paired returns must be 1-d series of the same length (got (0,), (0,))")
    ):
        paired_bootstrap(np.zeros(0), np.zeros(0), _ts(0), s)
    with pytest.raises(
        InputDataError, match=re.escape("paired returns must be 1-d series of the same length (got (2, 2), (2, 2))")
    ):
        paired_bootstrap(np.zeros((2, 2)), np.zeros((2, 2)), _ts(2), s)
    with pytest.raises(InputDataError, match=re.escape("got )")):
        contrast_bootstrap([], _ts(3), s)
    bad = np.zeros(3)
    bad[1] = np.nan
    with pytest.raises(InputDataError, match=r"^column 'ret': bootstrap returns must be finite$"):
        paired_bootstrap(np.zeros(3), bad, _ts(3), s)
    with pytest.raises(InputDataError, match=r"^column 'realized_ts': realized_ts must give one session per return$"):
        paired_bootstrap(np.zeros(3), np.zeros(3), _ts(4), s)


def test_path_metrics_leave_an_undefined_calmar_without_a_warning():
    """No drawdown: Calmar is NaN by definition (CAGR / 0 for a rising path, 0 / 0 for a flat one),
    not a division warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = path_metrics(np.array([[0.01, 0.02, 0.0], [0.0, 0.0, 0.0]]), np.array([0]))
    assert np.isnan(out["calmar"]).all()


def test_the_percentile_interval_by_hand():
    """0, 1, .., 100 at 90%: the 5th and 95th percentiles are 5 and 95; NaNs are left out and
    counted (1, 2, 3 at 50%: 1.5 and 2.5, one undefined); all undefined: no interval."""
    assert _interval(np.arange(101.0), 0.9) == (pytest.approx(5.0), pytest.approx(95.0), 0)
    assert _interval(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5) == (pytest.approx(1.5), pytest.approx(2.5), 1)
    assert _interval(np.array([np.nan, np.inf]), 0.9) == (None, None, 2)


def test_one_series_over_one_month_and_one_session():
    """A contrast of one term is that series' metric; one calendar month and a single session are
    enough (the monthly PnL of one session is its return)."""
    ts = _ts(1)
    out = contrast_bootstrap([(1.0, np.array([0.004]))], ts, BootstrapSettings(resamples=100))
    assert out["n_sessions"] == 1 and out["avg_monthly_pnl"]["point"] == pytest.approx(0.004)
    assert out["avg_monthly_pnl"]["lower"] == pytest.approx(0.004) and out["calmar"]["point"] is None
    r = np.random.default_rng(2).normal(0.0, 0.01, (2, 15))  # 15 sessions of January 2024
    january = paired_bootstrap(r[0], r[1], _ts(15), BootstrapSettings(resamples=100))
    assert january["avg_monthly_pnl"]["point"] == pytest.approx(float(np.prod(1 + r[0]) - np.prod(1 + r[1])))
