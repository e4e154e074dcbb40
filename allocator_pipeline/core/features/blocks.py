"""Price-based feature blocks (returns, volatility, drawdown, hit rate) and the types every block shares.

A block is a list of ``(FeatureSpec, compute)`` pairs. ``compute`` takes the validated panel
inputs and returns one float64 value per session; it is only called by ``build_features``, so
``feature_dictionary`` lists the same names without computing anything.

``window`` is the number of sessions of input a feature reads (rows ``d - window + 1 .. d``), so a
feature's warm-up is at most ``window - 1`` rows (plus its inputs' own leading NaN).

The context blocks and ``BLOCKS``, the registry of all nine blocks, are in
``core/features/context_blocks.py``.
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
