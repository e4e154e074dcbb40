"""Backtest, performance metrics, the walk-forward evaluation over all folds, and the gates.

Asset group ``evaluation``: ``walk_forward_report``.
"""

from allocator_pipeline.core.evaluation.ablations import (
    ABLATIONS,
    ablation_decisions,
    envelope_decisions,
    envelope_path,
)
from allocator_pipeline.core.evaluation.attribution import ATTRIBUTION_TERMS, attribution_summary, daily_attribution
from allocator_pipeline.core.evaluation.backtest import (
    BACKTEST_COLUMNS,
    RETURN_COLUMNS,
    baseline_decisions,
    inverse_vol_weight,
    run_backtest,
)
from allocator_pipeline.core.evaluation.bootstrap import month_starts, paired_bootstrap, path_metrics
from allocator_pipeline.core.evaluation.gates import accepted, evaluate_gates, importance_stability, monotonic_response
from allocator_pipeline.core.evaluation.metrics import (
    METRIC_NAMES,
    drawdown_curve,
    equity_curve,
    monthly_returns,
    performance_metrics,
)
from allocator_pipeline.core.evaluation.overfitting import (
    deflated_sharpe,
    overfitting_statistics,
    pbo_cscv,
    pooled_sharpe_variance,
)
from allocator_pipeline.core.evaluation.walk_forward import (
    STRATEGIES,
    assemble_walk_forward,
    evaluate_walk_forward,
    strategy_frame,
    walk_forward_metrics,
)

__all__ = [
    "ABLATIONS",
    "ATTRIBUTION_TERMS",
    "BACKTEST_COLUMNS",
    "METRIC_NAMES",
    "RETURN_COLUMNS",
    "STRATEGIES",
    "ablation_decisions",
    "accepted",
    "assemble_walk_forward",
    "attribution_summary",
    "baseline_decisions",
    "daily_attribution",
    "deflated_sharpe",
    "drawdown_curve",
    "envelope_decisions",
    "envelope_path",
    "equity_curve",
    "evaluate_gates",
    "evaluate_walk_forward",
    "importance_stability",
    "inverse_vol_weight",
    "monotonic_response",
    "month_starts",
    "monthly_returns",
    "overfitting_statistics",
    "paired_bootstrap",
    "path_metrics",
    "pbo_cscv",
    "performance_metrics",
    "pooled_sharpe_variance",
    "run_backtest",
    "strategy_frame",
    "walk_forward_metrics",
]
