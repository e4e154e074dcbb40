"""The self-contained walk-forward report (one HTML page) of the allocator.

Inputs
------
``oos_daily`` : DataFrame indexed by ``decision_ts`` (tz-aware UTC, the close of the decision
    session). Row ``d`` holds the weights decided at ``d`` (``w_raw``, ``w_smoothed``,
    ``w_final``, ``exposure``), the outer ``fold`` (str, test year), and the daily returns
    (fractions) ``ret_allocator``, ``ret_baseline``, ``ret_qqq_only``, ``ret_spy_only``,
    ``ret_inverse_vol``, ``ret_oracle`` realised over the **next** session, whose decision
    timestamp is ``realized_ts`` (tz-aware UTC); costs are charged in the same row.
``metrics`` : the content of ``metrics.json``: ``accepted`` (bool), ``strategies`` ({strategy:
    m}), ``folds`` ({fold: {strategy: m}}), ``gates`` (list of {name, value, threshold, passed,
    detail, interval}), ``bootstrap``, ``deflated_sharpe``, ``pbo``, ``attribution`` (the verdict's
    evidence, ``core/evaluation``), ``calibration`` ({fold: {chosen, before, after, reliability}}), ``importance``
    ({fold: {feature: normalised gain}}), ``tuning`` ({fold: {best_params, n_trials, best_value,
    duration_s}}, optional) and ``settings``. Each ``m`` has cagr, max_drawdown (negative
    fraction), calmar, avg_monthly_pnl, avg_monthly_pnl_ccy, sharpe, volatility,
    monthly_hit_rate, worst_month, cvar_95, turnover, cost_drag, n_sessions, start, end; a value
    may be None where undefined.

The page is deterministic (same inputs, same bytes: no timestamp, PNGs without software
metadata) and self-contained (inline CSS, PNG data URIs, no script, no external link).

Usage: ``render_report(oos_daily, metrics)`` returns the page as a string and
``publish_report`` writes it with ``oos_daily.parquet``; the ``walk_forward_report`` asset calls
them on the evaluation's output, and ``allocator_pipeline_tests/test_report.py`` renders a synthetic run.
The page's sections are built in ``report/sections.py`` and ``report/evidence.py`` from the
templates of ``report/templates/`` (the report's layout, shared with ``allocator compare``'s page).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from allocator_pipeline.core.common.sessions import session_dates
from allocator_pipeline.core.common.storage import write_parquet, write_text
from allocator_pipeline.report.charts import equity_drawdown_png, headline_figure_png, validate_oos_daily, weights_png
from allocator_pipeline.report.evidence import (
    ablation_section,
    attribution_section,
    envelope_section,
    evidence_section,
    planted_section,
)
from allocator_pipeline.report.html import Markup, Section, fragment, page, png_data
from allocator_pipeline.report.sections import (
    _calibration_section,
    _fold_section,
    _gate_section,
    _headline,
    _importance_section,
    _lag_section,
    _recompute_note,
    _tuning_section,
    _verdict,
)
from allocator_pipeline.report.tables import (
    REPORT_ORDER,
    format_headline,
    headline_table,
    leg_symbols,
    report_title,
    strategy_label,
)

__all__ = ["format_headline", "headline_figure_png", "headline_table", "render_report"]

_WEIGHTS_NOTE = (
    "w_raw: the expected-utility argmax; w_smoothed: after smoothing and the daily change "
    "cap; w_final: after the risk envelope (drawdown guard, drift throttle), drawn over w_smoothed, so orange "
    "shows where the envelope moved the weight. Exposure: gross exposure after volatility scaling, the rest "
    "in cash. Shaded bands alternate folds."
)


def _section(anchor: str, title: str, body: str) -> Section:
    return Section(anchor, title, Markup(body))


def _chart(png: bytes, alt: str, note: str = "") -> str:
    return fragment("chart", png=png_data(png), alt=alt, note=note)


def _subtitle(oos_daily: pd.DataFrame, metrics: Mapping[str, Any]) -> str:
    decisions = session_dates(oos_daily.index)
    realized = oos_daily["realized_ts"].dropna()
    folds = sorted(oos_daily["fold"].astype(str).unique())
    text = (
        f"Out of sample: decisions {decisions[0]:%Y-%m-%d} to {decisions[-1]:%Y-%m-%d} "
        f"({len(oos_daily)} sessions, {len(folds)} folds: {folds[0]}-{folds[-1]})"
    )
    if len(realized):
        r = session_dates(pd.DatetimeIndex(realized))
        text += f"; returns realised {r[0]:%Y-%m-%d} to {r[-1]:%Y-%m-%d}"
    return text + "."


def render_report(
    oos_daily: pd.DataFrame, metrics: Mapping[str, Any], title: str | None = None, top_features: int = 15
) -> str:
    """Render the walk-forward report as one self-contained HTML page.

    Parameters
    ----------
    oos_daily : DataFrame
        Out-of-sample daily path, see the module docstring (returns are fractions realised over
        the next session, ``realized_ts``).
    metrics : mapping
        Content of ``metrics.json``, see the module docstring.
    title : str, optional
        Page title (default: :func:`report_title`, naming the run's leg symbols).
    top_features : int
        Features shown in the importance heat map (by mean normalised gain across folds).

    Returns
    -------
    str
        The HTML document. Deterministic: the same inputs give the same string.

    Raises
    ------
    InputDataError
        When ``oos_daily`` lacks a required column or has a bad index, or ``metrics`` has no
        allocator figures.
    """
    validate_oos_daily(oos_daily)
    title = report_title(metrics) if title is None else title
    labels = {s: strategy_label(s, metrics) for s in REPORT_ORDER}
    sections = [
        _section("verdict", "Verdict", _verdict(metrics)),
        _section("headline", "Headline: allocator vs baselines", _headline(metrics)),
        _section(
            "equity",
            "Equity curves and drawdowns",
            _chart(equity_drawdown_png(oos_daily, labels), "Equity curves and drawdowns"),
        ),
        _section(
            "weights",
            "Weights and exposure",
            _chart(weights_png(oos_daily, leg_symbols(metrics)[0]), "w_qqq and exposure", _WEIGHTS_NOTE),
        ),
        *(
            [_section("envelope", "The risk envelope at work", envelope_section(oos_daily, metrics))]
            if "envelope_vol" in oos_daily.columns
            else []
        ),
        _section("ablations", "Ablations: envelope only, model only, confidence rule", ablation_section(metrics)),
        _section("attribution", "Return attribution", attribution_section(metrics)),
        _section("folds", "Per fold: allocator vs baseline", _fold_section(metrics)),
        _section("calibration", "Calibration", _calibration_section(metrics)),
        _section("importance", "Feature-importance stability", _importance_section(metrics, top_features)),
        _section("lag", "Execution lag", _lag_section(metrics)),
        _section("evidence", "Evidence: uncertainty and overfitting", evidence_section(metrics)),
        _section("gates", "Acceptance gates", _gate_section(metrics)),
    ]
    nav = [
        ("verdict", "Verdict"),
        ("headline", "Headline"),
        ("equity", "Equity"),
        ("weights", "Weights"),
        *([("envelope", "Envelope")] if "envelope_vol" in oos_daily.columns else []),
        ("ablations", "Ablations"),
        ("attribution", "Attribution"),
        ("folds", "Folds"),
        ("calibration", "Calibration"),
        ("importance", "Importance"),
        ("lag", "Lag"),
        ("evidence", "Evidence"),
        ("gates", "Gates"),
    ]
    if metrics.get("planted_signal"):
        sections.append(_section("planted", "Planted signal: what each stage keeps", planted_section(metrics)))
        nav.append(("planted", "Planted"))
    tuning = metrics.get("tuning") or {}
    if tuning:
        sections.append(_section("tuning", "Tuning", _tuning_section(tuning)))
        nav.append(("tuning", "Tuning"))
    sections.append(_section("recompute", "How to recompute", _recompute_note(metrics.get("settings"))))
    nav.append(("recompute", "Recompute"))
    return page(title, _subtitle(oos_daily, metrics), nav, sections)


def publish_report(oos_daily: pd.DataFrame, metrics: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Write ``oos_daily.parquet`` and ``report.html`` (atomically) into ``directory``; returns
    their paths (``metrics.json`` is the report asset's own value, stored beside them)."""
    return {
        "oos_daily": write_parquet(oos_daily, directory / "oos_daily.parquet"),
        "report": write_text(render_report(oos_daily, metrics), directory / "report.html"),
    }
