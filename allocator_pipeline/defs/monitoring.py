"""Asset group ``monitoring`` (core: ``core/monitoring``): the live monitor of the promoted allocator
and its three warning checks. ``daily_rebalance_job`` (``defs/allocation.py``) materialises it right
after each session's decision, so the schedule, the new-data sensor and ``allocator rebalance``
refresh it."""

import base64

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation import model_directory
from allocator_pipeline.core.common.storage import read_json, read_parquet, write_text
from allocator_pipeline.core.inputs import live_inputs
from allocator_pipeline.core.monitoring import MONITOR_CHECKS, monitor_summary, monitor_warnings
from allocator_pipeline.defs.allocation import load_promoted
from allocator_pipeline.defs.resources import AllocatorSettings
from allocator_pipeline.report.monitor import monitor_html, monitor_png

GROUP = "monitoring"
PAGE = "monitor/monitor.html"
"""The monitor's page, under ``final output/step3_allocator/``."""


def monitor_clock() -> pd.Timestamp:
    """Now (UTC): the time the inputs are judged against (whether they still arrive)."""
    return pd.Timestamp.now(tz="UTC")


@dg.asset(
    group_name=GROUP,
    kinds={"json", "html"},
    deps=["daily_allocation"],
    description="The promoted allocator live: its realised return since the hand-over (the decision log "
    "backtested on the legs as they arrive) against the range the walk-forward backtest's block bootstrap "
    "gives for a stretch of the same length, the model's age, the drift status, the share of out-of-range "
    "sessions and whether the inputs still arrive. Refreshed after each daily decision; writes "
    "'final output/step3_allocator/monitor/live_monitor.json' and monitor.html (its chart).",
)
def live_monitor(context: dg.AssetExecutionContext, settings: AllocatorSettings) -> dict:
    s = settings.load()
    schedule, manifest = load_promoted(s)
    _, legs = live_inputs(s)
    log_path = s.paths.decisions / "log.parquet"
    log = read_parquet(log_path) if log_path.is_file() else pd.DataFrame(columns=["w_qqq", "exposure"])
    decisions = {str(d): read_json(s.paths.decisions / f"{d}.json") for d in log.index}
    version = model_directory(manifest, s.paths.final)
    verdict = read_json(version / "metrics.json")
    # the evidence shipped with the version; a version promoted before it did: the backtest's own
    oos_path = version / "oos_daily.parquet"
    oos = read_parquet(oos_path if oos_path.is_file() else s.paths.backtest / "oos_daily.parquet")
    promoted = schedule.models[0].settings
    summary = monitor_summary(log, decisions, legs, manifest, verdict, oos, promoted, monitor_clock())
    warnings = monitor_warnings(summary, s.live)
    chart = monitor_png(summary)
    page = write_text(monitor_html(summary, warnings, chart), s.paths.final / PAGE)
    rng = summary["range"]
    figures = {  # fractions; absent until defined (no realised session, no decision yet)
        "live_return": summary["live_return"],
        "range_lower": rng["lower"],
        "range_upper": rng["upper"],
        "share_out_of_range": summary["share_out_of_range"],
    }
    context.add_output_metadata(
        {
            "model_id": summary["model_id"],
            "realised_sessions": summary["realised_sessions"],
            **{k: dg.MetadataValue.float(v) for k, v in figures.items() if v is not None},
            "range_confidence": rng["confidence"],
            "sessions_below_range": summary["sessions_below_range"],
            "model_age_sessions": summary["model_age_sessions"],
            "drift_status": str(summary["drift_status"] or "n/a"),
            "last_leg_session": summary["last_leg_session"],
            "sessions_behind": summary["sessions_behind"],
            "warnings": ", ".join(name for name, (ok, _) in warnings.items() if not ok) or "none",
            "chart": dg.MetadataValue.md(f"![live](data:image/png;base64,{base64.b64encode(chart).decode()})"),
            "page": dg.MetadataValue.path(str(page)),
        }
    )
    return summary


def _warning(name: str, settings: AllocatorSettings, summary: dict) -> dg.AssetCheckResult:
    passed, description = monitor_warnings(summary, settings.load().live)[name]
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"as_of": summary["as_of"], "model_id": summary["model_id"]},
    )


@dg.asset_check(
    asset=live_monitor,
    description="Warns when the live return since the hand-over is below the backtest's range for a stretch "
    "of the same length (the lower quantile of the verdict's block bootstrap).",
)
def live_return_in_range(settings: AllocatorSettings, live_monitor: dict) -> dg.AssetCheckResult:
    return _warning(MONITOR_CHECKS[0], settings, live_monitor)


@dg.asset_check(
    asset=live_monitor,
    description="Warns when the model is near live.max_model_age_sessions: from that limit minus "
    "live.age_warning_sessions sessions past its training end on.",
)
def model_age_below_limit(settings: AllocatorSettings, live_monitor: dict) -> dg.AssetCheckResult:
    return _warning(MONITOR_CHECKS[1], settings, live_monitor)


@dg.asset_check(
    asset=live_monitor,
    description="Warns when the inputs have stopped arriving: the latest leg session is more than "
    "live.max_stale_sessions NYSE sessions behind the latest session closed by now.",
)
def inputs_arriving(settings: AllocatorSettings, live_monitor: dict) -> dg.AssetCheckResult:
    return _warning(MONITOR_CHECKS[2], settings, live_monitor)
