"""Per-fold models: fit, save, load the ensemble members (docs/design.md section 6).

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
Three features, two seen buckets (0 and 10), quick settings; every member still gives 11 columns:

>>> import tempfile
>>> import numpy as np
>>> import pandas as pd
>>> from allocator_pipeline.settings import load_settings
>>> rng = np.random.default_rng(0)
>>> x = pd.DataFrame(rng.normal(size=(300, 3)), columns=["f_a", "f_b", "f_c"])
>>> y = np.where(x["f_a"] > 0, 10, 0)
>>> members = fit_members(x[:200], y[:200], x[200:], y[200:], load_settings(profile="quick", environ={}).models)
>>> directory = tempfile.mkdtemp()
>>> save_members(members, directory)
{'lightgbm': 'lightgbm.txt', 'linear': 'linear.json', 'catboost': 'catboost.json'}
>>> proba = load_members(directory, members)["lightgbm"].predict_proba(x[200:])
>>> proba.shape, bool(np.array_equal(proba, members["lightgbm"].predict_proba(x[200:])))
((100, 11), True)
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

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
    sample_weight: np.ndarray | None = None,
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
    sample_weight : ndarray, optional
        One positive weight per training row (``core/models/training.py``), or None.

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
        sample_weight=sample_weight,
    )


def fit_members(
    x_train: pd.DataFrame,
    y_train: np.ndarray | pd.Series,
    x_val: pd.DataFrame,
    y_val: np.ndarray | pd.Series,
    settings: ModelSettings,
    sample_weight: np.ndarray | None = None,
) -> dict[str, Member]:
    """Fit every member enabled in ``settings.members`` (ModelSettings), in that order;
    ``sample_weight`` (one positive weight per training row, or None) weights the training loss."""
    return {
        name: fit_member(name, x_train, y_train, x_val, y_val, settings, sample_weight) for name in settings.members
    }


def load_members(directory: str | Path, names: Iterable[str]) -> dict[str, Member]:
    """Load the named members saved by ``Member.save`` under a fold's model directory."""
    return {name: _member_type(name).load(directory) for name in names}


def save_members(members: Mapping[str, Member], directory: str | Path) -> dict[str, str]:
    """Write every member to ``directory`` (its own file each); returns member name -> file name."""
    return {name: member.save(directory).name for name, member in members.items()}


def check_reload_exact(members: Mapping[str, Member], features: pd.DataFrame) -> None:
    """Save the members to a scratch directory, load them back and require the very same
    probabilities on ``features``: what is stored is what was evaluated.

    Raises
    ------
    RuntimeError
        Naming the first member whose reloaded probabilities differ in any bit.
    """
    with tempfile.TemporaryDirectory(prefix="members-") as scratch:
        save_members(members, scratch)
        reloaded = load_members(scratch, members)
        for name, member in members.items():
            if not np.array_equal(member.predict_proba(features), reloaded[name].predict_proba(features)):
                raise RuntimeError(f"reloaded {name} does not reproduce its probabilities")


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
