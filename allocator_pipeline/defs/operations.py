"""Jobs, the daily rebalance schedule and the new-data sensor."""


from datetime import datetime

import dagster as dg
import pandas as pd

from allocator_pipeline.core.common.sessions import EXCHANGE_TZ, session_dates
from allocator_pipeline.defs.assets_live import live_inputs
from allocator_pipeline.defs.partitions import DAILY_START
from allocator_pipeline.settings import Settings, load_settings

dataset_job = dg.define_asset_job(
    "dataset_job",
    selection=dg.AssetSelection.groups("inputs", "dataset") - dg.AssetSelection.assets("fold_dataset"),
    description="Prices, Step 3 legs, leg panel, features, labels and the fold plan.",
)
fold_job = dg.define_asset_job(
    "fold_job",
    selection=dg.AssetSelection.assets("fold_dataset") | dg.AssetSelection.groups("folds"),
    description="One fold: dataset, tuning, models, ensemble, predictions, backtest (a partition per fold).",
)
report_job = dg.define_asset_job(
    "report_job",
    selection=dg.AssetSelection.groups("report"),
    description="Walk-forward report over all folds, gates, and promotion when accepted.",
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
        return dg.SkipReason(
            f"no data for session {session}: the last available session is {sessions[-1].date()}"
        )
    return dg.RunRequest(run_key=f"rebalance-{session}", partition_key=session)


@dg.schedule(
    job=daily_rebalance_job,
    cron_schedule="30 17 * * 1-5",
    execution_timezone=EXCHANGE_TZ,
    description="Weekdays 17:30 New York (after the 16:00 close, DST-aware): that session's allocation.",
)
def daily_rebalance_schedule(context: dg.ScheduleEvaluationContext):
    scheduled: datetime = context.scheduled_execution_time
    session = pd.Timestamp(scheduled).tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d")
    return rebalance_request(session, available_sessions(load_settings()))


@dg.sensor(
    job=daily_rebalance_job,
    minimum_interval_seconds=300,
    description="Requests the allocation of every session that appears in the price / Step 3 data "
    "after the last one seen (the cursor).",
)
def new_data_sensor(context: dg.SensorEvaluationContext):
    sessions = available_sessions(load_settings())
    first_partition = pd.Timestamp(DAILY_START)
    cursor = pd.Timestamp(context.cursor) if context.cursor else sessions[-1] - pd.Timedelta(days=1)
    new = [s for s in sessions if s > cursor and s >= first_partition]
    if not new:
        return dg.SkipReason(f"no new session after {cursor.date()} (last available {sessions[-1].date()})")
    context.update_cursor(str(new[-1].date()))
    return [dg.RunRequest(run_key=f"rebalance-{s.date()}", partition_key=str(s.date())) for s in new]
