"""Asset group ``allocation`` (core: ``core/allocation``): the daily decision of the promoted
allocator, ``daily_rebalance_job``, its after-close schedule and the new-data sensor."""

from datetime import datetime

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation import (
    DecisionLog,
    FoldModel,
    NoDataForSession,
    decide_promoted_session,
    decide_with_fold_model,
    fold_test_window,
    truncate_to_session,
)
from allocator_pipeline.core.common.sessions import EXCHANGE_TZ, session_dates
from allocator_pipeline.core.common.storage import read_json
from allocator_pipeline.core.inputs import live_inputs
from allocator_pipeline.core.tuning import tuned_settings
from allocator_pipeline.defs.partitions import DAILY_START, daily_partitions
from allocator_pipeline.defs.resources import AllocatorSettings, ArtifactIOManager, FoldModelIOManager
from allocator_pipeline.settings import Settings, load_settings


class NoPromotedAllocator(FileNotFoundError):
    """No accepted allocator has been promoted yet."""


def load_promoted(settings: Settings) -> tuple[FoldModel, dict]:
    """The promoted model and its promotion manifest (a clear error when nothing was promoted)."""
    promotion = settings.paths.final / "promotion.json"
    if not promotion.is_file():
        raise NoPromotedAllocator(
            f"no promoted allocator in {settings.paths.final}: run `allocator run` (or materialise "
            "promoted_allocator) and get an accepted walk-forward report first"
        )
    manifest = read_json(promotion)
    return FoldModel.load(manifest["model_directory"]), manifest


def fold_decision(resource: AllocatorSettings, fold: str, session: str, legs: pd.DataFrame) -> dict:
    """The session's decision from fold ``fold``'s model: the fold backtest's own path through it
    (the fold's model, plan and tuned parameters are read through the code location's IO managers)."""
    artifacts = ArtifactIOManager(settings=resource)
    model = FoldModelIOManager(settings=resource).load("fold_ensemble", fold)
    start, end = fold_test_window(artifacts.load("fold_plan"), fold)
    s = tuned_settings(resource.load(), artifacts.load("fold_tuning", fold).get("best_params", {}))
    decision, _ = decide_with_fold_model(
        model, truncate_to_session(legs, session, s), start, end, s, model_id=f"fold:{fold}"
    )
    return decision


@dg.asset(
    group_name="allocation",
    partitions_def=daily_partitions,
    kinds={"json"},
    deps=["promoted_allocator"],
    description="The session's allocation from the promoted allocator: features from data up to that "
    "session, policy and envelope continued from the previous session's logged state. Writes "
    "'final output/step3_allocator/decisions/<date>.json' and the decision log.",
)
def daily_allocation(context: dg.AssetExecutionContext, settings: AllocatorSettings) -> dg.MaterializeResult:
    session = context.partition_key
    model, manifest = load_promoted(settings.load())
    # decide with exactly the settings the promoted allocator was trained and evaluated with
    s = tuned_settings(settings.load(), manifest.get("tuned_params", {}))
    _, legs = live_inputs(s)
    log = DecisionLog(s.paths.decisions)
    try:
        decision = decide_promoted_session(model, manifest["model_id"], legs, session, s, log)
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
            "decision": dg.MetadataValue.path(str(path)),
        }
    )


daily_rebalance_job = dg.define_asset_job(
    "daily_rebalance_job",
    selection=dg.AssetSelection.assets("daily_allocation"),
    # one decision at a time (dagster.yaml limits this tag to 1), so each continues the previous one
    tags={"allocator/daily": "rebalance"},
    description="The session's allocation from the promoted allocator.",
)


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
