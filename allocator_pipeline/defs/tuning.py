"""Asset group ``tuning`` (core: ``core/tuning``): one Optuna study per fold, on its inner splits only."""

import dagster as dg
import pandas as pd

from allocator_pipeline.core.tuning import export_ledger, export_trial_returns, inner_fold_frames, run_study
from allocator_pipeline.defs.partitions import fold_partitions
from allocator_pipeline.defs.resources import AllocatorSettings


@dg.asset(
    group_name="tuning",
    partitions_def=fold_partitions,
    kinds={"optuna"},
    description="Optuna study of the fold (seeded TPE, pruning on inner splits) maximising the robust "
    "objective over the fold's inner walk-forward splits; the outer test window is never seen. "
    "Resumes an interrupted study from its storage; exports the trial ledger and the trials' inner-block "
    "daily returns as parquet.",
)
def fold_tuning(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    allocator_features: pd.DataFrame,
    utility_labels: pd.DataFrame,
    utility_table: pd.DataFrame,
    fold_plan: pd.DataFrame,
    leg_panel: pd.DataFrame,
) -> dict:
    s = settings.load()
    fold = context.partition_key
    if not s.tuning.enabled:
        context.add_output_metadata({"enabled": False})
        return {"enabled": False, "best_params": {}, "reason": "tuning.enabled is false: default parameters"}
    inner_frames = inner_fold_frames(allocator_features, utility_labels, fold_plan, fold)
    result = run_study(fold, inner_frames, utility_table, leg_panel, s, progress=context.log.info)
    ledger_path = export_ledger(result, s.paths.optuna / fold / "trials.parquet")
    returns_path = export_trial_returns(result, s.paths.optuna / fold / "trial_returns.parquet")
    summary = {"enabled": True, **result.to_dict(), "ledger": str(ledger_path), "trial_returns": str(returns_path)}
    context.add_output_metadata(
        {
            "best_value": float(result.best_value),
            "best_params": dg.MetadataValue.json(result.best_params),
            "traded": str(result.selection.get("reason", "")),
            "trials": dg.MetadataValue.json(summary.get("n_trials", {})),
            "ledger": dg.MetadataValue.path(str(ledger_path)),
        }
    )
    return summary
