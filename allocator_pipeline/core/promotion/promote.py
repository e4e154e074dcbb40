"""Promotion of an accepted allocator: retrain on all labelled data, write it with its model card.

Only an accepted walk-forward report promotes anything (DESIGN.md section 8). The promoted model
is written to a staging directory and swapped in for ``final output/step3_allocator/model`` in
one rename, so a reader sees the old model or the new one, never a mixture.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from allocator_pipeline.core.allocation.fold_model import feature_columns, fit_fold, promotion_frame
from allocator_pipeline.core.allocation.path import state_after
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.storage import to_json_text, write_bytes, write_json, write_text
from allocator_pipeline.core.folds.checks import usable_sessions
from allocator_pipeline.core.labels.utility import utility_labels as compute_utility_labels
from allocator_pipeline.core.tuning.space import tuned_settings, tunes_labels
from allocator_pipeline.report.tables import failed_gates, format_headline, headline_table
from allocator_pipeline.settings import Settings


def model_card(metrics: dict[str, Any], manifest: dict[str, Any], settings: Settings) -> str:
    """The promoted allocator's model card (markdown): training window, settings, evidence."""
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
        *[
            f"| {g['name']} | {g['value']} | {g['threshold']} | {'pass' if g['passed'] else 'FAIL'} |"
            for g in metrics["gates"]
        ],
        "",
        f"Allocator out-of-sample CAGR {strategies['allocator']['cagr']}, baseline {strategies['baseline']['cagr']}.",
        "Intended use: a daily QQQ/SPY split between two Step 3 legs. Not for other assets or horizons without "
        "re-running the walk-forward evaluation.",
    ]
    return "\n".join(lines) + "\n"


def replace_dir(staging: Path, target: Path) -> None:
    """Swap ``staging`` in for ``target`` (the old one is removed only after the swap)."""
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old)


def rejection(report: Mapping[str, Any]) -> dict[str, Any]:
    """The promotion record of a rejected report: nothing is written to ``final output/``."""
    return {
        "promoted": False,
        "failed_gates": failed_gates(dict(report)),
        "reason": "the walk-forward report failed its gates; final output/ left untouched",
    }


def promote_allocator(
    report: dict[str, Any],
    fold_tuning: Mapping[str, dict[str, Any]],
    features: pd.DataFrame,
    labels: pd.DataFrame,
    utilities: pd.DataFrame,
    leg_panel: pd.DataFrame,
    path: pd.DataFrame,
    settings: Settings,
) -> dict[str, Any]:
    """Promote the allocator of an accepted report (a rejected one promotes nothing).

    The final model is fitted on every usable session (:func:`promotion_frame`) with the last
    fold's tuned parameters, then written with its settings, the report, the metrics and the
    model card to ``settings.paths.final``; it takes over the walk-forward ``path`` (the evaluated
    allocator path) after its last session, continuing its state (``handover_state``) (the report page is copied from the walk-forward report's
    ``report.html`` in ``settings.paths.backtest``). Returns the promotion manifest (also written as
    ``promotion.json`` there, last, so its presence marks a complete promotion).
    """
    if not report["accepted"]:
        return rejection(report)
    last_fold = max(fold_tuning) if fold_tuning else None
    params = fold_tuning[last_fold].get("best_params", {}) if last_fold else {}
    s = tuned_settings(settings, params)
    if tunes_labels(params):  # tuned lambdas: labels to match them
        labels, utilities = compute_utility_labels(leg_panel, s.labels, CostModel.from_settings(s.costs))
    usable = usable_sessions(features, labels)
    frame = promotion_frame(features, labels, usable, s)
    model = fit_fold(frame, utilities, s)
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
        "train_start": str(train[0]),
        "train_end": str(train[-1]),
        "val_start": str(val[0]),
        "val_end": str(val[-1]),
        "n_train": len(train),
        "n_val": len(val),
        "params_from_fold": last_fold,
        "tuned_params": params,
        "feature_names": feature_columns(frame),
        # the promoted model continues the evaluated walk-forward path from its last session
        "handover_state": state_after(path).to_dict(),
    }
    replace_dir(staging, final / "model")
    write_json(s.model_dump(mode="json"), final / "settings.json")
    write_bytes((s.paths.backtest / "report.html").read_bytes(), final / "report.html")
    write_json(report, final / "metrics.json")
    write_text(model_card(report, manifest, s), final / "model_card.md")
    write_json(manifest, final / "promotion.json")
    return manifest
