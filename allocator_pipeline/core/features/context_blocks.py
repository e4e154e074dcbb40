"""The nine feature blocks: each feature's name, formula, window, units and computation.

This module holds the context blocks (Step 3 confidence and drift, regime, VIX, T-bill) and
``BLOCKS``, the registry of all nine blocks; the price-based blocks (returns, volatility,
drawdown, hit rate) and the types every block shares (``FeatureSpec``, ``PanelInputs``) are in
``core/features/blocks.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from allocator_pipeline.core.features import windows as fw
from allocator_pipeline.core.features.blocks import (
    Feature,
    FeatureSpec,
    PanelInputs,
    _drawdown,
    _hit_rate,
    _returns,
    _volatility,
)
from allocator_pipeline.core.features.inputs import LEGS
from allocator_pipeline.settings import FeatureSettings

PROB_CHANGE = 5
DRIFT_MEAN_WINDOW = 21
MA_SLOPE = 21
CORR_WINDOWS = (21, 63)
VOL_RATIO_WINDOW = 63
VIX_CHANGES = (5, 21)
VIX_Z_WINDOW = 252
TBILL_CHANGE = 21
EXCESS_WINDOW = 63


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
        for k in s.prob_mean_windows:
            out.append(
                (
                    FeatureSpec(
                        f"{leg}_prob_up_mean_{k}",
                        "confidence",
                        f"mean of {leg}_prob_up over {k} sessions",
                        k,
                        "probability (0..1)",
                    ),
                    lambda x, leg=leg, k=k: fw.mean(x.col(f"{leg}_prob_up", "confidence"), k),
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
