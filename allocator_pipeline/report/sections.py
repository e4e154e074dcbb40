"""Sections of the walk-forward report page: verdict, headline, folds, calibration, importance, gates, tuning.

Each builder returns an HTML fragment from ``metrics`` (the content of ``metrics.json``, see
``report/page.py``); ``render_report`` (``report/page.py``) wraps them into the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR
from allocator_pipeline.report.charts import fold_bars_png
from allocator_pipeline.report.comparisons import comparison_lines
from allocator_pipeline.report.diagnostic_charts import importance_heatmap_png, reliability_png
from allocator_pipeline.report.diagnostics import (
    calibration_table,
    importance_matrix,
    mean_pairwise_spearman,
    parameter_stability,
    pooled_ece,
    pooled_reliability,
    tuning_table,
)
from allocator_pipeline.report.html import cell, esc, html_table, png_img, signed_class
from allocator_pipeline.report.tables import (
    MISSING,
    as_float,
    failed_gates,
    fmt_gate,
    fmt_interval,
    fmt_number,
    fmt_pct,
    fmt_ratio,
    fold_comparison,
    headline_cells,
    headline_headers,
    headline_table,
    lag_table,
)


def _verdict(metrics: Mapping[str, Any]) -> str:
    gates = list(metrics.get("gates") or [])
    failed = failed_gates(metrics)
    if metrics.get("accepted"):
        skipped = [str(g["name"]) for g in gates if not g.get("evaluated", True)]
        evaluated = len(gates) - len(skipped)
        text = (
            f"The allocator passed all {evaluated} evaluated acceptance gates out of sample and may be promoted"
            + (f" (not evaluated: {', '.join(skipped)})." if skipped else ".")
            if gates
            else "The allocator was accepted (no gate results recorded)."
        )
        return (
            f'<div class="verdict accepted"><div class="word">ACCEPTED</div><div>{esc(text)}</div>'
            f"{_three_way(metrics)}</div>"
        )
    items = []
    for gate in failed:
        miss = "" if gate["miss"] is None else f", missed by {fmt_gate(gate.get('name'), gate['miss'])}"
        detail = f" &mdash; {esc(gate.get('detail'))}" if gate.get("detail") else ""
        interval = f" {fmt_interval(gate.get('interval'), gate.get('name'))}" if gate.get("interval") else ""
        items.append(
            f"<li><b>{esc(gate.get('name'))}</b>: value {esc(fmt_gate(gate.get('name'), gate.get('value')))}{esc(interval)} "
            f"vs threshold {esc(fmt_gate(gate.get('name'), gate.get('threshold')))}{esc(miss)}{detail}</li>"
        )
    if failed:
        lead = f"{len(failed)} of {len(gates)} acceptance gates failed; nothing is promoted:"
    else:
        lead = "The allocator was not accepted (no failed gate recorded); nothing is promoted."
    listing = f"<ul>{''.join(items)}</ul>" if items else ""
    return (
        f'<div class="verdict rejected"><div class="word">REJECTED</div><div>{esc(lead)}</div>{listing}'
        f"{_three_way(metrics)}</div>"
    )


def _three_way(metrics: Mapping[str, Any]) -> str:
    """The three-way verdict under the seed's (``comparison_lines``, the CLI's words)."""
    lines = comparison_lines(metrics)
    if not lines:
        return ""
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return (
        "<div><b>Three-way verdict</b> (the same paired block bootstrap; a comparison passes when both "
        f"lower bounds are above 0; promotion follows the seed's gates):<ul>{items}</ul></div>"
    )


def _headline(metrics: Mapping[str, Any]) -> str:
    table = headline_table(metrics)
    cells = headline_cells(table)
    headers = headline_headers(str(table.attrs.get("currency", "USD")))
    rows = [
        [cell(v, "txt" if c == "Strategy" else "num") for c, v in zip(cells.columns, r)]
        for r in cells.itertuples(index=False, name=None)
    ]
    classes = ["hl" if s == "allocator" else "upper" if s == "oracle" else "" for s in cells.index]
    body = html_table([headers[c] for c in cells.columns], rows, classes)
    if "baseline" in table.index:
        a, b = table.loc["allocator"], table.loc["baseline"]
        parts = [
            f"CAGR {_delta_pct(a['CAGR'], b['CAGR'])}",
            f"Calmar {_delta_ratio(a['Calmar'], b['Calmar'])}",
            f"avg monthly PnL {_delta_pct(a['AvgMonthlyPnL'], b['AvgMonthlyPnL'])}",
            f"max drawdown {_delta_pct(a['MaxDD'], b['MaxDD'])} (positive = shallower)",
        ]
        body += f"<p>Allocator minus baseline: {esc('; '.join(parts))}.</p>"
    body += (
        '<p class="sub">Turnover/yr: annualised traded weight summed over legs. CostDrag: trading costs per '
        "year as a fraction of capital. The oracle follows the hindsight label path (the penalised labels, traded with costs): not an upper bound, and not a "
        "tradable strategy.</p>"
    )
    return body


def _delta_pct(a: float, b: float) -> str:
    d = a - b
    return MISSING if np.isnan(d) else f"{d * 100:+.2f} pp"


def _delta_ratio(a: float, b: float) -> str:
    d = a - b
    return MISSING if np.isnan(d) else f"{d:+.2f}"


def _fold_section(metrics: Mapping[str, Any]) -> str:
    folds = fold_comparison(metrics)
    if folds.empty:
        return "<p>No per-fold metrics recorded.</p>"
    headers = [
        "Fold",
        "CAGR alloc",
        "CAGR base",
        "MaxDD alloc",
        "MaxDD base",
        "Calmar alloc",
        "Calmar base",
        "Calmar diff",
        "AvgMonthlyPnL alloc",
        "AvgMonthlyPnL base",
        "PnL diff",
    ]
    rows = []
    for fold, r in folds.iterrows():
        rows.append(
            [
                cell(fold, "txt"),
                cell(fmt_pct(r["allocator_cagr"])),
                cell(fmt_pct(r["baseline_cagr"])),
                cell(fmt_pct(r["allocator_max_drawdown"])),
                cell(fmt_pct(r["baseline_max_drawdown"])),
                cell(fmt_ratio(r["allocator_calmar"])),
                cell(fmt_ratio(r["baseline_calmar"])),
                cell(_signed(r["calmar_diff"], False), _diff_class(r["calmar_diff"], False)),
                cell(fmt_pct(r["allocator_avg_monthly_pnl"])),
                cell(fmt_pct(r["baseline_avg_monthly_pnl"])),
                cell(_signed(r["avg_monthly_pnl_diff"], True), _diff_class(r["avg_monthly_pnl_diff"], True)),
            ]
        )
    wins_c = int((folds["calmar_diff"] > 0).sum())
    wins_p = int((folds["avg_monthly_pnl_diff"] > 0).sum())
    summary = (
        f"The allocator beats the baseline on Calmar in {wins_c} of {len(folds)} folds and on average "
        f"monthly PnL in {wins_p} of {len(folds)} folds."
    )
    return (
        png_img(fold_bars_png(folds), "Per-fold Calmar and average monthly PnL")
        + f"<p>{esc(summary)}</p>"
        + html_table(headers, rows)
    )


def _signed(value: float, pct: bool) -> str:
    """Signed difference, 2 decimals (percent points for fractions); one that rounds to zero
    reads 0.00 without a sign."""
    if np.isnan(value):
        return MISSING
    shown = round(value * 100 if pct else value, 2)
    text = "0.00" if shown == 0 else f"{shown:+.2f}"
    return f"{text}%" if pct else text


def _diff_class(value: float, pct: bool) -> str:
    return signed_class(round(value * 100 if pct else value, 2) if not np.isnan(value) else None)


def _calibration_section(metrics: Mapping[str, Any]) -> str:
    calibration = metrics.get("calibration") or {}
    if not calibration:
        return "<p>No calibration diagnostics recorded.</p>"
    before, after = pooled_reliability(calibration, "before"), pooled_reliability(calibration, "after")
    chart = png_img(
        reliability_png(before, after, pooled_ece(before), pooled_ece(after)),
        "Reliability diagram before and after calibration",
    )
    table = calibration_table(calibration)
    headers = [
        "Fold",
        "Calibrator",
        "Log loss before",
        "Log loss after",
        "Brier before",
        "Brier after",
        "ECE before",
        "ECE after",
        "Accuracy after",
        "Top-2 accuracy after",
    ]
    rows = []
    for fold, r in table.iterrows():
        rows.append(
            [
                cell(fold, "txt"),
                cell(r["chosen"] or MISSING, "txt"),
                cell(fmt_ratio(r["log_loss_before"], 4)),
                cell(fmt_ratio(r["log_loss_after"], 4), signed_class(r["log_loss_before"] - r["log_loss_after"])),
                cell(fmt_ratio(r["brier_before"], 4)),
                cell(fmt_ratio(r["brier_after"], 4), signed_class(r["brier_before"] - r["brier_after"])),
                cell(fmt_pct(r["ece_before"])),
                cell(fmt_pct(r["ece_after"]), signed_class(r["ece_before"] - r["ece_after"])),
                cell(fmt_pct(r["accuracy_after"])),
                cell(fmt_pct(r["top2_accuracy_after"])),
            ]
        )
    note = (
        '<p class="sub">Scores on each fold\'s test window (11 buckets). Green: better after calibration, '
        "red: worse. ECE: count-weighted |observed frequency - confidence| over confidence bins.</p>"
    )
    return chart + html_table(headers, rows) + note


def _importance_section(metrics: Mapping[str, Any], top_features: int) -> str:
    importance = metrics.get("importance") or {}
    matrix = importance_matrix(importance)
    if matrix.empty:
        return "<p>No feature importance recorded.</p>"
    rho = mean_pairwise_spearman(matrix)
    threshold = as_float(((metrics.get("settings") or {}).get("gates") or {}).get("min_importance_stability"))
    top = matrix.head(top_features)
    lead = (
        f"Mean pairwise Spearman correlation of the gain vectors across {matrix.shape[1]} folds "
        f"({matrix.shape[0]} features): <b>{esc(fmt_ratio(rho, 3))}</b>"
    )
    if threshold is not None:
        lead += f" (gate threshold {esc(fmt_ratio(threshold, 3))})"
    lead += f". The heat map shows the top {len(top)} features by mean gain."
    stats = pd.DataFrame(
        {"mean": top.mean(axis=1), "std": top.std(axis=1, ddof=0), "min": top.min(axis=1), "max": top.max(axis=1)}
    )
    ranks = matrix.rank(axis=0, ascending=False, method="min")
    in_top10 = (ranks.loc[top.index] <= 10).sum(axis=1)
    rows = [
        [
            cell(f, "txt"),
            cell(fmt_pct(s["mean"])),
            cell(fmt_pct(s["std"])),
            cell(fmt_ratio(s["std"] / s["mean"]) if s["mean"] > 0 else MISSING),
            cell(fmt_pct(s["min"])),
            cell(fmt_pct(s["max"])),
            cell(f"{int(in_top10[f])}/{matrix.shape[1]}"),
        ]
        for f, s in stats.iterrows()
    ]
    table = html_table(["Feature", "Mean gain", "Std", "CV", "Min", "Max", "Folds in top 10"], rows)
    return f"<p>{lead}</p>" + png_img(importance_heatmap_png(top), "Feature importance heat map") + table


def _lag_section(metrics: Mapping[str, Any]) -> str:
    table = lag_table(metrics)
    if table.empty:
        return "<p>No execution-lag comparison recorded.</p>"
    cells = headline_cells(table)
    headers = headline_headers(str(table.attrs.get("currency", "USD")))
    rows = [
        [cell(v, "txt" if c == "Strategy" else "num") for c, v in zip(cells.columns, r)]
        for r in cells.itertuples(index=False, name=None)
    ]
    setting = (metrics.get("execution_lag") or {}).get("setting", 0)
    note = (
        f"<p>The same decisions traded at the close they read (lag 0) and at the next close (lag 1). The verdict "
        f"uses <code>backtest.execution_lag = {esc(setting)}</code>. The drawdown guard follows the decision "
        "path's own equity at every lag.</p>"
    )
    return note + html_table([headers[c] for c in cells.columns], rows)


def _gate_mark(gate: Mapping[str, Any]) -> str:
    """PASS, FAIL, or NOT EVALUATED (``passed`` None: e.g. PBO without tuning)."""
    if gate.get("passed") is None and gate.get("evaluated") is False:
        return "NOT EVALUATED"
    return "PASS" if gate.get("passed") else "FAIL"


def _gate_section(metrics: Mapping[str, Any]) -> str:
    gates = list(metrics.get("gates") or [])
    if not gates:
        return "<p>No gate results recorded.</p>"
    rows = [
        [
            cell(g.get("name"), "txt"),
            cell(fmt_gate(g.get("name"), g.get("value"))),
            cell(fmt_interval(g.get("interval"), g.get("name"))),
            cell(fmt_gate(g.get("name"), g.get("threshold"))),
            cell(_gate_mark(g), "pass" if g.get("passed") else ("txt" if g.get("passed") is None else "fail")),
            cell(g.get("detail") or "", "detail"),
        ]
        for g in gates
    ]
    note = (
        '<p class="sub">Interval: the block-bootstrap interval of a difference (see "Evidence"); the two '
        "'beats the baseline' gates pass on its lower bound.</p>"
    )
    return html_table(["Gate", "Value", "Interval", "Threshold", "Verdict", "Detail"], rows) + note


def _tuning_section(tuning: Mapping[str, Any]) -> str:
    table = tuning_table(tuning)
    params = [c for c in table.columns if c not in ("n_trials", "best_value", "duration_s")]
    headers = ["Fold", "Trials", "Best objective", "Duration (s)", *params]
    rows = [
        [
            cell(fold, "txt"),
            cell(fmt_number(r["n_trials"])),
            cell(fmt_number(r["best_value"])),
            cell(fmt_ratio(r["duration_s"], 1)),
            *[cell(fmt_number(r[p]), "txt" if isinstance(r[p], str) else "num") for p in params],
        ]
        for fold, r in table.iterrows()
    ]
    stability = parameter_stability(table)
    srows = []
    for name, s in stability.iterrows():
        if s["kind"] == "numeric":
            srows.append(
                [
                    cell(name, "txt"),
                    cell(s["kind"], "txt"),
                    cell(int(s["folds"])),
                    cell(fmt_number(s["mean"])),
                    cell(fmt_number(s["std"])),
                    cell(fmt_ratio(s["cv"])),
                    cell(fmt_number(s["min"])),
                    cell(fmt_number(s["max"])),
                    cell(fmt_number(s["range"])),
                    cell(int(s["distinct"])),
                    cell("", "txt"),
                ]
            )
        else:
            share = as_float(s["mode_share"])
            mode = f"{s['mode']} ({share * 100:.0f}%)" if share is not None else MISSING
            srows.append(
                [
                    cell(name, "txt"),
                    cell(s["kind"], "txt"),
                    cell(int(s["folds"])),
                    *[cell("")] * 6,
                    cell(int(s["distinct"])),
                    cell(mode, "txt"),
                ]
            )
    sheaders = ["Parameter", "Kind", "Folds", "Mean", "Std", "CV", "Min", "Max", "Range", "Distinct", "Mode"]
    return (
        "<h3>Best parameters per fold</h3>"
        + html_table(headers, rows)
        + "<h3>Parameter stability across folds</h3>"
        + html_table(sheaders, srows)
        + '<p class="sub">CV = population std / |mean|; a small CV and range mean the inner-fold '
        "optimum is stable from year to year.</p>"
    )


def _recompute_note() -> str:
    return (
        '<div class="note"><p>Every figure on this page is computed from <code>oos_daily.parquet</code> '
        "(one row per decision session; the return in row <i>d</i> is realised over the next session, "
        "<code>realized_ts</code>, with that row's costs already deducted), with these conventions:</p><ul>"
        f"<li>{SESSIONS_PER_YEAR} sessions a year; CAGR is geometric: (prod(1 + r))^({SESSIONS_PER_YEAR} / n) - 1 "
        "over the n sessions.</li>"
        "<li>Max drawdown: the deepest fall of the compounded equity curve below its running peak, the "
        "starting capital 1.0 included (a negative fraction).</li>"
        "<li>Calmar = CAGR / |MaxDD|.</li>"
        "<li>Average monthly PnL = mean of calendar-month compounded returns, months taken by "
        "<code>realized_ts</code> in New York time (America/New_York); in currency for the configured "
        "notional.</li>"
        "<li>Volatility = std(daily return) &times; sqrt(252); Sharpe = mean(r - r_cash) / std(r - r_cash) "
        "&times; sqrt(252), with r_cash the session's T-bill return (<code>cash_return</code>).</li>"
        "<li>Turnover = sum(traded) &times; 252 / n (traded weight summed over legs, per year); cost drag = "
        "sum(cost) &times; 252 / n (costs per year, fraction of capital).</li>"
        "</ul></div>"
    )
