"""The live monitor of the promoted allocator: its realised return against the walk-forward
backtest's range, the model's age, the drift status and whether the inputs still arrive.

Asset group ``monitoring``: ``live_monitor`` and its checks.
"""

from allocator_pipeline.core.monitoring.monitor import (
    MONITOR_CHECKS,
    live_backtest,
    live_decisions,
    monitor_summary,
    monitor_warnings,
    sessions_behind,
    stretch_band,
)

__all__ = [
    "MONITOR_CHECKS",
    "live_backtest",
    "live_decisions",
    "monitor_summary",
    "monitor_warnings",
    "sessions_behind",
    "stretch_band",
]
