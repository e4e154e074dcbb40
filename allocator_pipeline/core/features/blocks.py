"""The nine feature blocks: each feature's name, formula, window, units and computation.

A block is a list of ``(FeatureSpec, compute)`` pairs. ``compute`` takes the validated panel
inputs and returns one float64 value per session; it is only called by ``build_features``, so
``feature_dictionary`` lists the same names without computing anything.

``window`` is the number of sessions of input a feature reads (rows ``d - window + 1 .. d``), so a
feature's warm-up is at most ``window - 1`` rows (plus its inputs' own leading NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocator_pipeline.core.features import windows as fw
from allocator_pipeline.core.features.inputs import LEGS, check_vix_gaps, column_values
from allocator_pipeline.settings import FeatureSettings

RETURN_WINDOWS = (1, 5, 21, 63)
VOL_WINDOWS = (5, 21, 63)
DRAWDOWN_WINDOWS = (63, 252)
PEAK_WINDOW = 252
REBOUND_WINDOW = 21
HIT_WINDOWS = (21, 63)
PROB_CHANGE = 5
DRIFT_MEAN_WINDOW = 21
MA_SLOPE = 21
CORR_WINDOWS = (21, 63)
VOL_RATIO_WINDOW = 63
VIX_CHANGES = (5, 21)
VIX_Z_WINDOW = 252
TBILL_CHANGE = 21
EXCESS_WINDOW = 63


@dataclass(frozen=True)
class FeatureSpec:
    """One row of the feature dictionary."""

    name: str
    block: str
    formula: str
    window: int
    units: str


class PanelInputs:
    """Validated float64 columns of the leg panel, read once each (see ``features_inputs``)."""

    def __init__(self, panel: pd.DataFrame, settings: FeatureSettings) -> None:
        self.panel = panel
        self.settings = settings
        self._cache: dict[str, np.ndarray] = {}
        self._vix: tuple[np.ndarray, np.ndarray] | None = None

    def col(self, name: str, block: str = "") -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = column_values(self.panel, name, block)
        return self._cache[name]

    def ret(self, leg: str) -> np.ndarray:
        return self.col(f"{leg}_leg_return")

    def vix(self) -> tuple[np.ndarray, np.ndarray]:
        """(VIX forward-filled within the staleness limit, sessions since the last real value)."""
        if self._vix is None:
            self._vix = check_vix_gaps(self.panel, self.settings.vix_max_stale_sessions)
        return self._vix


Compute = Callable[..., np.ndarray]  # called with one PanelInputs; loop values are bound as defaults
Feature = tuple[FeatureSpec, Compute]


def _returns(s: FeatureSettings) -> list[Feature]:
    out: list[Feature] = []
    for leg in LEGS:
        for k in RETURN_WINDOWS:
            formula = f"prod(1 + {leg}_leg_return[d-{k - 1}..d]) - 1" if k > 1 else f"{leg}_leg_return[d]"
            out.append(
                (
                    FeatureSpec(f"{leg}_ret_{k}", "returns", formula, k, "fraction"),
                    lambda x, leg=leg, k=k: fw.compound_return(x.ret(leg), k),
                )
            )
    for k in RETURN_WINDOWS:
        out.append(
            (
                FeatureSpec(
                    f"spread_ret_{k}", "returns", f"qqq_ret_{k} - spy_ret_{k} (relative strength)", k, "fraction"
                ),
                lambda x, k=k: fw.compound_return(x.ret("qqq"), k) - fw.compound_return(x.ret("spy"), k),
            )
        )
    return out


def _volatility(s: FeatureSettings) -> list[Feature]:
    out: list[Feature] = []
    for leg in LEGS:
        for k in VOL_WINDOWS:
            out.append(
                (
                    FeatureSpec(
                        f"{leg}_vol_{k}",
                        "volatility",
                        f"std({leg}_leg_return, ddof=1, {k} sessions) * sqrt(252)",
                        k,
                        "fraction per year (annualised)",
                    ),
                    lambda x, leg=leg, k=k: fw.realised_vol(x.ret(leg), k),
                )
            )
            out.append(
                (
                    FeatureSpec(
                        f"{leg}_downvol_{k}",
                        "volatility",
                        f"sqrt(mean(min({leg}_leg_return, 0)^2), {k} sessions) * sqrt(252)",
                        k,
                        "fraction per year (annualised)",
                    ),
                    lambda x, leg=leg, k=k: fw.downside_vol(x.ret(leg), k),
                )
            )
    for k in VOL_WINDOWS:
        out.append(
            (
                FeatureSpec(
                    f"spread_vol_{k}", "volatility", f"qqq_vol_{k} - spy_vol_{k}", k, "fraction per year (annualised)"
                ),
                lambda x, k=k: fw.realised_vol(x.ret("qqq"), k) - fw.realised_vol(x.ret("spy"), k),
            )
        )
    return out


def _drawdown(s: FeatureSettings) -> list[Feature]:
    out: list[Feature] = []
    for leg in LEGS:
        for k in DRAWDOWN_WINDOWS:
            out.append(
                (
                    FeatureSpec(
                        f"{leg}_dd_{k}",
                        "drawdown",
                        f"max drawdown of the {leg} leg's equity path over {k} sessions (from 1.0 before the window)",
                        k,
                        "fraction (positive)",
                    ),
                    lambda x, leg=leg, k=k: fw.max_drawdown(x.ret(leg), k),
                )
            )
        out.append(
            (
                FeatureSpec(
                    f"{leg}_dd_now",
                    "drawdown",
                    f"1 - equity / max(equity) over the trailing {PEAK_WINDOW} sessions",
                    PEAK_WINDOW,
                    "fraction (positive)",
                ),
                lambda x, leg=leg: fw.drawdown_from_peak(x.ret(leg), PEAK_WINDOW),
            )
        )
        out.append(
            (
                FeatureSpec(
                    f"{leg}_since_peak",
                    "drawdown",
                    f"sessions since the trailing {PEAK_WINDOW}-session equity peak (0 at a new high)",
                    PEAK_WINDOW,
                    "sessions",
                ),
                lambda x, leg=leg: fw.sessions_since_peak(x.ret(leg), PEAK_WINDOW),
            )
        )
        out.append(
            (
                FeatureSpec(
                    f"{leg}_rebound_{REBOUND_WINDOW}",
                    "drawdown",
                    f"equity / min(equity over {REBOUND_WINDOW} sessions) - 1 (recovery from the trough)",
                    REBOUND_WINDOW,
                    "fraction",
                ),
                lambda x, leg=leg: fw.rebound_from_trough(x.ret(leg), REBOUND_WINDOW),
            )
        )
    return out


def _hit_rate(s: FeatureSettings) -> list[Feature]:
    out: list[Feature] = []
    for leg in LEGS:
        for k in HIT_WINDOWS:
            out.append(
                (
                    FeatureSpec(
                        f"{leg}_hit_{k}",
                        "hit_rate",
                        f"share of {leg}_leg_return > 0 over {k} sessions",
                        k,
                        "share (0..1)",
                    ),
                    lambda x, leg=leg, k=k: fw.hit_rate(x.ret(leg), k),
                )
            )
            out.append(
                (
                    FeatureSpec(
                        f"{leg}_payoff_{k}",
                        "hit_rate",
                        f"(mean gain + 1bp) / (mean |loss| + 1bp) of {leg}_leg_return over {k} sessions",
                        k,
                        "ratio",
                    ),
                    lambda x, leg=leg, k=k: fw.payoff_ratio(x.ret(leg), k),
                )
            )
    return out


def _confidence(s: FeatureSettings) -> list[Feature]:
    out: list[Feature] = []
    for leg in LEGS:
        for q in ("prob_up", "prob_q10", "prob_q50", "prob_q90"):
            out.append(
                (
                    FeatureSpec(
                        f"{leg}_{q}", "confidence", f"Step 3 {leg}_{q} as of decision_ts", 1, "probability (0..1)"
                    ),
                    lambda x, c=f"{leg}_{q}": x.col(c, "confidence").copy(),
                )
            )
        out.append(
            (
                FeatureSpec(
                    f"{leg}_prob_spread", "confidence", f"{leg}_prob_q90 - {leg}_prob_q10", 1, "probability (0..1)"
                ),
                lambda x, leg=leg: x.col(f"{leg}_prob_q90", "confidence") - x.col(f"{leg}_prob_q10", "confidence"),
            )
        )
        out.append(
            (
                FeatureSpec(
                    f"{leg}_prob_up_chg_{PROB_CHANGE}",
                    "confidence",
                    f"{leg}_prob_up[d] - {leg}_prob_up[d-{PROB_CHANGE}]",
                    PROB_CHANGE + 1,
                    "probability",
                ),
                lambda x, leg=leg: fw.change(x.col(f"{leg}_prob_up", "confidence"), PROB_CHANGE),
            )
        )
        out.append(
            (
                FeatureSpec(
                    f"{leg}_position",
                    "confidence",
                    f"Step 3 {leg}_position (exposure)",
                    1,
                    "fraction of the leg's capital (-1..1)",
                ),
                lambda x, leg=leg: x.col(f"{leg}_position").copy(),
            )
        )
    return out


def _drift(s: FeatureSettings) -> list[Feature]:
    out: list[Feature] = []
    k = DRIFT_MEAN_WINDOW
    for leg in LEGS:
        out.append(
            (
                FeatureSpec(
                    f"{leg}_drift_psi", "drift", f"Step 3 causal {leg}_drift_psi as of decision_ts", 1, "PSI (>= 0)"
                ),
                lambda x, leg=leg: x.col(f"{leg}_drift_psi", "drift").copy(),
            )
        )
        out.append(
            (
                FeatureSpec(f"{leg}_drift_flag", "drift", f"Step 3 {leg}_drift_flag as of decision_ts", 1, "0/1"),
                lambda x, leg=leg: x.col(f"{leg}_drift_flag", "drift").copy(),
            )
        )
        out.append(
            (
                FeatureSpec(
                    f"{leg}_drift_psi_mean_{k}", "drift", f"mean of {leg}_drift_psi over {k} sessions", k, "PSI (>= 0)"
                ),
                lambda x, leg=leg: fw.mean(x.col(f"{leg}_drift_psi", "drift"), k),
            )
        )
        out.append(
            (
                FeatureSpec(
                    f"{leg}_drift_flag_mean_{k}",
                    "drift",
                    f"share of flagged sessions ({leg}_drift_flag) over {k} sessions",
                    k,
                    "share (0..1)",
                ),
                lambda x, leg=leg: fw.mean(x.col(f"{leg}_drift_flag", "drift"), k),
            )
        )
    return out


def _regime(s: FeatureSettings) -> list[Feature]:
    m = s.long_ma_sessions
    out: list[Feature] = []
    for leg in LEGS:
        out.append(
            (
                FeatureSpec(f"{leg}_trend", "regime", f"{leg}_adj_close / MA({m}) - 1", m, "fraction"),
                lambda x, leg=leg: x.col(f"{leg}_adj_close", "regime") / fw.mean(x.col(f"{leg}_adj_close"), m) - 1.0,
            )
        )
        out.append(
            (
                FeatureSpec(
                    f"{leg}_ma_slope_{MA_SLOPE}",
                    "regime",
                    f"MA({m})[d] / MA({m})[d-{MA_SLOPE}] - 1 of {leg}_adj_close",
                    m + MA_SLOPE,
                    "fraction",
                ),
                lambda x, leg=leg: fw.relative_change(fw.mean(x.col(f"{leg}_adj_close", "regime"), m), MA_SLOPE),
            )
        )
    for k in CORR_WINDOWS:
        out.append(
            (
                FeatureSpec(
                    f"corr_{k}",
                    "regime",
                    f"corr(qqq_leg_return, spy_leg_return) over {k} sessions (0 if a leg is flat)",
                    k,
                    "correlation (-1..1)",
                ),
                lambda x, k=k: fw.correlation(x.ret("qqq"), x.ret("spy"), k),
            )
        )
    out.append(
        (
            FeatureSpec(
                "rel_strength_trend",
                "regime",
                f"(qqq_adj_close / spy_adj_close) / MA({m}) of that ratio - 1",
                m,
                "fraction",
            ),
            lambda x: _ratio_trend(x, m),
        )
    )
    k = VOL_RATIO_WINDOW
    out.append(
        (
            FeatureSpec(
                f"log_vol_ratio_{k}",
                "regime",
                f"log(max(qqq_vol_{k}, 1e-4) / max(spy_vol_{k}, 1e-4)) (volatility spread)",
                k,
                "log ratio",
            ),
            lambda x: np.log(
                np.maximum(fw.realised_vol(x.ret("qqq"), k), fw.VOL_FLOOR)
                / np.maximum(fw.realised_vol(x.ret("spy"), k), fw.VOL_FLOOR)
            ),
        )
    )
    return out


def _ratio_trend(x: PanelInputs, m: int) -> np.ndarray:
    ratio = x.col("qqq_adj_close", "regime") / x.col("spy_adj_close", "regime")
    return ratio / fw.mean(ratio, m) - 1.0


def _vix(s: FeatureSettings) -> list[Feature]:
    out: list[Feature] = [
        (
            FeatureSpec(
                "vix",
                "vix",
                f"VIX level, forward-filled for at most {s.vix_max_stale_sessions} sessions",
                1,
                "index points",
            ),
            lambda x: x.vix()[0].copy(),
        )
    ]
    for k in VIX_CHANGES:
        out.append(
            (
                FeatureSpec(f"vix_chg_{k}", "vix", f"vix[d] - vix[d-{k}]", k + 1, "index points"),
                lambda x, k=k: fw.change(x.vix()[0], k),
            )
        )
    out.append(
        (
            FeatureSpec(
                f"vix_z_{VIX_Z_WINDOW}",
                "vix",
                f"(vix - mean) / std (ddof=1) over {VIX_Z_WINDOW} sessions",
                VIX_Z_WINDOW,
                "z-score",
            ),
            lambda x: fw.zscore(x.vix()[0], VIX_Z_WINDOW),
        )
    )
    out.append(
        (
            FeatureSpec(
                "vix_stale_sessions", "vix", "sessions since the last real VIX value (0 = fresh)", 1, "sessions"
            ),
            lambda x: x.vix()[1].copy(),
        )
    )
    return out


def _tbill(s: FeatureSettings) -> list[Feature]:
    out: list[Feature] = [
        (
            FeatureSpec("tbill_yield", "tbill", "13-week T-bill yield as of decision_ts", 1, "percent per year"),
            lambda x: x.col("tbill_yield_pct", "tbill").copy(),
        ),
        (
            FeatureSpec(
                f"tbill_chg_{TBILL_CHANGE}",
                "tbill",
                f"tbill_yield[d] - tbill_yield[d-{TBILL_CHANGE}]",
                TBILL_CHANGE + 1,
                "percentage points",
            ),
            lambda x: fw.change(x.col("tbill_yield_pct", "tbill"), TBILL_CHANGE),
        ),
    ]
    k = EXCESS_WINDOW
    for leg in LEGS:
        out.append(
            (
                FeatureSpec(
                    f"{leg}_excess_{k}",
                    "tbill",
                    f"{leg}_ret_{k} - prod(1 + cash_return[d-{k - 1}..d]) + 1",
                    k,
                    "fraction",
                ),
                lambda x, leg=leg: (
                    fw.compound_return(x.ret(leg), k) - fw.compound_return(x.col("cash_return", "tbill"), k)
                ),
            )
        )
    return out


BLOCKS: dict[str, Callable[[FeatureSettings], list[Feature]]] = {
    "returns": _returns,
    "volatility": _volatility,
    "drawdown": _drawdown,
    "hit_rate": _hit_rate,
    "confidence": _confidence,
    "drift": _drift,
    "regime": _regime,
    "vix": _vix,
    "tbill": _tbill,
}
