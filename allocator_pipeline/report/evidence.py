"""Report sections of the verdict's evidence: bootstrap intervals, overfitting statistics, return
attribution and the ablations.

Each builder reads ``metrics`` (the content of ``metrics.json``: ``bootstrap``, ``deflated_sharpe``,
``pbo``, ``attribution``, ``strategies``; see ``core/evaluation``), formats its figures and renders
its template (``templates/report/<section>.html.j2``); a section whose figures are absent (an
older metrics.json) says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from allocator_pipeline.report.charts import envelope_png
from allocator_pipeline.report.diagnostic_charts import attribution_png
from allocator_pipeline.report.html import Cell, cell, fragment, png_data, signed_class
from allocator_pipeline.report.tables import (
    ABLATIONS,
    MISSING,
    as_float,
    fmt_number,
    fmt_pct,
    fmt_ratio,
    headline_cells,
    headline_headers,
    headline_table,
)

ATTRIBUTION_TERMS = ("allocation", "exposure", "interaction", "cost")
_TERM_NOTES = {
    "allocation": "(w - b)(r_qqq - r_spy): the allocator's weight against the baseline's, fully invested",
    "exposure": "(1 - e)(r_cash - P(b)): cash instead of the baseline's invested book",
    "interaction": "(e - 1)(w - b)(r_qqq - r_spy): the weight change on the share held in cash",
    "cost": "c_baseline - c_allocator: trading costs (negative: the allocator pays more)",
}


def _pp(value: Any) -> str:
    x = as_float(value)
    return MISSING if x is None else f"{x * 100:+.3f} pp"


def _bootstrap_values(metrics: Mapping[str, Any]) -> dict[str, Any]:
    boot = metrics.get("bootstrap")
    if not boot:
        return {"boot_rows": []}
    rows = []
    for key, label, fmt in (
        ("calmar", "Calmar (allocator - baseline)", lambda v: fmt_number(v)),
        ("avg_monthly_pnl", "Avg monthly PnL (allocator - baseline)", _pp),
    ):
        b = boot.get(key) or {}
        lower = as_float(b.get("lower"))
        rows.append(
            [
                cell(label, "txt"),
                cell(fmt(b.get("point")), signed_class(as_float(b.get("point")))),
                cell(fmt(b.get("lower"))),
                cell(fmt(b.get("upper"))),
                cell(fmt_pct(b.get("share_positive"), 1)),
                cell("PASS" if lower is not None and lower > 0 else "FAIL", "pass" if lower and lower > 0 else "fail"),
            ]
        )
    return {
        "boot_rows": rows,
        "confidence": f"{float(boot['confidence']):.0%}",
        **{k: boot[k] for k in ("resamples", "block_length", "seed", "n_sessions")},
    }


def _overfitting_values(metrics: Mapping[str, Any]) -> dict[str, Any]:
    d = metrics.get("deflated_sharpe")
    p = metrics.get("pbo")
    if not d or not p:
        return {"statistics": []}
    gates = (metrics.get("settings") or {}).get("gates") or {}
    rows = [
        [
            "Out-of-sample Sharpe of the weight choice over the baseline (annualised information ratio)",
            fmt_ratio(d.get("sharpe_annualised"), 3),
        ],
        ["Trials run across the folds' studies (N)", fmt_number(d.get("n_trials"))],
        [
            "Variance of the trials' per-session Sharpe (V, pooled within studies)",
            fmt_number(d.get("trial_sharpe_variance")),
        ],
        ["SR0: expected best Sharpe of N unskilled trials (annualised)", fmt_ratio(d.get("sr0_annualised"), 3)],
        [
            "Skewness / kurtosis of its daily returns",
            f"{fmt_ratio(d.get('skewness'))} / {fmt_ratio(d.get('kurtosis'))}",
        ],
        ["Sessions (T)", fmt_number(d.get("n_sessions"))],
        [
            "Deflated Sharpe ratio",
            f"{fmt_ratio(d.get('dsr'), 3)} (threshold {fmt_ratio(gates.get('min_deflated_sharpe'), 2)})",
        ],
        [
            "PBO (CSCV, mean over folds)",
            f"{fmt_ratio(p.get('value'), 3)} (threshold {fmt_ratio(gates.get('max_pbo'), 2)})",
        ],
    ]
    folds = p.get("folds") or {}
    frows = [
        [
            cell(fold, "txt"),
            cell(fmt_ratio(f.get("pbo"), 3)),
            cell(fmt_number(f.get("n_trials"))),
            cell(fmt_number(f.get("n_sessions"))),
            cell(fmt_number(f.get("block_sessions"))),
            cell(fmt_number(f.get("n_combinations"))),
            cell(fmt_ratio(f.get("mean_logit"), 3)),
        ]
        for fold, f in sorted(folds.items())
    ]
    return {
        "statistics": [[cell(a, "txt"), cell(b)] for a, b in rows],
        "pbo_rows": frows,
        "skipped": sorted((p.get("skipped") or {}).items()),
        "n_blocks": p.get("n_blocks"),
    }


def evidence_section(metrics: Mapping[str, Any]) -> str:
    """The bootstrap intervals of the gain over the baseline and the overfitting statistics."""
    return fragment("evidence", **_bootstrap_values(metrics), **_overfitting_values(metrics))


def attribution_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Per fold (and ``overall``): the attribution sums and ``difference`` (fractions of capital)."""
    att = metrics.get("attribution") or {}
    rows = {fold: part for fold, part in sorted((att.get("folds") or {}).items())}
    columns = [*ATTRIBUTION_TERMS, "difference"]
    frame = pd.DataFrame([{c: as_float(r.get(c)) for c in columns} for r in rows.values()], index=list(rows))
    return frame.reindex(columns=columns).astype("float64")


