"""Report sections of the verdict's evidence: bootstrap intervals, overfitting statistics, return
attribution and the ablations.

Each builder reads ``metrics`` (the content of ``metrics.json``: ``bootstrap``, ``deflated_sharpe``,
``pbo``, ``attribution``, ``strategies``; see ``core/evaluation``) and returns an HTML fragment;
a section whose figures are absent (an older metrics.json) says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from allocator_pipeline.report.charts import envelope_png
from allocator_pipeline.report.diagnostic_charts import attribution_png
from allocator_pipeline.report.html import Cell, cell, esc, html_table, png_img, signed_class
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


def _bootstrap_block(metrics: Mapping[str, Any]) -> str:
    boot = metrics.get("bootstrap")
    if not boot:
        return "<p>No bootstrap recorded.</p>"
    conf = float(boot["confidence"])
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
    headers = ["Difference", "Point", f"{conf:.0%} lower", f"{conf:.0%} upper", "Resamples > 0", "Lower bound > 0"]
    lead = (
        f"<p>Stationary block bootstrap of the paired daily returns (allocator and baseline resampled with "
        f"the same sessions): {esc(boot['resamples'])} resamples, geometric blocks of mean "
        f"{esc(boot['block_length'])} sessions, seed {esc(boot['seed'])}, over {esc(boot['n_sessions'])} "
        f"sessions. Each resample is placed on the original calendar and measured with the project's own "
        f"Calmar and average-monthly-PnL definitions; the interval is the {conf:.0%} percentile interval. "
        "A 'beats the baseline' gate passes only when its lower bound is above 0.</p>"
    )
    return lead + html_table(headers, rows)


def _overfitting_block(metrics: Mapping[str, Any]) -> str:
    d = metrics.get("deflated_sharpe")
    p = metrics.get("pbo")
    if not d or not p:
        return "<p>No overfitting statistics recorded.</p>"
    gates = (metrics.get("settings") or {}).get("gates") or {}
    rows = [
        ["Out-of-sample Sharpe over cash (annualised)", fmt_ratio(d.get("sharpe_annualised"), 3)],
        ["Trials run across the folds' studies (N)", fmt_number(d.get("n_trials"))],
        [
            "Variance of the trials' per-session Sharpe (V, pooled within studies)",
            fmt_number(d.get("trial_sharpe_variance")),
        ],
        ["SR0: expected best Sharpe of N unskilled trials (annualised)", fmt_ratio(d.get("sr0_annualised"), 3)],
        [
            "Skewness / kurtosis of the daily excess returns",
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
    table = html_table(["Statistic", "Value"], [[cell(a, "txt"), cell(b)] for a, b in rows])
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
    ftable = (
        html_table(["Fold", "PBO", "Trials", "Sessions", "Block sessions", "Combinations", "Mean logit"], frows)
        if frows
        else "<p>No fold had two complete trials with inner-block returns.</p>"
    )
    skipped = p.get("skipped") or {}
    note = "".join(f"<li>{esc(f)}: {esc(r)}</li>" for f, r in sorted(skipped.items()))
    lead = (
        "<p>Deflated Sharpe ratio (Bailey and Lopez de Prado, 2014): the probability that the allocator's true "
        "Sharpe exceeds SR0, the Sharpe the best of the N trials behind it would reach by luck, corrected for "
        "the sample length and the returns' skewness and kurtosis. PBO (Bailey, Borwein, Lopez de Prado and "
        f"Zhu): per fold, the trials' inner-block daily returns cut into S = {esc(p.get('n_blocks'))} blocks; "
        "over every half/half split, how often the in-sample best trial ranks at or below the out-of-sample "
        "median.</p>"
    )
    return lead + table + "<h3>PBO per fold</h3>" + ftable + (f"<p>Skipped:</p><ul>{note}</ul>" if note else "")


def evidence_section(metrics: Mapping[str, Any]) -> str:
    """The bootstrap intervals of the gain over the baseline and the overfitting statistics."""
    return (
        "<h3>Gain over the baseline, with its uncertainty</h3>"
        + _bootstrap_block(metrics)
        + "<h3>Overfitting statistics</h3>"
        + _overfitting_block(metrics)
    )


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
        return "<p>No return attribution recorded.</p>"
    folds = attribution_frame(metrics)
    overall = att["overall"]
    headers = ["Fold", "Sessions", "Allocation", "Exposure", "Interaction", "Cost", "Allocator - baseline"]

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
    notes = "".join(f"<li><b>{t}</b> = {esc(_TERM_NOTES[t])}</li>" for t in ATTRIBUTION_TERMS)
    lead = (
        "<p>Every out-of-sample day, the allocator's return minus the baseline's splits exactly into four terms "
        "(w, e: the allocator's executed weight and exposure; b: the baseline weight; P(x) = x r_qqq + (1 - x) "
        f"r_spy):</p><ul>{notes}</ul><p>A fold's figure is the sum of its daily contributions, so the terms add up "
        "to the sum of the daily return differences (an arithmetic figure, not the difference of compounded "
        "returns); 'per year' is the overall sum times 252 / sessions.</p>"
    )
    chart = png_img(attribution_png(folds), "Return attribution per fold")
    return lead + chart + html_table(headers, rows)


def ablation_section(metrics: Mapping[str, Any]) -> str:
    """The allocator against its two ablations and the baseline, same sessions and costs."""
    strategies = metrics.get("strategies") or {}
    present = [a for a in ABLATIONS if a in strategies]
    if not present or "allocator" not in strategies:
        return "<p>No ablation recorded.</p>"
    keep = ["allocator", *present, *(["baseline"] if "baseline" in strategies else [])]
    table = headline_table({"strategies": {k: strategies[k] for k in keep}, "settings": metrics.get("settings")})
    cells = headline_cells(table)
    headers = headline_headers(str(table.attrs.get("currency", "USD")))
    rows = [
        [cell(v, "txt" if c == "Strategy" else "num") for c, v in zip(cells.columns, r)]
        for r in cells.itertuples(index=False, name=None)
    ]
    body = html_table(
        [headers[c] for c in cells.columns], rows, ["hl" if s == "allocator" else "" for s in cells.index]
    )
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
    lead = (
        "<p>Ablations on the allocator's own sessions, same costs and execution lag: <b>envelope only</b> runs the "
        "baseline weight through the allocator's risk envelope (drawdown guard, volatility scaling, drift "
        "throttle) with each fold's tuned settings, its state continuing across folds exactly like the allocator "
        "path; <b>model only</b> trades the allocator's smoothed weight fully invested, with no envelope. Does the "
        "ML layer add anything a plain risk overlay would not?</p>"
    )
    return lead + body + "".join(f"<p>{esc(p)}.</p>" for p in parts)


def planted_section(metrics: Mapping[str, Any]) -> str:
    """Stage retention on a planted-signal Step 3 directory (``metrics["planted_signal"]``)."""
    planted = metrics.get("planted_signal") or {}
    meta, retention = planted.get("generator") or {}, planted.get("retention") or {}
    lead = (
        f"<p>This run's Step 3 directory was made by <code>allocator synth-step3</code>: planted IC "
        f"{esc(meta.get('ic'))} on the next {esc(meta.get('horizon'))} sessions' leg spread (seed {esc(meta.get('seed'))}). "
        "Retention = correlation with that future spread over the out-of-sample sessions "
        f"({esc(retention.get('sessions'))}); the transparent rule is a strategy of the headline.</p>"
    )
    rows: list[list[Cell]] = [
        [cell(label, "txt"), cell(fmt_number(retention.get(key)))]
        for label, key in (
            ("planted signal (daily)", "signal"),
            ("planted signal, trailing mean (the rule's input)", "signal_trailing_mean"),
            ("w_raw (policy)", "w_raw"),
            ("w_smoothed", "w_smoothed"),
            ("w_final (traded)", "w_final"),
        )
    ]
    return lead + html_table(["Stage", "Correlation with the future spread"], rows)


def envelope_section(oos_daily: pd.DataFrame, metrics: Mapping[str, Any]) -> str:
    """The risk envelope at work (chart), the borrowing rule that applies, and the trade-off of other
    envelopes on this run's sessions (the baseline weight through each variant)."""
    envelope = ((metrics.get("settings") or {}).get("envelope")) or {}
    soft, hard = float(envelope.get("dd_soft", 0.10)), float(envelope.get("dd_hard", 0.20))
    body = png_img(envelope_png(oos_daily, soft, hard), "exposure, volatility against its target, drawdown")
    borrowing = (metrics.get("comparisons") or {}).get("borrowing")
    if borrowing:
        body += f'<p class="sub">This run: {esc(borrowing)}.</p>'
    rows = metrics.get("envelope_tradeoff") or []
    if rows:
        table = html_table(
            ["Envelope (baseline weight through it)", "Mean exposure", "MaxDD", "Avg monthly PnL", "Calmar", "CAGR"],
            [
                [
                    cell(r["variant"], "txt"),
                    cell(fmt_pct(r["mean_exposure"], 0)),
                    cell(fmt_pct(r["max_drawdown"], 1)),
                    cell(fmt_pct(r["avg_monthly_pnl"], 3)),
                    cell(fmt_ratio(r["calmar"], 3)),
                    cell(fmt_pct(r["cagr"], 2)),
                ]
                for r in rows
            ],
        )
        body += (
            table + '<p class="sub">What a stricter or looser envelope would have cost or saved on these sessions, '
            "with no model (the baseline weight through each variant, the same costs). For information only: the "
            "defaults were chosen on synthetic fixtures, never on this table (docs/method.md, policy and risk envelope).</p>"
        )
    return body
