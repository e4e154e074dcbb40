"""Per-fold assets: models, calibrated ensemble, test predictions and the fold's backtest."""


import dagster as dg
import numpy as np
import pandas as pd

from allocator_pipeline.core.evaluation.backtest import RETURN_COLUMNS, baseline_decisions, run_backtest
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.allocation.fold_model import (
    FoldModel,
    fit_fold_ensemble,
    fit_fold_members,
    fold_path,
    importance_of,
    policy_matrix,
    predict_split,
    save_policy,
    xy,
)
from allocator_pipeline.core.common.grid import PROBA_COLUMNS
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.core.models.members import load_members
from allocator_pipeline.core.tuning.space import tunes_labels, tuned_settings
from allocator_pipeline.core.tuning.objective import relabel_frame
from allocator_pipeline.defs.metadata import frame_metadata
from allocator_pipeline.defs.partitions import fold_partitions
from allocator_pipeline.defs.resources import AllocatorSettings
from allocator_pipeline.settings import Settings

GROUP = "folds"


def _fold_settings(settings: AllocatorSettings, fold_tuning: dict) -> Settings:
    """The run's settings with the fold's tuned parameters applied (none when tuning is off)."""
    return tuned_settings(settings.load(), fold_tuning.get("best_params", {}))


def _fold_inputs(s: Settings, fold_tuning: dict, fold_dataset: pd.DataFrame, leg_panel: pd.DataFrame,
                 utility_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fold frame and utility table to train on: relabelled when tuning changed the label
    lambdas (``labels.*``), else the run-wide ones."""
    if tunes_labels(fold_tuning.get("best_params", {})):
        return relabel_frame(fold_dataset, leg_panel, s)
    return fold_dataset, utility_table


@dg.asset(
    group_name=GROUP,
    partitions_def=fold_partitions,
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
) -> dict:
    s = _fold_settings(settings, fold_tuning)
    fold = context.partition_key
    directory = s.paths.fold_models(fold)
    frame, _ = _fold_inputs(s, fold_tuning, fold_dataset, leg_panel, utility_table)
    members = fit_fold_members(frame, s)
    files = {name: member.save(directory).name for name, member in members.items()}
    # Reload from disk: everything downstream uses the stored models, never the in-memory ones.
    reloaded = load_members(directory, members)
    x_val, _ = xy(frame, "val")
    for name, member in members.items():
        if not np.array_equal(member.predict_proba(x_val), reloaded[name].predict_proba(x_val)):
            raise RuntimeError(f"fold {fold}: reloaded {name} does not reproduce its probabilities")
    importance = importance_of(reloaded)
    manifest = {
        "fold": fold,
        "directory": str(directory),
        "members": files,
        "describe": {name: member.describe() for name, member in members.items()},
        "importance": importance,
        "params": s.models.model_dump(mode="json"),
        "tuned_params": fold_tuning.get("best_params", {}),
    }
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:10]
    context.add_output_metadata(
        {
            "directory": dg.MetadataValue.path(str(directory)),
            "members": ", ".join(files),
            "top_importance": dg.MetadataValue.md(
                "| feature | gain share |\n|---|---|\n" + "\n".join(f"| {k} | {v:.4f} |" for k, v in top)
            ),
        }
    )
    return manifest


@dg.asset(
    group_name=GROUP,
    partitions_def=fold_partitions,
    kinds={"scipy"},
    description="Validation-weighted blend of the members and its calibrator (temperature or isotonic, "
    "chosen on validation), with log loss, Brier, ECE and accuracy before and after; also writes the "
    "policy's utility matrix (policy.json).",
)
def fold_ensemble(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    fold_dataset: pd.DataFrame,
    fold_models: dict,
    fold_tuning: dict,
    leg_panel: pd.DataFrame,
    utility_table: pd.DataFrame,
) -> dict:
    s = _fold_settings(settings, fold_tuning)
    directory = s.paths.fold_models(context.partition_key)
    frame, utilities = _fold_inputs(s, fold_tuning, fold_dataset, leg_panel, utility_table)
    members = load_members(directory, fold_models["members"])
    ensemble = fit_fold_ensemble(frame, members, s)
    m = policy_matrix(frame, utilities)
    save_policy(m, directory)
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
    return ensemble.to_dict()


@dg.asset(
    group_name=GROUP,
    partitions_def=fold_partitions,
    kinds={"pandas", "parquet"},
    deps=["fold_ensemble"],
    description="Out-of-sample calibrated bucket probabilities for the fold's test window.",
)
def fold_predictions(context: dg.AssetExecutionContext, settings: AllocatorSettings,
                     fold_dataset: pd.DataFrame) -> pd.DataFrame:
    s = settings.load()
    model = FoldModel.load(s.paths.fold_models(context.partition_key))
    proba = predict_split(model, fold_dataset, "test")
    expected_w = proba[PROBA_COLUMNS].to_numpy() @ (np.arange(11) / 10)
    context.add_output_metadata({**frame_metadata(proba), "mean_expected_bucket_w": float(expected_w.mean())})
    return proba


@dg.asset(
    group_name=GROUP,
    partitions_def=fold_partitions,
    kinds={"pandas", "parquet"},
    description="The fold's allocator path (policy + risk envelope) over its test window, with the "
    "fold's own backtest against the Step 3 baseline as metadata.",
)
def fold_backtest(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    fold_predictions: pd.DataFrame,
    fold_tuning: dict,
    leg_panel: pd.DataFrame,
) -> pd.DataFrame:
    s = _fold_settings(settings, fold_tuning)
    model = FoldModel.load(s.paths.fold_models(context.partition_key))
    path = fold_path(fold_predictions, model.m, leg_panel, s)
    cost_model = CostModel.from_settings(s.costs)
    returns = leg_panel[list(RETURN_COLUMNS)]
    window = returns.loc[path.index[0]:]
    decisions = path[["w_final", "exposure"]].rename(columns={"w_final": "w"})
    allocator = performance_metrics(run_backtest(decisions, window, cost_model), s.report.notional)
    base = baseline_decisions(path.index, "baseline", returns, weight=s.labels.baseline_weight)
    baseline = performance_metrics(run_backtest(base, window, cost_model), s.report.notional)
    rows = ["cagr", "max_drawdown", "calmar", "avg_monthly_pnl", "sharpe", "turnover"]
    table = "| metric | allocator | baseline |\n|---|---|---|\n" + "\n".join(
        f"| {k} | {allocator[k]} | {baseline[k]} |" for k in rows
    )
    context.add_output_metadata({**frame_metadata(path[["w_raw", "w_smoothed", "w_final", "exposure"]]),
                                 "fold_metrics": dg.MetadataValue.md(table)})
    return path
