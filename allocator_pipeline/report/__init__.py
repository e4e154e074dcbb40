"""Presentation of the walk-forward report: the HTML page, its tables, charts and diagnostics."""

from allocator_pipeline.report.charts import equity_and_drawdown, headline_figure_png, sample_rows
from allocator_pipeline.report.comparisons import comparison_lines
from allocator_pipeline.report.diagnostics import (
    importance_matrix,
    mean_pairwise_spearman,
    parameter_stability,
    pooled_reliability,
    tuning_table,
)
from allocator_pipeline.report.page import publish_report, render_report
from allocator_pipeline.report.tables import (
    STRATEGIES,
    failed_gates,
    fmt_gate,
    fmt_interval,
    format_headline,
    gate_line,
    headline_cells,
    headline_table,
    lag_table,
)

__all__ = [
    "STRATEGIES",
    "comparison_lines",
    "equity_and_drawdown",
    "failed_gates",
    "fmt_gate",
    "fmt_interval",
    "format_headline",
    "gate_line",
    "headline_cells",
    "headline_figure_png",
    "headline_table",
    "importance_matrix",
    "lag_table",
    "mean_pairwise_spearman",
    "parameter_stability",
    "pooled_reliability",
    "publish_report",
    "render_report",
    "sample_rows",
    "tuning_table",
]