def attribution_section(metrics: Mapping[str, Any]) -> str:
    """The return attribution: chart per fold, table per fold and overall, the identity."""
    att = metrics.get("attribution") or {}
    if not att.get("folds"):
        return fragment("attribution", rows=[])
    folds = attribution_frame(metrics)
    overall = att["overall"]

    def row(name: str, part: Mapping[str, Any], scale: str = "") -> list[Cell]:
        values = part if not scale else part.get("annualised", {})
        return [
            cell(name + scale, "txt"),
            cell(fmt_number(part.get("n_sessions"))),
            *[cell(_pp(values.get(t)), signed_class(as_float(values.get(t)))) for t in ATTRIBUTION_TERMS],
            cell(_pp(values.get("difference")), signed_class(as_float(values.get("difference")))),
        ]

    rows = [row(fold, part) for fold, part in sorted(att["folds"].items())]
    rows += [row("overall", overall), row("overall", overall, " (per year)")]
    return fragment(
        "attribution",
        rows=rows,
        terms=[(t, _TERM_NOTES[t]) for t in ATTRIBUTION_TERMS],
        png=png_data(attribution_png(folds)),
    )


def ablation_section(metrics: Mapping[str, Any]) -> str:
    """The allocator against its two ablations and the baseline, same sessions and costs."""
    strategies = metrics.get("strategies") or {}
    present = [a for a in ABLATIONS if a in strategies]
    if not present or "allocator" not in strategies:
        return fragment("ablations", rows=[])
    keep = ["allocator", *present, *(["baseline"] if "baseline" in strategies else [])]
    table = headline_table({"strategies": {k: strategies[k] for k in keep}, "settings": metrics.get("settings")})
    cells = headline_cells(table)
    headers = headline_headers(str(table.attrs.get("currency", "USD")))
    rows = [
        [cell(v, "txt" if c == "Strategy" else "num") for c, v in zip(cells.columns, r)]
        for r in cells.itertuples(index=False, name=None)
    ]
    parts = []
    for other, what in (
        ("envelope_only", "a plain risk overlay on the static weight"),
        ("model_only", "the model's weight alone"),
    ):
        if other in table.index:
            a, b = table.loc["allocator"], table.loc[other]
            parts.append(
                f"allocator minus {other.replace('_', ' ')} ({what}): CAGR {_pp(a['CAGR'] - b['CAGR'])}, "
                f"Calmar {fmt_number(a['Calmar'] - b['Calmar'])}, max drawdown {_pp(a['MaxDD'] - b['MaxDD'])}"
            )
    return fragment(
        "ablations",
        headers=[headers[c] for c in cells.columns],
        rows=rows,
        classes=["hl" if s == "allocator" else "" for s in cells.index],
        differences=parts,
    )


def planted_section(metrics: Mapping[str, Any]) -> str:
    """Stage retention on a planted-signal Step 3 directory (``metrics["planted_signal"]``)."""
    planted = metrics.get("planted_signal") or {}
    meta, retention = planted.get("generator") or {}, planted.get("retention") or {}
    rows: list[list[Cell]] = [
        [cell(label, "txt"), cell(fmt_number(retention.get(key)))]
        for label, key in (
            ("planted signal (daily)", "signal"),
            ("planted signal, trailing mean over its horizon", "signal_trailing_mean"),
            ("w_raw (policy)", "w_raw"),
            ("w_smoothed", "w_smoothed"),
            ("w_final (traded)", "w_final"),
        )
    ]
    return fragment(
        "planted",
        rows=rows,
        ic=meta.get("ic"),
        horizon=meta.get("horizon"),
        rule_window=planted.get("rule_window", "?"),
        seed=meta.get("seed"),
        sessions=retention.get("sessions"),
    )


def envelope_section(oos_daily: pd.DataFrame, metrics: Mapping[str, Any]) -> str:
    """The risk envelope at work (chart), the borrowing rule that applies, and the trade-off of other
    envelopes on this run's sessions (the baseline weight through each variant)."""
    envelope = ((metrics.get("settings") or {}).get("envelope")) or {}
    soft, hard = float(envelope.get("dd_soft", 0.10)), float(envelope.get("dd_hard", 0.20))
    return fragment(
        "envelope",
        png=png_data(envelope_png(oos_daily, soft, hard)),
        borrowing=(metrics.get("comparisons") or {}).get("borrowing"),
        rows=[
            [
                cell(r["variant"], "txt"),
                cell(fmt_pct(r["mean_exposure"], 0)),
                cell(fmt_pct(r["max_drawdown"], 1)),
                cell(fmt_pct(r["avg_monthly_pnl"], 3)),
                cell(fmt_ratio(r["calmar"], 3)),
                cell(fmt_pct(r["cagr"], 2)),
            ]
            for r in metrics.get("envelope_tradeoff") or []
        ],
    )
