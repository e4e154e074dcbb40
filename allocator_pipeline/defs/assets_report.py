"""Cross-fold assets: the walk-forward report with its gates, and the promotion of an accepted model."""


import base64
import hashlib
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.evaluation.walk_forward import assemble_walk_forward
from allocator_pipeline.core.labels.utility import utility_labels as compute_utility_labels
from allocator_pipeline.core.allocation.fold_model import FoldModel, feature_columns, fit_fold, promotion_frame
from allocator_pipeline.core.evaluation.gates import accepted, evaluate_gates, monotonic_response
from allocator_pipeline.core.common.grid import BUCKETS
from allocator_pipeline.core.allocation.policy import expected_utility
from allocator_pipeline.report.page import render_report
from allocator_pipeline.report.charts import headline_figure_png
from allocator_pipeline.report.tables import failed_gates, format_headline, headline_table
from allocator_pipeline.core.common.storage import to_json_text, write_bytes, write_json, write_parquet, write_text
from allocator_pipeline.core.tuning.space import tunes_labels, tuned_settings
from allocator_pipeline.core.folds.plan import usable_sessions
from allocator_pipeline.defs.resources import AllocatorSettings
from allocator_pipeline.settings import Settings

GROUP = "report"


def _policy_weight(model: FoldModel):
    """X -> the policy's raw weight (argmax expected utility), for the monotonic sanity gate."""

    def predict(features: pd.DataFrame) -> np.ndarray:
        return BUCKETS[np.argmax(expected_utility(model.predict_proba(features), model.m), axis=1)]

    return predict


