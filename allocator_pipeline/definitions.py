"""The Dagster code location: assembles assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

from allocator_pipeline.defs import assets_data, assets_dataset, assets_live, assets_models, assets_report, assets_tuning
from allocator_pipeline.defs.io_manager import ArtifactIOManager
from allocator_pipeline.defs.operations import (
    daily_rebalance_job,
    daily_rebalance_schedule,
    dataset_job,
    fold_job,
    new_data_sensor,
    report_job,
)
from allocator_pipeline.defs.resources import AllocatorSettings

ALL_ASSETS = [
    assets_data.market_prices,
    assets_data.step3_legs,
    assets_data.leg_panel,
    assets_dataset.allocator_features,
    assets_dataset.utility_labels,
    assets_dataset.fold_plan,
    assets_dataset.fold_dataset,
    assets_tuning.fold_tuning,
    assets_models.fold_models,
    assets_models.fold_ensemble,
    assets_models.fold_predictions,
    assets_models.fold_backtest,
    assets_report.walk_forward_report,
    assets_report.promoted_allocator,
    assets_live.daily_allocation,
]

_settings = AllocatorSettings()

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[dataset_job, fold_job, report_job, daily_rebalance_job],
    schedules=[daily_rebalance_schedule],
    sensors=[new_data_sensor],
    resources={"settings": _settings, "io_manager": ArtifactIOManager(settings=_settings)},
    executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
)
