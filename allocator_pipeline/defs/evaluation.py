"""Asset group ``evaluation`` (core: ``core/evaluation``): each fold's allocator path and backtest,
the walk-forward report with its gates, and ``fold_job``, which runs every stage of one fold."""

import base64

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation import FoldModel, fold_path
from allocator_pipeline.core.evaluation import evaluate_walk_forward, fold_comparison
from allocator_pipeline.core.tuning import tuned_settings
from allocator_pipeline.defs.metadata import frame_metadata
from allocator_pipeline.defs.partitions import fold_partitions
from allocator_pipeline.defs.resources import AllocatorSettings
from allocator_pipeline.report import failed_gates, format_headline, headline_figure_png, headline_table, publish_report

GROUP = "evaluation"


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
    fold_ensemble: FoldModel,
    fold_tuning: dict,
    leg_panel: pd.DataFrame,
) -> pd.DataFrame:
    s = tuned_settings(settings.load(), fold_tuning.get("best_params", {}))
    path = fold_path(fold_predictions, fold_ensemble.m, leg_panel, s)
    metrics = fold_comparison(path, leg_panel, s)
    rows = ["cagr", "max_drawdown", "calmar", "avg_monthly_pnl", "sharpe", "turnover"]
    table = "| metric | allocator | baseline |\n|---|---|---|\n" + "\n".join(
        f"| {k} | {metrics['allocator'][k]} | {metrics['baseline'][k]} |" for k in rows
    )
    context.add_output_metadata(
        {
            **frame_metadata(path[["w_raw", "w_smoothed", "w_final", "exposure"]]),
            "fold_metrics": dg.MetadataValue.md(table),
        }
    )
    return path


@dg.asset(
    group_name=GROUP,
    kinds={"html", "json"},
    description="The continuous out-of-sample backtest over all folds against the baselines, the "
    "robustness gates and the verdict: oos_daily.parquet, metrics.json, report.html.",
)
def walk_forward_report(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    fold_backtest: dict[str, pd.DataFrame],
    fold_ensemble: dict[str, FoldModel],
    fold_tuning: dict[str, dict],
    fold_dataset: dict[str, pd.DataFrame],
    leg_panel: pd.DataFrame,
    utility_labels: pd.DataFrame,
) -> dict:
    s = settings.load()
    oos_daily, metrics = evaluate_walk_forward(
        fold_backtest, fold_ensemble, fold_dataset, fold_tuning, leg_panel, utility_labels, s
    )
    paths = publish_report(oos_daily, metrics, s.paths.backtest)
    png = base64.b64encode(headline_figure_png(oos_daily)).decode()
    context.add_output_metadata(
        {
            "accepted": bool(metrics["accepted"]),
            "failed_gates": ", ".join(g["name"] for g in failed_gates(metrics)) or "none",
            "headline": dg.MetadataValue.md(f"```\n{format_headline(headline_table(metrics))}\n```"),
            "equity_curves": dg.MetadataValue.md(f"![equity](data:image/png;base64,{png})"),
            "report": dg.MetadataValue.path(str(paths["report"])),
            "oos_daily": dg.MetadataValue.path(str(paths["oos_daily"])),
        }
    )
    return metrics


fold_job = dg.define_asset_job(
    "fold_job",
    selection=dg.AssetSelection.assets("fold_dataset")
    | dg.AssetSelection.groups("tuning", "models", "ensemble")
    | dg.AssetSelection.assets("fold_backtest"),
    description="One fold: dataset, tuning, models, ensemble, predictions, backtest (a partition per fold).",
)