def monotonic_sanity(settings: Settings, fold_dataset: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Mean over folds of the change in mean raw w_qqq when each key risk feature rises by 1 std."""
    changes: dict[str, list[float]] = {f: [] for f in settings.gates.monotonic_features}
    for fold, frame in sorted(fold_dataset.items()):
        test = frame[frame["split"] == "test"][feature_columns(frame)]
        model = FoldModel.load(settings.paths.fold_models(fold))
        for feature in changes:
            if feature in test.columns:
                changes[feature].append(monotonic_response(_policy_weight(model), test, feature))
    return {f: float(np.mean(v)) for f, v in changes.items() if v}


def calibration_summary(fold_ensemble: dict[str, dict]) -> dict[str, dict]:
    return {
        fold: {
            "chosen": ens["calibrator"].get("kind"),
            "weights": dict(zip(ens["member_names"], ens["weights"])),
            "before": ens["metrics_before"],
            "after": ens["metrics_after"],
            "reliability": {"before": ens["reliability_before"], "after": ens["reliability_after"]},
        }
        for fold, ens in sorted(fold_ensemble.items())
    }


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
    fold_ensemble: dict[str, dict],
    fold_models: dict[str, dict],
    fold_tuning: dict[str, dict],
    fold_dataset: dict[str, pd.DataFrame],
    leg_panel: pd.DataFrame,
    utility_labels: pd.DataFrame,
) -> dict:
    s = settings.load()
    oos_daily, metrics = assemble_walk_forward(fold_backtest, leg_panel, utility_labels, s)
    importance = pd.DataFrame({fold: pd.Series(m["importance"]) for fold, m in sorted(fold_models.items())}).T
    monotonic = monotonic_sanity(s, fold_dataset)
    gates = evaluate_gates(metrics["strategies"], metrics["folds"], importance.fillna(0.0), monotonic, s.gates)
    metrics.update(
        accepted=accepted(gates),
        gates=gates,
        monotonic=monotonic,
        calibration=calibration_summary(fold_ensemble),
        importance={fold: m["importance"] for fold, m in sorted(fold_models.items())},
        tuning={fold: t for fold, t in sorted(fold_tuning.items()) if t.get("enabled")},
        settings=s.model_dump(mode="json"),
    )
    out = s.paths.backtest
    write_parquet(oos_daily, out / "oos_daily.parquet")
    write_text(render_report(oos_daily, metrics), out / "report.html")
    headline = format_headline(headline_table(metrics))
    png = base64.b64encode(headline_figure_png(oos_daily)).decode()
    context.add_output_metadata(
        {
            "accepted": bool(metrics["accepted"]),
            "failed_gates": ", ".join(g["name"] for g in failed_gates(metrics)) or "none",
            "headline": dg.MetadataValue.md(f"```\n{headline}\n```"),
            "equity_curves": dg.MetadataValue.md(f"![equity](data:image/png;base64,{png})"),
            "report": dg.MetadataValue.path(str(out / "report.html")),
            "oos_daily": dg.MetadataValue.path(str(out / "oos_daily.parquet")),
        }
    )
    return metrics


def model_card(metrics: dict, manifest: dict, settings: Settings) -> str:
    strategies = metrics["strategies"]
    lines = [
        "# Step 3b allocator: model card",
        "",
        f"- Trained on sessions {manifest['train_start']} .. {manifest['val_end']} "
        f"({manifest['n_train']} train-proper, {manifest['n_val']} validation rows).",
        f"- Members: {', '.join(manifest['members'])}; calibrator: {manifest['calibrator']}.",
        f"- Label horizon H = {settings.labels.horizon} sessions; lambda_dd = {settings.labels.lambda_dd}, "
        f"lambda_tc = {settings.labels.lambda_tc}; costs {settings.costs.fee_bps} + {settings.costs.slippage_bps} bps, "
        f"impact {settings.costs.impact_bps} bps x traded^2.",
        f"- Policy: alpha = {settings.policy.alpha}, max daily change = {settings.policy.max_daily_change}.",
        f"- Tuned parameters applied (from fold {manifest['params_from_fold']}): {manifest['tuned_params'] or 'none'}.",
        "",
        "## Out-of-sample walk-forward evidence",
        "",
        "```",
        format_headline(headline_table(metrics)),
        "```",
        "",
        "| gate | value | threshold | verdict |",
        "| --- | --- | --- | --- |",
        *[f"| {g['name']} | {g['value']} | {g['threshold']} | {'pass' if g['passed'] else 'FAIL'} |"
          for g in metrics["gates"]],
        "",
        f"Allocator out-of-sample CAGR {strategies['allocator']['cagr']}, baseline {strategies['baseline']['cagr']}.",
        "Intended use: a daily QQQ/SPY split between two Step 3 legs. Not for other assets or horizons without "
        "re-running the walk-forward evaluation.",
    ]
    return "\n".join(lines) + "\n"


def _replace_dir(staging: Path, target: Path) -> None:
    """Swap ``staging`` in for ``target`` (the old one is removed only after the swap)."""
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old)


@dg.asset(
    group_name=GROUP,
    kinds={"lightgbm", "json"},
    description="When the report is accepted: the allocator retrained on all labelled data, with its "
    "ensemble, calibrator, policy matrix, settings snapshot, report and model card, written to "
    "'final output/step3_allocator/'. When rejected: nothing is promoted.",
)
def promoted_allocator(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    walk_forward_report: dict,
    fold_tuning: dict[str, dict],
    allocator_features: pd.DataFrame,
    utility_labels: pd.DataFrame,
    utility_table: pd.DataFrame,
    leg_panel: pd.DataFrame,
) -> dict:
    base = settings.load()
    if not walk_forward_report["accepted"]:
        failed = failed_gates(walk_forward_report)
        context.log.warning("allocator rejected; nothing promoted: " + ", ".join(g["name"] for g in failed))
        context.add_output_metadata({"promoted": False, "failed_gates": ", ".join(g["name"] for g in failed)})
        return {"promoted": False, "failed_gates": failed,
                "reason": "the walk-forward report failed its gates; final output/ left untouched"}
    last_fold = max(fold_tuning) if fold_tuning else None
    params = fold_tuning[last_fold].get("best_params", {}) if last_fold else {}
    s = tuned_settings(base, params)
    if tunes_labels(params):  # tuned lambdas: labels to match them
        utility_labels, utility_table = compute_utility_labels(leg_panel, s.labels, CostModel.from_settings(s.costs))
    usable = usable_sessions(allocator_features, utility_labels)
    frame = promotion_frame(allocator_features, utility_labels, usable, s)
    model = fit_fold(frame, utility_table, s)
    final = s.paths.final
    staging = final / "model.staging"
    if staging.exists():
        shutil.rmtree(staging)
    files = model.save(staging)
    train = frame[frame["split"] == "train"].index
    val = frame[frame["split"] == "val"].index
    manifest = {
        "promoted": True,
        "model_id": "allocator-{}-{}".format(
            val[-1].date(), hashlib.sha256(to_json_text(s.model_dump(mode="json")).encode()).hexdigest()[:10]
        ),
        "directory": str(final),
        "model_directory": str(final / "model"),
        "files": files,
        "members": list(model.members),
        "calibrator": model.ensemble.calibrator.to_dict().get("kind"),
        "train_start": str(train[0]), "train_end": str(train[-1]),
        "val_start": str(val[0]), "val_end": str(val[-1]),
        "n_train": len(train), "n_val": len(val),
        "params_from_fold": last_fold, "tuned_params": params,
        "feature_names": feature_columns(frame),
    }
    _replace_dir(staging, final / "model")
    write_json(s.model_dump(mode="json"), final / "settings.json")
    write_bytes((s.paths.backtest / "report.html").read_bytes(), final / "report.html")
    write_json(walk_forward_report, final / "metrics.json")
    write_text(model_card(walk_forward_report, manifest, s), final / "model_card.md")
    write_json(manifest, final / "promotion.json")
    context.add_output_metadata({"promoted": True, "directory": dg.MetadataValue.path(str(final)),
                                 "model_id": manifest["model_id"]})
    return manifest
