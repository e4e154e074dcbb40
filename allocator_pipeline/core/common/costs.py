"""One trading-cost model for labels, tuning and backtest.

``cost(traded) = traded * (fee_bps + slippage_bps) / 1e4 + impact_bps * traded**2 / 1e4``

``traded`` is the sum over the two legs of the absolute change of each leg's weight (fraction of
capital): moving a fully invested two-leg book from ``w`` to ``w'`` trades ``2 * |w' - w|``.
The result is a fraction of capital, subtracted from that session's return.

Financing: gross exposure above 1 (the risk envelope may lever up to ``envelope.max_exposure``)
borrows cash. The borrowed part earns ``-r_cash`` in the portfolio return (the cash leg is
``1 - exposure``) and pays ``financing_spread_bps`` a year on top, charged per session:
``financing(e) = max(e - 1, 0) * financing_spread_bps / 1e4 / 252``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR
from allocator_pipeline.settings.sections import CostSettings


@dataclass(frozen=True)
class CostModel:
    fee_bps: float = 1.0
    slippage_bps: float = 2.0
    impact_bps: float = 5.0
    financing_spread_bps: float = 0.0

    @classmethod
    def from_settings(cls, costs: CostSettings) -> CostModel:
        return cls(costs.fee_bps, costs.slippage_bps, costs.impact_bps, costs.financing_spread_bps)

    def financing(self, exposure: np.ndarray | float) -> np.ndarray:
        """Spread over the T-bill rate (fraction of capital, one session) on gross exposure above 1."""
        e = np.asarray(exposure, dtype=float)
        return np.maximum(e - 1.0, 0.0) * self.financing_spread_bps / 1e4 / SESSIONS_PER_YEAR

    def cost(self, traded: np.ndarray | float) -> np.ndarray:
        """Cost (fraction of capital) of trading ``traded`` (sum of |leg weight changes|)."""
        t = np.abs(np.asarray(traded, dtype=float))
        return t * (self.fee_bps + self.slippage_bps) / 1e4 + self.impact_bps * t * t / 1e4

    def rebalance_cost(self, w_new: np.ndarray | float, w_old: np.ndarray | float) -> np.ndarray:
        """Cost of moving a fully invested two-leg book from ``w_old`` to ``w_new`` (QQQ share)."""
        return self.cost(2.0 * np.abs(np.asarray(w_new, dtype=float) - np.asarray(w_old, dtype=float)))
