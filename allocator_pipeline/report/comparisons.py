"""The three-way verdict in words (``metrics["comparisons"]``, ``core/evaluation/comparisons.py``):
the lines the CLI, the model card and the report's verdict box share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from allocator_pipeline.report.tables import MISSING, as_float, fmt_pct, fmt_ratio

#: The three-way verdict's comparisons (``metrics["comparisons"]``), in report order.
COMPARISON_LABELS: dict[str, str] = {
    "envelope": "Envelope earns (envelope only - baseline)",
    "model_increment": "Model's increment (allocator - envelope only)",
    "confidence_rule": "Against the confidence rule (allocator - confidence rule)",
}


def _signed(value: Any, fmt: Callable[[Any], str]) -> str:
    x = as_float(value)
    return MISSING if x is None else ("+" if x > 0 else "") + fmt(x)


def _ratio(x: Any) -> str:
    return fmt_ratio(x, 3)


def _pct(x: Any) -> str:
    return fmt_pct(x, 3)


def signed_ratio(x: Any) -> str:
    """A signed ratio difference with 3 decimals (``+0.218``; zero reads ``0.000``); None -> 'n/a'."""
    return _signed(x, _ratio)


def signed_pct(x: Any) -> str:
    """A signed fraction as percent with 3 decimals (``-0.061%``); None -> 'n/a'."""
    return _signed(x, _pct)


def interval_text(difference: Mapping[str, Any]) -> str:
    """A bootstrapped difference's point and interval, Calmar then average monthly PnL (percent):
    ``Calmar +0.218 [+0.018, +0.698], avg monthly PnL +0.121% [-0.117%, +0.331%]``."""
    cal, pnl = difference["calmar"], difference["avg_monthly_pnl"]
    return (
        f"Calmar {signed_ratio(cal['point'])} [{signed_ratio(cal['lower'])}, {signed_ratio(cal['upper'])}], "
        f"avg monthly PnL {signed_pct(pnl['point'])} [{signed_pct(pnl['lower'])}, {signed_pct(pnl['upper'])}]"
    )


def comparison_lines(metrics: Mapping[str, Any]) -> list[str]:
    """The three-way verdict as plain lines (the CLI, the model card and the report's verdict box):
    per comparison the point difference and interval of Calmar and of average monthly PnL (percent
    a month), pass or FAIL, and its sentence; then the one-line summary and the borrowing rule.
    Empty when the run has no ``comparisons`` (an older metrics.json)."""
    comparisons = metrics.get("comparisons")
    if not comparisons:
        return []
    lines = []
    for name, label in COMPARISON_LABELS.items():
        c = comparisons.get(name)
        if c is None:
            lines.append(f"{label}: not evaluated")
            continue
        lines.append(f"[{'pass' if c['passed'] else 'FAIL'}] {label}: {interval_text(c)} a month: {c['sentence']}")
    lines.append(f"In words: {comparisons['summary']}")
    lines.append(f"Envelope: {comparisons['borrowing']}.")
    return lines
