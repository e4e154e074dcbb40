"""Asset group ``evaluation`` (core: ``core/evaluation``): the walk-forward report with its gates."""

import base64

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation import FoldModel
from allocator_pipeline.core.evaluation import evaluate_walk_forward
from allocator_pipeline.core.inputs import read_planted, step3_directory
from allocator_pipeline.defs.history import report_record
from allocator_pipeline.defs.resources import AllocatorSettings
from allocator_pipeline.report import failed_gates, format_headline, headline_figure_png, headline_table, publish_report

GROUP = "evaluation"


@dg.asset(
    group_name=GROUP,
    kinds={"html", "json"},
    description="The continuous out-of-sample backtest over all folds against the baselines, the "
    "robustness gates and the verdict: oos_daily.parquet, metrics.json, report.html.",
)
def walk_forward_report(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    allocator_path: pd.DataFrame,
    fold_ensemble: dict[str, FoldModel],
    fold_tuning: dict[str, dict],
    fold_dataset: dict[str, pd.DataFrame],
    leg_panel: pd.DataFrame,
    utility_labels: pd.DataFrame,
) -> dict:
    s = settings.load()
    planted = read_planted(step3_directory(s))  # a synth-step3 directory: measure the signal kept
    oos_daily, metrics = evaluate_walk_forward(
        allocator_path, fold_ensemble, fold_dataset, fold_tuning, leg_panel, utility_labels, s, planted
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
            # the run history (`allocator runs`, the asset page's plots)
            **report_record(metrics, leg_panel, oos_daily),
        }
    )
    return metrics
