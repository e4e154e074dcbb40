"""Two runs side by side (``allocator compare A B``): the terminal table and the HTML page of
:func:`~allocator_pipeline.core.evaluation.run_comparison.compare_runs`'s result.

The page is ``templates/compare.html.j2`` in the report's layout (``templates/layout.html.j2``);
its figures are the report's own strings (``report/tables.py``: percent with 2 decimals, ratios
with 2, the bootstrap lines with 3 as the three-way verdict's), the same on the terminal and on
the page. Deterministic: the same result gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from allocator_pipeline.core.common.storage import write_json, write_text
from allocator_pipeline.report.comparisons import interval_text, signed_pct, signed_ratio
from allocator_pipeline.report.tables import (
    HEADLINE_METRICS,
    format_headline,
    headline_cells,
    headline_headers,
    strategy_label,
)
from allocator_pipeline.report.templating import render

#: ``outcome`` of a difference (core: ``compare_runs``) in words.
OUTCOMES: dict[str, str] = {
    "B": "B is better (both lower bounds above 0)",
    "A": "A is better (both upper bounds below 0)",
    "neither": "not told apart (an interval spans 0)",
    "same": "the same returns in both runs",
}
#: The same, as the comparison table's one word or two.
OUTCOME_WORDS: dict[str, str] = {"B": "B better", "A": "A better", "neither": "not told apart", "same": "the same"}
#: The headline's columns on the comparison (the report's, without the currency and cost columns).
COLUMNS: tuple[str, ...] = ("CAGR", "MaxDD", "Calmar", "AvgMonthlyPnL", "Sharpe", "Vol", "Turnover")
RUNS: tuple[str, str] = ("a", "b")


def _labels_settings(run: Mapping[str, Any]) -> dict[str, Any]:
    symbols = run.get("symbols") or {}
    return {
        "settings": {
            "data": {"qqq_symbol": symbols.get("qqq"), "spy_symbol": symbols.get("spy")},
            "labels": {"baseline_weight": run.get("baseline_weight")},
        }
    }


def side_by_side(result: Mapping[str, Any], strategies: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The two runs' headline figures on their common sessions, run A's row then run B's per
    strategy (``Strategy`` reads ``Allocator - A``): :func:`~allocator_pipeline.report.tables.headline_table`'s
    columns and units. ``strategies``: the rows (default: every strategy both runs hold)."""
    runs = result["runs"]
    both = [s for s in runs["a"]["headline"] if s in runs["b"]["headline"]]
    rows, index = [], []
    for strategy in strategies or tuple(both):
        if strategy not in both:
            continue
        for key in RUNS:
            figures = runs[key]["headline"][strategy]
            row: dict[str, Any] = {
                "Strategy": f"{strategy_label(strategy, _labels_settings(runs[key]))} - {key.upper()}"
            }
            for column, name in HEADLINE_METRICS.items():
                value = figures.get(name)
                row[column] = float("nan") if value is None else float(value)
            rows.append(row)
            index.append(f"{strategy}@{key}")
    return pd.DataFrame(rows, index=pd.Index(index, name="strategy"))


def difference_line(entry: Mapping[str, Any]) -> str:
    """One bootstrapped difference: ``Allocator (B - A): Calmar +0.024 [-0.191, +0.596], avg
    monthly PnL +0.126% [-0.142%, +0.458%] a month, mean daily +0.0069%: not told apart ...``."""
    return (
        f"{entry['label']}: {interval_text(entry)} a month, mean daily {mean_daily(entry['mean_daily'])}: "
        f"{OUTCOMES[entry['outcome']]}"
    )


def mean_daily(value: float) -> str:
    """A mean daily return difference in percent with 4 decimals (``+0.0069%``; zero ``0.0000%``)."""
    return "0.0000%" if value == 0 else f"{value * 100:+.4f}%"


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    return "(absent)" if value is None else str(value)


