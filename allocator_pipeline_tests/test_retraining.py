"""Retraining as the backtest assumes: the retraining sensor's requests on a real (ephemeral) instance."""

import time

import dagster as dg

from allocator_pipeline.definitions import defs
from allocator_pipeline.defs.promotion import retrain_requests, retrain_sensor


def materialise(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=partition))
    time.sleep(0.01)  # distinct event timestamps


def test_a_new_fold_is_trained_then_the_report_and_promotion_rerun():
    instance = dg.DagsterInstance.ephemeral()
    assert isinstance(retrain_requests(instance), dg.SkipReason)  # no fold yet
    instance.add_dynamic_partitions("fold", ["2023", "2024"])
    requests = retrain_requests(instance)
    assert [(r.job_name, r.partition_key) for r in requests] == [("fold_job", "2023"), ("fold_job", "2024")]
    for fold in ("2023", "2024"):
        materialise(instance, "fold_predictions", fold)
    (report,) = retrain_requests(instance)
    assert report.job_name == "report_job" and report.partition_key is None
    materialise(instance, "walk_forward_report")
    assert "up to date" in retrain_requests(instance).skip_message

    # a new year: the fold plan of the new data registers fold 2025 -> that fold, then the report again
    instance.add_dynamic_partitions("fold", ["2025"])
    (new,) = retrain_requests(instance)
    assert (new.job_name, new.partition_key, new.run_key) == ("fold_job", "2025", "fold-2025")
    materialise(instance, "fold_predictions", "2025")
    (report,) = retrain_requests(instance)
    assert report.job_name == "report_job"

    # the sensor evaluates the same function through Dagster
    context = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
    result = retrain_sensor.evaluate_tick(context)
    assert [r.job_name for r in result.run_requests] == ["report_job"]
