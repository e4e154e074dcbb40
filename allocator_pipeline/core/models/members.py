"""Per-fold models: fit, save, load the ensemble members (DESIGN.md section 6).

Members
-------
``lightgbm``
    LightGBM multiclass with capped complexity and early stopping on validation
    (``core/models/lightgbm_member.py``), saved as ``lightgbm.txt``.
``linear``
    Elastic-net multinomial logistic regression on standardised features
    (``core/models/linear_member.py``), saved as ``linear.json``.
``catboost``
    CatBoost multiclass with early stopping on validation (``core/models/catboost_member.py``), saved as
    ``catboost.json``.

Every member outputs an ``(n, 11)`` float64 array of bucket probabilities (class ``k`` is
``w_qqq = k / 10``), rows summing to 1, also for buckets absent from the fold's training labels
(see ``core/models/base.py`` for the unseen-class floor). Loading a saved member reproduces its
probabilities exactly (``np.array_equal``). No pickle, no joblib.

Example
-------
>>> members = fit_members(x_train, y_train, x_val, y_val, settings.models)   # doctest: +SKIP
>>> for member in members.values():                                          # doctest: +SKIP
...     member.save(settings.paths.fold_models("2008"))
>>> loaded = load_members(settings.paths.fold_models("2008"), settings.models.members)  # doctest: +SKIP
>>> proba = loaded["lightgbm"].predict_proba(x_test)    # (n_test, 11)      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from allocator_pipeline.core.models.base import PROBABILITY_FLOOR, Member
from allocator_pipeline.core.models.catboost_member import CatBoostMember
from allocator_pipeline.core.models.lightgbm_member import LightGBMMember
from allocator_pipeline.core.models.linear_member import LinearMember
from allocator_pipeline.settings import ModelSettings

__all__ = [
    "MEMBER_TYPES",
    "PROBABILITY_FLOOR",
    "CatBoostMember",
    "LightGBMMember",
    "LinearMember",
    "Member",
    "fit_member",
    "fit_members",
    "lightgbm_gain_importance",
    "load_members",
    "member_files",
]

MEMBER_TYPES: dict[str, type[LightGBMMember] | type[LinearMember] | type[CatBoostMember]] = {
    LightGBMMember.name: LightGBMMember,
    LinearMember.name: LinearMember,
    CatBoostMember.name: CatBoostMember,
}


def _member_type(name: str) -> type[LightGBMMember] | type[LinearMember] | type[CatBoostMember]:
    try:
        return MEMBER_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown ensemble member {name!r}; known: {sorted(MEMBER_TYPES)}") from None


def fit_member(
    name: str,
    x_train: pd.DataFrame,
    y_train: np.ndarray | pd.Series,
    x_val: pd.DataFrame,
    y_val: np.ndarray | pd.Series,
    settings: ModelSettings,
) -> Member:
    """Fit one member on a fold's training split, early-stopped on its validation split.

    Parameters
    ----------
    name : {'lightgbm', 'linear', 'catboost'}
    x_train, x_val : DataFrame
        Float features (no NaN), one row per decision session; validation must hold every
        training column (extra columns are ignored).
    y_train, y_val : array-like of int
        Bucket classes 0..10 (``label_class``), one per row.
    settings : ModelSettings
        ``settings.<name>`` holds the member's hyperparameters; ``seed`` and ``threads`` apply
        to every member.

    Returns
    -------
    Member
        Predicting from the serialised form it saves.

    Raises
    ------
    InputDataError
        On NaN or infinite features, a bad label, mismatched lengths, a missing validation
        column, or a training split with a single class.
    """
    member_type = _member_type(name)
    return member_type.fit(
        x_train,
        y_train,
        x_val,
        y_val,
        getattr(settings, name),
        seed=settings.seed,
        threads=settings.threads,
    )


def fit_members(
    x_train: pd.DataFrame,
    y_train: np.ndarray | pd.Series,
    x_val: pd.DataFrame,
    y_val: np.ndarray | pd.Series,
    settings: ModelSettings,
) -> dict[str, Member]:
    """Fit every member enabled in ``settings.members`` (ModelSettings), in that order."""
    return {
        name: fit_member(name, x_train, y_train, x_val, y_val, settings)
        for name in settings.members
    }


def load_members(directory: str | Path, names: Iterable[str]) -> dict[str, Member]:
    """Load the named members saved by ``Member.save`` under a fold's model directory."""
    return {name: _member_type(name).load(directory) for name in names}


def member_files(names: Iterable[str]) -> dict[str, str]:
    """File name of each named member inside a fold directory (e.g. ``lightgbm.txt``)."""
    return {name: _member_type(name).file_name for name in names}


def lightgbm_gain_importance(member: Member) -> pd.Series:
    """Gain importance of a LightGBM member, normalised to sum to 1, indexed by feature name.

    The total split gain of each feature over all trees (all 11 classes) divided by the grand
    total; all zeros when the model made no split.
    """
    if not isinstance(member, LightGBMMember):
        raise TypeError(f"gain importance needs the LightGBM member, got {type(member).__name__}")
    return member.gain_importance()
