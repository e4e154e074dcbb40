"""Monotonic sanity's measurement on hand-made inputs whose response is known in closed form.

The model here puts probability ``q`` on the 100% QQQ bucket and ``1 - q`` on the 0% bucket, with
``q`` a known linear function of the inputs. Under the ``expected_weight`` sizing with gain 1,
baseline 0.5 and a uniform class prior the raw choice is ``0.5 + (q - 0.5) = q`` exactly (no grid
rounding), so a bump of ``std`` moves the mean weight by ``slope * std``, by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import N_CLASSES
from allocator_pipeline.core.evaluation.monotonic import monotonic_response, monotonic_sanity, policy_weight
from allocator_pipeline.settings import PolicySettings, Settings

EXPECTED = Settings(policy=PolicySettings(sizing="expected_weight", sizing_gain=1.0))
ARGMAX = Settings(policy=PolicySettings(sizing="argmax"))


class TwoBucket:
    """``q = 0.5 + sum_f slope_f * (x_f - centre_f)`` on bucket 10, ``1 - q`` on bucket 0; M = identity."""

    def __init__(self, slopes: dict[str, float], centres: dict[str, float]):
        self.slopes, self.centres = slopes, centres
        self.m = np.eye(N_CLASSES)
        self.prior = np.full(N_CLASSES, 1.0 / N_CLASSES)

    @property
    def feature_names(self) -> list[str]:
        return list(self.slopes)

    def q(self, features: pd.DataFrame) -> np.ndarray:
        return 0.5 + sum(s * (features[f].to_numpy() - self.centres[f]) for f, s in self.slopes.items())

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        q = self.q(features)
        p = np.zeros((len(features), N_CLASSES))
        p[:, 10], p[:, 0] = q, 1.0 - q
        return p


def _frame(**columns: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"split": "test", **columns})


def test_monotonic_response_names_the_missing_column():
    """Bad input gets an error naming the column (the feature, or a co-moving input)."""
    X = pd.DataFrame({"vol": [1.0, 2.0]})
    with pytest.raises(InputDataError, match=r"column 'dd': feature not in the feature table"):
        monotonic_response(lambda x: x["vol"].to_numpy(), X, "dd")
    with pytest.raises(InputDataError, match=r"column 'down': feature not in the feature table"):
        monotonic_response(lambda x: x["vol"].to_numpy(), X, "vol", comoving=["down"])


def test_monotonic_response_is_nan_without_spread():
    X = pd.DataFrame({"vol": [2.0, 2.0, 2.0]})
    assert math.isnan(monotonic_response(lambda x: x["vol"].to_numpy(), X, "vol"))


@pytest.mark.filterwarnings("ignore:invalid value encountered in scalar divide:RuntimeWarning")  # the 0/0 slope
def test_comoving_slope_is_the_least_squares_slope_on_the_rows_where_both_are_finite():
    """vol = [1, 2, 3] (std 1, so the rise is 1); the weight reads ``down`` only (NaN read as 0).

    - down = [2, 4, NaN]: two complete rows, slope (4 - 2) / (2 - 1) = 2, so down rises by 2 on
      the two finite rows: the mean weight rises by (2 + 2 + 0) / 3 = 4/3.
    - down = [5, NaN, NaN]: one complete row, no slope (0): nothing moves.
    - vol = [1, 1, 3], down = [2, 4, NaN]: vol is constant on the complete rows, the slope 0/0 is
      not finite and counts as 0: nothing moves.
    """

    def w(x: pd.DataFrame) -> np.ndarray:
        return np.nan_to_num(x["down"].to_numpy(dtype=float))

    nan = float("nan")
    two = pd.DataFrame({"vol": [1.0, 2.0, 3.0], "down": [2.0, 4.0, nan]})
    assert monotonic_response(w, two, "vol", comoving=["down"]) == pytest.approx(4.0 / 3.0)
    one = pd.DataFrame({"vol": [1.0, 2.0, 3.0], "down": [5.0, nan, nan]})
    assert monotonic_response(w, one, "vol", comoving=["down"]) == 0.0
    flat = pd.DataFrame({"vol": [1.0, 1.0, 3.0], "down": [2.0, 4.0, nan]})
    assert monotonic_response(w, flat, "vol", comoving=["down"]) == 0.0


def test_policy_weight_follows_the_configured_sizing():
    """``expected_weight`` (gain 1, uniform prior, baseline 0.5): the weight is q itself;
    ``argmax`` (M = identity): the bucket of higher probability, 100% where q > 0.5, else 0%."""
    X = pd.DataFrame({"vol": [0.0, 1.0, 2.0, 3.0]})
    model = TwoBucket({"vol": -0.1}, {"vol": 1.5})
    np.testing.assert_allclose(policy_weight(model, EXPECTED)(X), [0.65, 0.55, 0.45, 0.35])  # type: ignore[arg-type]
    np.testing.assert_array_equal(policy_weight(model, ARGMAX)(X), [1.0, 1.0, 0.0, 0.0])  # type: ignore[arg-type]
    np.testing.assert_array_equal(policy_weight(model)(X), [1.0, 1.0, 0.0, 0.0])  # type: ignore[arg-type]


def test_monotonic_sanity_measures_each_fold_at_its_own_sizing():
    """With ``settings_of`` the raw choice is the fold's sizing: q, whose response to +1 std of
    qqq_vol_5 is -0.1 * std by hand; the argmax choice (no ``settings_of``) jumps between 0 and 1
    instead, a different figure."""
    vol = [0.10, 0.12, 0.14, 0.16, 0.18, 0.20]
    frame = _frame(qqq_vol_5=vol)
    model = TwoBucket({"qqq_vol_5": -0.1}, {"qqq_vol_5": 0.15})
    std = float(np.std(vol, ddof=1))
    sized = monotonic_sanity({"f": model}, {"f": frame}, (), settings_of={"f": EXPECTED})  # type: ignore[dict-item]
    assert sized == {"qqq_vol_5": pytest.approx(-0.1 * std)}
    argmax = monotonic_sanity({"f": model}, {"f": frame}, ())  # type: ignore[dict-item]
    # argmax: 100% on the three rows below the centre 0.15; +1 std (0.037) carries two of them
    # (0.12, 0.14) above it: the mean weight falls from 3/6 to 1/6
    assert argmax == {"qqq_vol_5": pytest.approx(-2.0 / 6.0)}


def test_a_configured_feature_that_is_not_a_risk_input_moves_alone():
    """qqq_ret_5 is configured but is no volatility or drawdown: its bump carries nothing with it,
    even though qqq_vol_5 (read by the model) moves with it (vol = 2 * ret). By hand, with the
    weight q = 0.5 + 0.1 (ret - c) - 0.2 (vol - c'): +1 std of ret moves it by 0.1 std(ret);
    +1 std of vol (no other QQQ risk input is read) by -0.2 std(vol)."""
    ret = [0.01, 0.02, 0.03, 0.04, 0.05]
    vol = [2 * r for r in ret]
    frame = _frame(qqq_ret_5=ret, qqq_vol_5=vol)
    model = TwoBucket({"qqq_ret_5": 0.1, "qqq_vol_5": -0.2}, {"qqq_ret_5": 0.03, "qqq_vol_5": 0.06})
    out = monotonic_sanity({"f": model}, {"f": frame}, ("qqq_ret_5",), settings_of={"f": EXPECTED})  # type: ignore[dict-item]
    assert out == {
        "qqq_ret_5": pytest.approx(0.1 * float(np.std(ret, ddof=1))),
        "qqq_vol_5": pytest.approx(-0.2 * float(np.std(vol, ddof=1))),
    }
