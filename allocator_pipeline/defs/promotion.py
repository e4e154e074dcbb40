"""Asset group ``promotion`` (core: ``core/promotion``): the promoted allocator, and ``report_job``,
which runs the walk-forward report and the promotion."""

import dagster as dg
import pandas as pd

from allocator_pipeline.core.promotion import promote_allocator
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
                "directory": dg.MetadataValue.path(manifest["model_directory"]),
                "model_id": manifest["model_id"],
            }
        )
    return manifest


report_job = dg.define_asset_job(
    "report_job",
    selection=dg.AssetSelection.assets("allocator_path", "walk_forward_report") | dg.AssetSelection.groups(GROUP),
    description="The continuous walk-forward allocator path, its report and gates, and promotion when accepted.",
)
