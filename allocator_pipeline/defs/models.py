"""Asset group ``models`` (core: ``core/models``): the fold's ensemble members."""

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation import fit_fold_members, importance_of, xy
from allocator_pipeline.core.models import Member, check_reload_exact
from allocator_pipeline.core.tuning import fold_training_inputs
from allocator_pipeline.defs.partitions import fold_partitions
from allocator_pipeline.defs.resources import AllocatorSettings


@dg.asset(
    group_name="models",
    partitions_def=fold_partitions,
    io_manager_key="model_io_manager",
    kinds={"lightgbm", "catboost", "scikitlearn"},
    description="The fold's members (LightGBM multiclass, elastic-net logistic, CatBoost), fitted on "
    "train-proper and early-stopped on the validation tail; saved as LightGBM text and JSON.",
)
def fold_models(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    fold_dataset: pd.DataFrame,
    fold_tuning: dict,
    leg_panel: pd.DataFrame,
    utility_table: pd.DataFrame,
) -> dict[str, Member]:
    s, frame, utilities = fold_training_inputs(settings.load(), fold_tuning, fold_dataset, leg_panel, utility_table)
    members = fit_fold_members(frame, s, utilities)
    check_reload_exact(members, xy(frame, "val")[0])
    top = sorted(importance_of(members).items(), key=lambda kv: -kv[1])[:10]
    context.add_output_metadata(
        {
            "members": ", ".join(members),
            "describe": dg.MetadataValue.json({name: member.describe() for name, member in members.items()}),
            "top_importance": dg.MetadataValue.md(
                "| feature | gain share |\n|---|---|\n" + "\n".join(f"| {k} | {v:.4f} |" for k, v in top)
            ),
        }
    )
    return members
