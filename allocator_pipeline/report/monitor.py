"""The live monitor's page: the promoted allocator's live return against the backtest's range.

One self-contained HTML page (the report's style sheet and building blocks, ``report/html.py``)
with the chart of the live compounded return since the hand-over inside the band the walk-forward
backtest's block bootstrap gives for each stretch length, the figures and the three warnings
(``core/monitoring/monitor.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator, PercentFormatter

from allocator_pipeline.report.charts import STRATEGY_STYLE, _figure, _png
from allocator_pipeline.report.html import Markup, Section, cell, fragment, page, png_data


def monitor_png(summary: Mapping[str, Any]) -> bytes:
    """The live compounded return (fraction, in percent on the axis) after each realised session
    since the hand-over (x: the number of sessions), inside the backtest's band for a stretch of
    that length; deterministic PNG bytes."""
    path = pd.DataFrame(summary["path"])
    fig = _figure(10.0, 3.6, left=0.08, bottom=0.14, top=0.9)
    ax = fig.add_subplot(1, 1, 1)
    confidence = summary["range"]["confidence"]
    if len(path):
        sessions = np.arange(1, len(path) + 1)  # the stretch length: the band's own axis
        ax.fill_between(
            sessions,
            path["lower"].to_numpy(),
            path["upper"].to_numpy(),
            color="#9bb7e0",
            alpha=0.45,
            label=f"backtest {confidence:.0%} range for the stretch",
        )
        style = STRATEGY_STYLE["allocator"]
        ax.plot(sessions, path["live_return"].to_numpy(), color=style["color"], lw=style["lw"], label="live")
        below = path["live_return"].to_numpy() < path["lower"].to_numpy()
        if below.any():
            ax.scatter(sessions[below], path["live_return"].to_numpy()[below], color="#b3261e", s=14, zorder=6)
        ax.legend(loc="upper left", fontsize=9, frameon=False)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True, min_n_ticks=1))
        ax.set_xlabel(
            f"realised sessions since the hand-over ({path['session'].iloc[0]} .. {path['session'].iloc[-1]})"
        )
    else:
        ax.text(0.5, 0.5, "no realised live session yet", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(0.0, color="#5b6474", lw=0.8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_title(f"Live return since the hand-over ({summary['handover_session']}), {summary['model_id']}")
    return _png(fig)


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.2%}"


def monitor_html(summary: Mapping[str, Any], warnings: Mapping[str, tuple[bool, str]], chart: bytes) -> str:
    """The monitor page: its chart (:func:`monitor_png`), its figures and each check's verdict
    (``warnings``: check name -> ``(passed, description)``)."""
    rng = summary["range"]
    share = summary["share_out_of_range"]
    figures = [
        ("promoted model", summary["model_id"]),
        ("hand-over session", summary["handover_session"]),
        ("live decisions logged (missing)", f"{summary['decisions']} ({summary['missing_decisions']})"),
        ("realised sessions", summary["realised_sessions"]),
        ("live return since the hand-over", _pct(summary["live_return"])),
        (f"backtest {rng['confidence']:.0%} range, same length", f"{_pct(rng['lower'])} .. {_pct(rng['upper'])}"),
        ("backtest median, same length", _pct(rng["median"])),
        ("sessions below the range", summary["sessions_below_range"]),
        ("model age (limit)", f"{summary['model_age_sessions']} sessions ({summary['max_model_age_sessions']})"),
        ("drift status (latest decision)", summary["drift_status"] or "n/a"),
        ("share of out-of-range sessions", "n/a" if share is None else f"{share:.1%}"),
        ("latest leg session (latest closed)", f"{summary['last_leg_session']} ({summary['latest_expected_session']})"),
    ]
    figure_rows = [[cell(k, "txt"), cell(v)] for k, v in figures]
    check_rows = [
        [cell(name, "txt"), cell("ok" if ok else "WARN", "pass" if ok else "fail"), cell(text, "detail")]
        for name, (ok, text) in warnings.items()
    ]
    live = fragment(
        "monitor_live",
        png=png_data(chart),
        oos_sessions=rng["oos_sessions"],
        block_length=f"{rng['block_length']:g}",
        resamples=rng["resamples"],
        seed=rng["seed"],
        confidence=f"{rng['confidence']:.0%}",
    )
    sections = [
        Section("live", "Live against the backtest", Markup(live)),
        Section("figures", "Figures", Markup(fragment("monitor_table", headers=["figure", "value"], rows=figure_rows))),
        Section(
            "checks",
            "Checks",
            Markup(fragment("monitor_table", headers=["check", "verdict", "detail"], rows=check_rows)),
        ),
    ]
    subtitle = f"as of {summary['as_of']}; decisions through {summary['last_decision_session'] or 'none'}"
    nav = [("live", "Live"), ("figures", "Figures"), ("checks", "Checks")]
    return page("Live monitor of the promoted allocator", subtitle, nav, sections)
