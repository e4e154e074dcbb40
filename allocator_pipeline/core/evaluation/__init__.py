"""Backtest, performance metrics, the walk-forward evaluation over all folds, and the gates.

Asset group ``evaluation``: ``walk_forward_report``.
"""

from allocator_pipeline.core.evaluation.backtest import (
    BACKTEST_COLUMNS,
    RETURN_COLUMNS,
    baseline_decisions,
    inverse_vol_weight,
    run_backtest,
)
from allocator_pipeline.core.evaluation.gates import accepted, evaluate_gates, importance_stability, monotonic_response
from allocator_pipeline.core.evaluation.metrics import (
    METRIC_NAMES,
    drawdown_curve,
    equity_curve,
    monthly_returns,
    performance_metrics,
)
from allocator_pipeline.core.evaluation.walk_forward import (
    STRATEGIES,
    assemble_walk_forward,
    evaluate_walk_forward,
    strategy_frame,
    walk_forward_metrics,
)

__all__ = [
    "BACKTEST_COLUMNS",
    "METRIC_NAMES",
    "RETURN_COLUMNS",
    "STRATEGIES",
    "accepted",
    "assemble_walk_forward",
    "baseline_decisions",
    "drawdown_curve",
    "equity_curve",
    "evaluate_gates",
    "evaluate_walk_forward",
    "importance_stability",
    "inverse_vol_weight",
    "monotonic_response",
    "monthly_returns",
    "performance_metrics",
    "run_backtest",
    "strategy_frame",
    "walk_forward_metrics",
]
