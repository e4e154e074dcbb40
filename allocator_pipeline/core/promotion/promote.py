"""Promotion of the evaluated procedure: the walk-forward rule applied to all labelled data.

The gates accept a *procedure*: how each fold is tuned (an Optuna study on inner walk-forward
splits of its training region), trained (members fitted on train-proper, early-stopped on the
validation tail), calibrated, and the policy and envelope it runs on one continuous path. Only an
accepted report promotes, and promotion applies that same procedure once more, to all data up
to the last labelled session:

1. tuning: the study ``final`` on the inner splits of :func:`~allocator_pipeline.core.folds.plan.plan_final`
   (same budget, seed, space and objective as the folds'; skipped with tuning off);
2. training: :func:`~allocator_pipeline.core.allocation.fold_model.fit_fold` on the promotion
   frame (train-proper, purge, the last ``validation_sessions`` usable sessions as validation)
   with the study's best parameters;
3. hand-over: the promoted model continues the walk-forward path after its last session, from
   that path's state (``handover_state``).

Atomic: the model, its settings, report, metrics and model card are written to a staging
directory renamed to ``final output/step3_allocator/models/<model_id>/`` (a new version; earlier
ones stay), and only then the pointer ``final output/step3_allocator/promotion.json`` is replaced
(one atomic rename). The daily job reads the pointer once per run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from allocator_pipeline.core.allocation.fold_model import feature_columns, fit_fold, promotion_frame
from allocator_pipeline.core.allocation.path import state_after
from allocator_pipeline.core.allocation.stored import POINTER
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.storage import (
    publish_directory,
    remove,
    to_json_text,
    write_bytes,
    write_json,
    write_text,
)
from allocator_pipeline.core.folds.checks import usable_sessions
from allocator_pipeline.core.folds.plan import FINAL_FOLD, plan_final
from allocator_pipeline.core.labels.utility import utility_labels as compute_utility_labels
from allocator_pipeline.core.tuning.result import export_ledger, export_trial_returns
from allocator_pipeline.core.tuning.space import tunes_labels
from allocator_pipeline.core.tuning.study import inner_fold_frames, run_study
from allocator_pipeline.report.comparisons import comparison_lines
from allocator_pipeline.report.tables import failed_gates, fmt_gate, format_headline, headline_table
from allocator_pipeline.settings import Settings, tuned_settings


def model_card(metrics: dict[str, Any], manifest: dict[str, Any], settings: Settings) -> str:
    """The promoted allocator's model card (markdown): training window, parameters and their
    source, settings, and the out-of-sample evidence that accepted the procedure."""
    strategies = metrics["strategies"]
    tuning = manifest["tuning"]
    source = (
        f"Optuna study '{FINAL_FOLD}' on {tuning['n_inner']} inner walk-forward splits of all labelled data "
        f"(the folds' rule): {tuning['n_trials']['complete']} complete and {tuning['n_trials']['pruned']} pruned "
        f"trials; traded: {(tuning.get('selection') or {}).get('reason', 'the highest objective')} (objective {tuning['best_value']:.4g})"
        if tuning.get("enabled")
        else "tuning off: the settings' defaults"
    )
    lines = [
        "# Step 3b allocator: model card",
        "",
        f"- Model `{manifest['model_id']}`.",
        f"- Trained on sessions {manifest['train_start']} .. {manifest['val_end']} "
        f"({manifest['n_train']} train-proper, {manifest['n_val']} validation rows).",
        f"- Members: {', '.join(manifest['members'])}; calibrator: {manifest['calibrator']}.",
        f"- Parameters: {manifest['tuned_params'] or 'none tuned'}; source: {source}.",
        f"- Label horizon H = {settings.labels.horizon} sessions; lambda_dd = {settings.labels.lambda_dd}, "
        f"lambda_tc = {settings.labels.lambda_tc}; costs {settings.costs.fee_bps} + {settings.costs.slippage_bps} bps, "
        f"impact {settings.costs.impact_bps} bps x traded^2.",
        f"- Policy: alpha = {settings.policy.alpha}, max daily change = {settings.policy.max_daily_change}.",
        f"- Envelope: drawdown guard {settings.envelope.dd_guard}, volatility scaling {settings.envelope.vol_scaling}, "
        f"max exposure {settings.envelope.max_exposure} (financing spread {settings.costs.financing_spread_bps} bps "
        "a year above 1).",
        f"- Decides the sessions after {manifest['handover_state']['session']}, continuing the walk-forward "
        "path's state there.",
        "",
        "## Out-of-sample walk-forward evidence (the procedure, fold by fold)",
        "",
        "```",
        format_headline(headline_table(metrics)),
        "```",
        "",
        "Three-way verdict (promotion follows the seed's gates below):",
        "",
        *[f"- {line}" for line in comparison_lines(metrics)],
        "",
        "| gate | value | threshold | verdict |",
        "| --- | --- | --- | --- |",
        *[
            f"| {g['name']} | {fmt_gate(g['name'], g['value'])} | {fmt_gate(g['name'], g['threshold'])} | "
            f"{'pass' if g['passed'] else ('not evaluated' if g.get('evaluated') is False else 'FAIL')} |"
            for g in metrics["gates"]
        ],
        "",
        f"Allocator out-of-sample CAGR {strategies['allocator']['cagr']}, baseline {strategies['baseline']['cagr']}.",
        "Intended use: a daily QQQ/SPY split between two Step 3 legs. Not for other assets or horizons without "
        "re-running the walk-forward evaluation.",
    ]
    return "\n".join(lines) + "\n"


def rejection(report: Mapping[str, Any]) -> dict[str, Any]:
    """The promotion record of a rejected report: nothing is written to ``final output/``."""
    return {
        "promoted": False,
        "failed_gates": failed_gates(dict(report)),
        "reason": "the walk-forward report failed its gates; final output/ left untouched",
    }


def tune_final(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    utilities: pd.DataFrame,
    leg_panel: pd.DataFrame,
    settings: Settings,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The folds' tuning rule on all labelled data: ``(best parameters, study summary)``."""
    if not settings.tuning.enabled:
        return {}, {"enabled": False}
    plan = plan_final(features.index, usable_sessions(features, labels), settings)
    frames = inner_fold_frames(features, labels, plan, FINAL_FOLD)
    result = run_study(FINAL_FOLD, frames, utilities, leg_panel, settings, progress=progress)
    ledger = export_ledger(result, settings.paths.optuna / FINAL_FOLD / "trials.parquet")
    returns = export_trial_returns(result, settings.paths.optuna / FINAL_FOLD / "trial_returns.parquet")
    summary = {
        **result.to_dict(),
        "enabled": True,
        "n_inner": len(frames),
        "ledger": str(ledger),
        "trial_returns": str(returns),
    }
    return dict(result.best_params), summary


