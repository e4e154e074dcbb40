"""A home's stored models and their schedules, read from the artifacts without Dagster.

The walk-forward schedule is the fold plan, each fold's stored model (``models/<fold>/``) and its
tuned parameters (``optuna/<fold>/tuning.json``); the promoted schedule is the model version that
``final output/step3_allocator/promotion.json`` names, with the walk-forward path's state at the
hand-over. The Dagster layer (``defs/allocation.py``, ``defs/resources.py: FoldModelIOManager``)
and the live commands read them through these functions, so every reader decides with the same
stored files; reading them imports neither Dagster nor the fitting libraries.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from allocator_pipeline.core.allocation.fold_model import ENSEMBLE_FILE, FoldModel
from allocator_pipeline.core.allocation.schedule import ModelSchedule, fold_schedule, promoted_schedule
from allocator_pipeline.core.common.artifacts import load_artifact
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.storage import read_json
from allocator_pipeline.settings import Settings, tuned_settings

POINTER = "promotion.json"
"""The file in ``final output/step3_allocator/`` naming the promoted model version."""


class NoPromotedAllocator(FileNotFoundError):
    """No accepted allocator has been promoted yet."""


def model_directory(manifest: Mapping[str, Any], final: Path) -> Path:
    """The promoted model's folder: ``manifest["model_directory"]`` resolved against ``final``, the
    folder holding ``promotion.json`` (a manifest written before relative paths holds an absolute
    path, which is kept as it is).

    >>> model_directory({"model_directory": "models/allocator-2025-09-25-abc"}, Path("/mnt/home/final"))
    PosixPath('/mnt/home/final/models/allocator-2025-09-25-abc')
    """
    return Path(final) / str(manifest["model_directory"])


def load_fold_model(settings: Settings, fold: str) -> FoldModel:
    """The stored model of ``fold`` (``fold_ensemble``: members, ensemble, policy) from its directory."""
    directory = settings.paths.fold_models(fold)
    if not (directory / ENSEMBLE_FILE).is_file():
        raise FileNotFoundError(
            f"fold {fold} has no trained fold_ensemble in {directory}: run `allocator train --folds {fold}`"
        )
    return FoldModel.load(directory)


def walk_forward_schedule(settings: Settings, through: str | None = None) -> ModelSchedule:
    """The walk-forward folds' schedule: the fold plan (read once), each fold's stored model and its
    tuned settings. ``through`` (a fold key): the folds up to it, and sessions that another fold
    decides are refused."""
    home = settings.home
    plan = load_artifact(home, "fold_plan")
    keys = sorted(plan.loc[plan["inner"] == -1, "fold"])
    if through is not None:
        if through not in keys:
            raise InputDataError(f"unknown fold {through!r}; the fold plan has {keys[0]}..{keys[-1]}", value=through)
        keys = [k for k in keys if k <= through]
    fitted = {k: load_fold_model(settings, k) for k in keys}
    tuned = {k: tuned_settings(settings, load_artifact(home, "fold_tuning", k).get("best_params", {})) for k in keys}
    return fold_schedule(plan, fitted, tuned, keys, only=None if through is None else f"fold:{through}")


def load_promoted(settings: Settings) -> tuple[ModelSchedule, dict[str, Any]]:
    """The promoted allocator's schedule (its model from the session after the hand-over, with the
    walk-forward path's state there) and its promotion manifest."""
    promotion = settings.paths.final / POINTER
    if not promotion.is_file():
        raise NoPromotedAllocator(
            f"no promoted allocator in {settings.paths.final}: run `allocator run` (or materialise "
            "promoted_allocator) and get an accepted walk-forward report first"
        )
    manifest = read_json(promotion)
    model = FoldModel.load(model_directory(manifest, promotion.parent))
    return promoted_schedule(manifest, model, settings), manifest


def model_schedule(settings: Settings, spec: str) -> ModelSchedule:
    """The schedule named by ``spec``: ``folds`` (each fold's model on its test window, as the
    walk-forward backtest), ``fold:<KEY>`` (the same path through fold KEY; sessions outside its
    test window are refused) or ``promoted`` (the promoted allocator after its hand-over)."""
    if spec == "promoted":
        return load_promoted(settings)[0]
    if spec == "folds":
        return walk_forward_schedule(settings)
    if spec.startswith("fold:"):
        return walk_forward_schedule(settings, through=spec.split(":", 1)[1])
    raise InputDataError(f"a model is 'folds', 'fold:<KEY>' or 'promoted', not {spec!r}", value=spec)
