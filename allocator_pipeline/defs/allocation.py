"""Asset group ``allocation`` (core: ``core/allocation``): the daily decision of the promoted
allocator, ``daily_rebalance_job`` (the decision, then the live monitor), its after-close schedule
and the new-data sensor."""

from datetime import datetime

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation import (
    DecisionLog,
    FoldModel,
    NoDataForSession,
    decide,
    fold_of,
    load_promoted,
    run_segments,
)
from allocator_pipeline.core.common.sessions import EXCHANGE_TZ, session_dates
from allocator_pipeline.core.inputs import live_inputs
from allocator_pipeline.defs.metadata import frame_metadata
from allocator_pipeline.defs.partitions import DAILY_START, daily_partitions
from allocator_pipeline.defs.resources import AllocatorSettings
from allocator_pipeline.defs.runs import run_assets
from allocator_pipeline.settings import RunOptions, Settings, load_settings, tuned_settings


@dg.asset(
    group_name="allocation",
    kinds={"pandas", "parquet"},
    description="The walk-forward allocator path: each fold's model decides its test window, on one "
    "continuous path (the smoothing and envelope state carry across fold boundaries, as live).",
)
def allocator_path(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    fold_predictions: dict[str, pd.DataFrame],
    fold_ensemble: dict[str, FoldModel],
    fold_tuning: dict[str, dict],
    leg_panel: pd.DataFrame,
) -> pd.DataFrame:
    s = settings.load()
    segments = [
        fold_ensemble[fold].segment(
            f"fold:{fold}", fold_predictions[fold], tuned_settings(s, fold_tuning[fold].get("best_params", {}))
        )
        for fold in sorted(fold_predictions)
    ]
    path, end = run_segments(segments, leg_panel)
    path.insert(0, "fold", path["model_id"].map(fold_of).astype("string"))
    context.add_output_metadata(
        {
            **frame_metadata(path[["w_raw", "w_smoothed", "w_final", "exposure"]]),
            "end_state": dg.MetadataValue.json(end.to_dict()),
        }
    )
    return path


@dg.asset(
    group_name="allocation",
    partitions_def=daily_partitions,
    kinds={"json"},
    deps=["promoted_allocator"],
    description="The session's allocation from the promoted allocator: features from data up to that "
    "session, the state continued from the previous session's logged decision (or from the "
    "walk-forward path's hand-over). Writes 'final output/step3_allocator/decisions/<date>.json' "
    "and the decision log.",
)
def daily_allocation(context: dg.AssetExecutionContext, settings: AllocatorSettings) -> dg.MaterializeResult:
    session = context.partition_key
    s = settings.load()
    schedule, _ = load_promoted(s)
    _, legs = live_inputs(s)
    log = DecisionLog(s.paths.decisions)
    try:
        decision, _ = decide(
            schedule,
            legs,
            session,
            s,
            log.state_before(session, legs.index),
            max_model_age=s.live.max_model_age_sessions,
        )
    except NoDataForSession as exc:
        raise dg.Failure(description=str(exc)) from None
    path = log.write(decision)
    return dg.MaterializeResult(
        metadata={
            "w_qqq": decision["w_qqq"],
            "w_spy": decision["w_spy"],
            "exposure": decision["exposure"],
            "mode": decision["mode"],
            "model_id": decision["model_id"],
            "model_age_sessions": decision["model_age_sessions"],
            "decision": dg.MetadataValue.path(str(path)),
        }
    )


daily_rebalance_job = dg.define_asset_job(
    "daily_rebalance_job",
    # the decision, then the live monitor (defs/monitoring.py) and its checks on the log it extends
    selection=dg.AssetSelection.assets("daily_allocation", "live_monitor"),
    # one decision at a time (dagster.yaml limits this tag to 1), so each continues the previous one
    tags={"allocator/daily": "rebalance"},
    description="The session's allocation from the promoted allocator, then the live monitor.",
)


def rebalance_run(
    options: RunOptions, instance: dg.DagsterInstance, session: str, verbose: bool = False
) -> dg.ExecuteInProcessResult:
    """The daily job for ``session`` (the decision, then the live monitor and its checks) as one
    run recorded in ``instance``, with only these assets loaded (``allocator rebalance``): the code
    location's other assets, and the training stack they import, stay out of the process."""
    from allocator_pipeline.defs import monitoring  # it imports this module

    checks = [v for v in vars(monitoring).values() if isinstance(v, dg.AssetChecksDefinition)]
    assets = [daily_allocation, monitoring.live_monitor, *checks]
    return run_assets(assets, daily_rebalance_job.selection, options, instance, session, verbose)


def available_sessions(settings: Settings) -> pd.DatetimeIndex:
    """Session dates (New York) on which both legs have data."""
    _, legs = live_inputs(settings)
    return session_dates(legs.index)


def rebalance_request(session: str, sessions: pd.DatetimeIndex) -> dg.RunRequest | dg.SkipReason:
    """A run for ``session`` when the data has it; otherwise a skip naming the last available session."""
    if pd.Timestamp(session) not in sessions:
        return dg.SkipReason(f"no data for session {session}: the last available session is {sessions[-1].date()}")
    return dg.RunRequest(run_key=f"rebalance-{session}", partition_key=session)


@dg.schedule(
    job=daily_rebalance_job,
    cron_schedule="30 17 * * 1-5",
    execution_timezone=EXCHANGE_TZ,
    description="Weekdays 17:30 New York (after the 16:00 close, DST-aware): that session's allocation.",
)
def daily_rebalance_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    scheduled: datetime = context.scheduled_execution_time
    session = pd.Timestamp(scheduled).tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d")
    return rebalance_request(session, available_sessions(load_settings()))


@dg.sensor(
    job=daily_rebalance_job,
    minimum_interval_seconds=300,
    description="Requests the allocation of every session that appears in the price / Step 3 data "
    "after the last one seen (the cursor).",
)
def new_data_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason | list[dg.RunRequest]:
    sessions = available_sessions(load_settings())
    first_partition = pd.Timestamp(DAILY_START)
    cursor = pd.Timestamp(context.cursor) if context.cursor else sessions[-1] - pd.Timedelta(days=1)
    new = [s for s in sessions if s > cursor and s >= first_partition]
    if not new:
        return dg.SkipReason(f"no new session after {cursor.date()} (last available {sessions[-1].date()})")
    context.update_cursor(str(new[-1].date()))
    return [dg.RunRequest(run_key=f"rebalance-{s.date()}", partition_key=str(s.date())) for s in new]