def promote_allocator(
    report: dict[str, Any],
    features: pd.DataFrame,
    labels: pd.DataFrame,
    utilities: pd.DataFrame,
    leg_panel: pd.DataFrame,
    path: pd.DataFrame,
    settings: Settings,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Promote the evaluated procedure of an accepted report (a rejected one promotes nothing).

    ``path`` is the walk-forward allocator path (its last row's state is the hand-over);
    ``settings.paths.backtest / "report.html"`` is copied beside the model. Returns the manifest,
    also written as the pointer ``promotion.json`` (last, atomically).
    """
    if not report["accepted"]:
        return rejection(report)
    params, tuning = tune_final(features, labels, utilities, leg_panel, settings, progress)
    s = tuned_settings(settings, params)
    if tunes_labels(params):  # tuned lambdas: labels to match them
        labels, utilities = compute_utility_labels(leg_panel, s.labels, CostModel.from_settings(s.costs))
    frame = promotion_frame(features, labels, usable_sessions(features, labels), s)
    model = fit_fold(frame, utilities, s)
    train = frame[frame["split"] == "train"].index
    val = frame[frame["split"] == "val"].index
    digest = hashlib.sha256(to_json_text(s.model_dump(mode="json")).encode()).hexdigest()[:10]
    model_id = f"allocator-{val[-1].date()}-{digest}"
    final = s.paths.final
    version = final / "models" / model_id
    manifest = {
        "promoted": True,
        "model_id": model_id,
        # relative to the folder of promotion.json, so a home moved or mounted elsewhere still decides
        "directory": ".",
        "model_directory": version.relative_to(final).as_posix(),
        "members": list(model.members),
        "calibrator": model.ensemble.calibrator.to_dict().get("kind"),
        "train_start": str(train[0]),
        "train_end": str(train[-1]),
        "val_start": str(val[0]),
        "val_end": str(val[-1]),
        "n_train": len(train),
        "n_val": len(val),
        "tuned_params": params,
        "tuning": tuning,
        "feature_names": feature_columns(frame),
        # the promoted model continues the evaluated walk-forward path after its last session
        "handover_state": state_after(path, s.backtest.execution_lag).to_dict(),
    }
    staging = final / "models" / f".{model_id}.staging.tmp"
    remove(staging)
    manifest["files"] = model.save(staging)["members"]
    write_json(s.model_dump(mode="json"), staging / "settings.json")
    write_bytes((s.paths.backtest / "report.html").read_bytes(), staging / "report.html")
    write_json(report, staging / "metrics.json")
    # the verdict's out-of-sample returns: the live monitor's range (core/monitoring/monitor.py)
    write_bytes((s.paths.backtest / "oos_daily.parquet").read_bytes(), staging / "oos_daily.parquet")
    write_text(model_card(report, manifest, s), staging / "model_card.md")
    write_json(manifest, staging / "manifest.json")
    publish_directory(staging, version)  # the same procedure on the same data again replaces that version
    write_json(manifest, final / POINTER)
    return manifest