def differs_rows(result: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """What differs between the runs as ``(what, key, A's value, B's value)`` rows."""
    rows = []
    for what, title in (("settings", "settings"), ("step3", "Step 3"), ("data_range", "data range")):
        for change in result["what_differs"][what]:
            rows.append((title, str(change["key"]), _value(change["a"]), _value(change["b"])))
    return rows


def bootstrap_note(result: Mapping[str, Any]) -> str:
    """The bootstrap's settings in one sentence."""
    b = result["bootstrap"]
    return (
        f"paired stationary block bootstrap (the verdict's own): mean block {b['block_length']} sessions, "
        f"{b['resamples']} resamples, seed {b['seed']}, {b['confidence']:.0%} percentile intervals"
    )


def _run_line(key: str, run: Mapping[str, Any]) -> str:
    failed = f" (failed: {', '.join(run['failed_gates'])})" if run["failed_gates"] else ""
    return (
        f"{key.upper()}: {run['home']}  {run['verdict']}{failed}; out of sample {run['oos']['range']} "
        f"({run['oos']['n_sessions']} sessions); settings {run['settings_fingerprint']} step3 "
        f"{run['step3_fingerprint'] or 'n/a'}"
    )


def format_comparison(result: Mapping[str, Any]) -> str:
    """The comparison for the terminal: the two runs and their verdicts, the headline of the
    allocator, the envelope and the baseline side by side, the bootstrapped differences, what differs."""
    common = result["common"]
    lines = [_run_line(key, result["runs"][key]) for key in RUNS]
    lines.append(
        f"Common out-of-sample sessions: {common['n_sessions']} ({common['start']}..{common['end']}; "
        f"{common['only_a']} only in A, {common['only_b']} only in B)"
    )
    table = side_by_side(result, ("allocator", "envelope_only", "baseline"))
    lines.append(format_headline(table[["Strategy", *COLUMNS]]).rstrip("\n"))
    lines.append(f"B minus A, {bootstrap_note(result)}:")
    lines += [f"  {difference_line(entry)}" for entry in result["differences"].values()]
    rows = differs_rows(result)
    lines.append("What differs:" if rows else "What differs: nothing (settings, Step 3 and data range are the same)")
    lines += [f"  {what} {key}: A {a} | B {b}" for what, key, a, b in rows]
    return "\n".join(lines) + "\n"


def _interval(entry: Mapping[str, Any], fmt: Callable[[Any], str]) -> str:
    return f"[{fmt(entry['lower'])}, {fmt(entry['upper'])}]"


def _outcome_class(outcome: str) -> str:
    return {"B": "pass", "A": "fail"}.get(outcome, "txt")


def render_comparison(result: Mapping[str, Any]) -> str:
    """The comparison as one self-contained HTML page in the report's layout
    (``templates/compare.html.j2``)."""
    table = side_by_side(result)
    cells = headline_cells(table[["Strategy", *COLUMNS]])
    headers = headline_headers("USD")
    runs = result["runs"]
    common = result["common"]
    run_rows = [
        [
            (key.upper(), "txt"),
            (run["oos"]["range"], "txt"),
            (str(run["oos"]["n_sessions"]), "num"),
            (run["settings_fingerprint"], "txt"),
            (run["step3_fingerprint"] or "n/a", "txt"),
            (f"{run['symbols']['qqq']}/{run['symbols']['spy']}", "txt"),
        ]
        for key, run in ((k, runs[k]) for k in RUNS)
    ]
    difference_rows = [
        [
            (entry["label"], "txt"),
            (signed_ratio(entry["calmar"]["point"]), "num"),
            (_interval(entry["calmar"], signed_ratio), "num"),
            (signed_pct(entry["avg_monthly_pnl"]["point"]), "num"),
            (_interval(entry["avg_monthly_pnl"], signed_pct), "num"),
            (mean_daily(entry["mean_daily"]), "num"),
            (OUTCOME_WORDS[entry["outcome"]], _outcome_class(entry["outcome"])),
        ]
        for entry in result["differences"].values()
    ]
    return render(
        "compare.html.j2",
        title="Two allocator runs compared: B against A",
        subtitle=(
            f"{common['n_sessions']} common out-of-sample sessions, {common['start']} to {common['end']} "
            f"({common['only_a']} only in A, {common['only_b']} only in B); every difference is B minus A."
        ),
        nav=[("runs", "Runs"), ("headline", "Headline"), ("differences", "B minus A"), ("differs", "What differs")],
        runs=[(key.upper(), runs[key]) for key in RUNS],
        run_rows=run_rows,
        headline_headers=[headers[c] for c in cells.columns],
        headline_rows=[
            [(v, "txt" if c == "Strategy" else "num") for c, v in zip(cells.columns, r)]
            for r in cells.itertuples(index=False, name=None)
        ],
        headline_classes=["hl" if i.startswith("allocator@") else "" for i in table.index],
        difference_rows=difference_rows,
        difference_lines=[difference_line(entry) for entry in result["differences"].values()],
        bootstrap=bootstrap_note(result),
        differs=[
            [(what, "txt"), (key, "txt"), (a, "detail"), (b, "detail")] for what, key, a, b in differs_rows(result)
        ],
    )


def publish_comparison(result: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Write ``comparison.json`` (the result) and ``compare.html`` (atomically) into ``directory``."""
    return {
        "json": write_json(result, directory / "comparison.json"),
        "page": write_text(render_comparison(result), directory / "compare.html"),
    }
