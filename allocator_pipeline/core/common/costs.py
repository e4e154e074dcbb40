"""One trading-cost model for labels, tuning and backtest.

``cost(traded) = traded * (fee_bps + slippage_bps) / 1e4 + impact_bps * traded**2 / 1e4``

``traded`` is the sum over the two legs of the absolute change of each leg's weight (fraction of
capital): moving a fully invested two-leg book from ``w`` to ``w'`` trades ``2 * |w' - w|``.
The result is a fraction of capital, subtracted from that session's return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocator_pipeline.settings_sections import CostSettings


@dataclass(frozen=True)
class CostModel:
    fee_bps: float = 1.0
    slippage_bps: float = 2.0
    impact_bps: float = 5.0

    @classmethod
    def from_settings(cls, costs: CostSettings) -> CostModel:
        return cls(costs.fee_bps, costs.slippage_bps, costs.impact_bps)

    def cost(self, traded: np.ndarray | float) -> np.ndarray:
        """Cost (fraction of capital) of trading ``traded`` (sum of |leg weight changes|)."""
        t = np.abs(np.asarray(traded, dtype=float))
        return t * (self.fee_bps + self.slippage_bps) / 1e4 + self.impact_bps * t * t / 1e4

    def rebalance_cost(self, w_new: np.ndarray | float, w_old: np.ndarray | float) -> np.ndarray:
        """Cost of moving a fully invested two-leg book from ``w_old`` to ``w_new`` (QQQ share)."""
        return self.cost(2.0 * np.abs(np.asarray(w_new, dtype=float) - np.asarray(w_old, dtype=float)))
