"""Asset group ``promotion`` (core: ``core/promotion``): the promoted allocator, ``report_job``
(the continuous path, the report and the promotion) and the retraining sensor."""

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation import model_directory
from allocator_pipeline.core.promotion import promote_allocator
from allocator_pipeline.defs.ensemble import fold_job
from allocator_pipeline.defs.partitions import FOLD_PARTITIONS_NAME
from allocator_pipeline.defs.resources import AllocatorSettings

GROUP = "promotion"


@dg.asset(
    group_name=GROUP,
    kinds={"lightgbm", "json"},
    description="When the report is accepted: the evaluated procedure applied to all labelled data "
    "(tuned by the folds' rule on inner splits, trained, calibrated), continuing the walk-forward path's "
    "state; written as a new version 'final output/step3_allocator/models/<model_id>/' (model, settings, "
    "report, metrics, model card), then the pointer promotion.json. When rejected: nothing is promoted.",
)
def promoted_allocator(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    walk_forward_report: dict,
    allocator_features: pd.DataFrame,
    utility_labels: pd.DataFrame,
    utility_table: pd.DataFrame,
    leg_panel: pd.DataFrame,
    allocator_path: pd.DataFrame,
) -> dict:
    s = settings.load()
    manifest = promote_allocator(
        walk_forward_report,
        allocator_features,
        utility_labels,
        utility_table,
        leg_panel,
        allocator_path,
        s,
        progress=context.log.info,
    )
    if not manifest["promoted"]:
        failed = ", ".join(g["name"] for g in manifest["failed_gates"])
        context.log.warning(f"allocator rejected; nothing promoted: {failed}")
        context.add_output_metadata({"promoted": False, "failed_gates": failed})
    else:
        context.add_output_metadata(
            {
                "promoted": True,
                "directory": dg.MetadataValue.path(str(model_directory(manifest, s.paths.final))),
                "model_id": manifest["model_id"],
            }
        )
    return manifest


report_job = dg.define_asset_job(
    "report_job",
    selection=dg.AssetSelection.assets("allocator_path", "walk_forward_report") | dg.AssetSelection.groups(GROUP),
    description="The continuous walk-forward allocator path, its report and gates, and promotion when accepted.",
)


@dg.sensor(
    jobs=[fold_job, report_job],
    minimum_interval_seconds=300,
    description="Retraining as the backtest assumes (a model per calendar year): when a fold partition "
    "appears (the fold plan of new data registers it), requests that fold's fold_job run; once every fold "
    "is trained, requests report_job (the continuous path, the report and a re-promotion) if a fold was "
    "trained after the last report.",
)
def retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason | list[dg.RunRequest]:
    return retrain_requests(context.instance)


def retrain_requests(instance: dg.DagsterInstance) -> dg.SkipReason | list[dg.RunRequest]:
    """The runs the retraining sensor requests now (see ``retrain_sensor``)."""
    folds = sorted(instance.get_dynamic_partitions(FOLD_PARTITIONS_NAME))
    if not folds:
        return dg.SkipReason("no fold partition yet: materialise dataset_job (allocator build-dataset)")
    trained = {f: _materialized_at(instance, "fold_predictions", f) for f in folds}
    new = [f for f, at in trained.items() if at == float("-inf")]
    if new:
        return [dg.RunRequest(job_name=fold_job.name, partition_key=f, run_key=f"fold-{f}") for f in new]
    latest = max(trained.values())
    if _materialized_at(instance, "walk_forward_report") >= latest:
        return dg.SkipReason(f"every fold ({folds[0]}..{folds[-1]}) is trained and the report is up to date")
    return [dg.RunRequest(job_name=report_job.name, run_key=f"report-{latest:.3f}")]


def _materialized_at(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> float:
    """Unix time of the asset (partition)'s latest materialisation; -inf when never materialised.
    Materialisations of a command that failed and was rolled back (run tag ``allocator/rolled_back``)
    do not count: their artifacts were put back as they were."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
        limit=50,
    ).records
    for record in records:
        run = instance.get_run_by_id(record.run_id)
        if run is None or run.tags.get("allocator/rolled_back") != "true":
            return record.timestamp
    return float("-inf")
