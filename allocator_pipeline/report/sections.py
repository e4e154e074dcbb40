"""Sections of the walk-forward report page: verdict, headline, folds, calibration, importance, gates, tuning.

Each builder formats its figures from ``metrics`` (the content of ``metrics.json``, see
``report/page.py``) and renders its template, ``templates/report/<section>.html.j2`` (the markup
and the prose are there); ``render_report`` (``report/page.py``) puts them into the page's layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR
from allocator_pipeline.core.common.storage import to_json_text
from allocator_pipeline.report.charts import fold_bars_png
from allocator_pipeline.report.comparisons import comparison_lines
from allocator_pipeline.report.diagnostic_charts import importance_heatmap_png, reliability_png
from allocator_pipeline.report.diagnostics import (
    TUNING_COLUMNS,
    calibration_table,
    importance_matrix,
    mean_pairwise_spearman,
    parameter_stability,
    pooled_ece,
    pooled_reliability,
    tuning_table,
)
from allocator_pipeline.report.html import cell, fragment, png_data, signed_class
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
    three_way = comparison_lines(metrics)  # the three-way verdict under the seed's (the CLI's words)
    if metrics.get("accepted"):
        skipped = [str(g["name"]) for g in gates if not g.get("evaluated", True)]
        evaluated = len(gates) - len(skipped)
        text = (
            f"The allocator passed all {evaluated} evaluated acceptance gates out of sample and may be promoted"
            + (f" (not evaluated: {', '.join(skipped)})." if skipped else ".")
            if gates
            else "The allocator was accepted (no gate results recorded)."
        )
        return fragment("verdict", accepted=True, lead=text, failed=[], three_way=three_way)
    items = [
        {
            "name": gate.get("name"),
            "value": fmt_gate(gate.get("name"), gate.get("value")),
            "interval": fmt_interval(gate.get("interval"), gate.get("name")) if gate.get("interval") else "",
            "threshold": fmt_gate(gate.get("name"), gate.get("threshold")),
            "miss": None if gate["miss"] is None else fmt_gate(gate.get("name"), gate["miss"]),
            "detail": gate.get("detail") or "",
        }
        for gate in failed
    ]
    if failed:
        lead = f"{len(failed)} of {len(gates)} acceptance gates failed; nothing is promoted:"
    else:
        lead = "The allocator was not accepted (no failed gate recorded); nothing is promoted."
    return fragment("verdict", accepted=False, lead=lead, failed=items, three_way=three_way)


def _headline(metrics: Mapping[str, Any]) -> str:
    table = headline_table(metrics)
    cells = headline_cells(table)
    headers = headline_headers(str(table.attrs.get("currency", "USD")))
    rows = [
        [cell(v, "txt" if c == "Strategy" else "num") for c, v in zip(cells.columns, r)]
        for r in cells.itertuples(index=False, name=None)
    ]
    classes = ["hl" if s == "allocator" else "upper" if s == "oracle" else "" for s in cells.index]
    deltas = ""
    if "baseline" in table.index:
        a, b = table.loc["allocator"], table.loc["baseline"]
        deltas = "; ".join(
            [
                f"CAGR {_delta_pct(a['CAGR'], b['CAGR'])}",
                f"Calmar {_delta_ratio(a['Calmar'], b['Calmar'])}",
                f"avg monthly PnL {_delta_pct(a['AvgMonthlyPnL'], b['AvgMonthlyPnL'])}",
                f"max drawdown {_delta_pct(a['MaxDD'], b['MaxDD'])} (positive = shallower)",
            ]
        )
    return fragment("headline", headers=[headers[c] for c in cells.columns], rows=rows, classes=classes, deltas=deltas)


def _delta_pct(a: float, b: float) -> str:
    d = a - b
    return MISSING if np.isnan(d) else f"{d * 100:+.2f} pp"


def _delta_ratio(a: float, b: float) -> str:
    d = a - b
    return MISSING if np.isnan(d) else f"{d:+.2f}"


def _fold_section(metrics: Mapping[str, Any]) -> str:
    folds = fold_comparison(metrics)
    if folds.empty:
        return fragment("folds", rows=[])
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
    return fragment(
        "folds",
        png=png_data(fold_bars_png(folds)),
        wins_calmar=int((folds["calmar_diff"] > 0).sum()),
        wins_pnl=int((folds["avg_monthly_pnl_diff"] > 0).sum()),
        headers=headers,
        rows=rows,
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
        return fragment("calibration", rows=[])
    before, after = pooled_reliability(calibration, "before"), pooled_reliability(calibration, "after")
    png = png_data(reliability_png(before, after, pooled_ece(before), pooled_ece(after)))
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
    return fragment("calibration", png=png, headers=headers, rows=rows)


def _importance_section(metrics: Mapping[str, Any], top_features: int) -> str:
    importance = metrics.get("importance") or {}
    matrix = importance_matrix(importance)
    if matrix.empty:
        return fragment("importance", rows=[])
    threshold = as_float(((metrics.get("settings") or {}).get("gates") or {}).get("min_importance_stability"))
    top = matrix.head(top_features)
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
    return fragment(
        "importance",
        rows=rows,
        n_folds=matrix.shape[1],
        n_features=matrix.shape[0],
        rho=fmt_ratio(mean_pairwise_spearman(matrix), 3),
        threshold=None if threshold is None else fmt_ratio(threshold, 3),
        png=png_data(importance_heatmap_png(top)),
    )


def _lag_section(metrics: Mapping[str, Any]) -> str:
    table = lag_table(metrics)
    if table.empty:
        return fragment("lag", rows=[])
    cells = headline_cells(table)
    headers = headline_headers(str(table.attrs.get("currency", "USD")))
    rows = [
        [cell(v, "txt" if c == "Strategy" else "num") for c, v in zip(cells.columns, r)]
        for r in cells.itertuples(index=False, name=None)
    ]
    setting = (metrics.get("execution_lag") or {}).get("setting", 0)
    return fragment("lag", setting=setting, headers=[headers[c] for c in cells.columns], rows=rows)


def _gate_mark(gate: Mapping[str, Any]) -> str:
    """PASS, FAIL, or NOT EVALUATED (``passed`` None: e.g. PBO without tuning)."""
    if gate.get("passed") is None and gate.get("evaluated") is False:
        return "NOT EVALUATED"
    return "PASS" if gate.get("passed") else "FAIL"


def _gate_section(metrics: Mapping[str, Any]) -> str:
    gates = list(metrics.get("gates") or [])
    if not gates:
        return fragment("gates", rows=[])
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
    return fragment("gates", rows=rows)


def _tuning_section(tuning: Mapping[str, Any]) -> str:
    table = tuning_table(tuning)
    params = [c for c in table.columns if c not in TUNING_COLUMNS]
    headers = ["Fold", "Trials", "Traded", "Its objective", "Duration (s)", *params]
    rows = [
        [
            cell(fold, "txt"),
            cell(fmt_number(r["n_trials"])),
            cell(r["traded"] or "n/a", "txt"),
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
    return fragment("tuning", headers=headers, rows=rows, stability=srows)


def _recompute_note(settings: Mapping[str, Any] | None = None) -> str:
    """How to recompute every figure from ``oos_daily.parquet``, then the run's settings (JSON)."""
    return fragment("recompute", year=SESSIONS_PER_YEAR, settings=to_json_text(settings) if settings else "")
