"""Asset group ``ensemble`` (core: ``core/ensemble``): the calibrated blend of a fold's members and
its out-of-sample probabilities, and ``fold_job``, which runs every stage of one fold."""

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation import FoldModel, assemble_fold, fit_fold_ensemble, predict_split
from allocator_pipeline.core.common.grid import BUCKETS, PROBA_COLUMNS
from allocator_pipeline.core.models import Member
from allocator_pipeline.core.tuning import fold_training_inputs
from allocator_pipeline.defs.metadata import frame_metadata
from allocator_pipeline.defs.partitions import fold_partitions
from allocator_pipeline.defs.resources import AllocatorSettings

GROUP = "ensemble"


@dg.asset(
    group_name=GROUP,
    partitions_def=fold_partitions,
    io_manager_key="model_io_manager",
    kinds={"scipy"},
    description="The fold model: validation-weighted blend of the members and its calibrator "
    "(temperature or isotonic, chosen on validation, with log loss, Brier, ECE and accuracy before "
    "and after), and the policy's utility matrix M (ensemble.json, policy.json).",
)
def fold_ensemble(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    fold_dataset: pd.DataFrame,
    fold_models: dict[str, Member],
    fold_tuning: dict,
    leg_panel: pd.DataFrame,
    utility_table: pd.DataFrame,
) -> FoldModel:
    s, frame, utilities = fold_training_inputs(settings.load(), fold_tuning, fold_dataset, leg_panel, utility_table)
    ensemble = fit_fold_ensemble(frame, fold_models, s)
    before, after = ensemble.metrics_before, ensemble.metrics_after
    table = "| metric | before | after |\n|---|---|---|\n" + "\n".join(
        f"| {k} | {before[k]:.4f} | {after[k]:.4f} |" for k in before
    )
    context.add_output_metadata(
        {
            "calibrator": ensemble.calibrator.to_dict().get("kind", "?"),
            "weights": dg.MetadataValue.json(ensemble.weight_of),
            "validation_metrics": dg.MetadataValue.md(table),
        }
    )
    return assemble_fold(frame, fold_models, ensemble, utilities)


@dg.asset(
    group_name=GROUP,
    partitions_def=fold_partitions,
    kinds={"pandas", "parquet"},
    description="Out-of-sample calibrated bucket probabilities for the fold's test window.",
)
def fold_predictions(
    context: dg.AssetExecutionContext, fold_ensemble: FoldModel, fold_dataset: pd.DataFrame
) -> pd.DataFrame:
    proba = predict_split(fold_ensemble, fold_dataset, "test")
    expected_w = proba[PROBA_COLUMNS].to_numpy() @ BUCKETS
    context.add_output_metadata({**frame_metadata(proba), "mean_expected_bucket_w": float(expected_w.mean())})
    return proba


fold_job = dg.define_asset_job(
    "fold_job",
    selection=dg.AssetSelection.assets("fold_dataset") | dg.AssetSelection.groups("tuning", "models", "ensemble"),
    description="One fold: dataset, tuning, models, calibrated ensemble, test predictions (a partition per fold).",
)
