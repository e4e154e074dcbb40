"""LightGBM multiclass member: capped complexity, early stopping on the validation split.

Every bucket's probability is raised to :data:`PROBABILITY_FLOOR` and rows renormalised, as for
the other members. Saved as LightGBM's own text model (``lightgbm.txt``), truncated at the best
iteration. The member predicts from the trees of that text, evaluated with numpy
(:class:`~allocator_pipeline.core.models.trees.BinaryTrees`: the raw scores LightGBM computes,
bit for bit, then the softmax), so a loaded file reproduces its probabilities exactly and
predicting a stored model (the daily decision) does not import LightGBM. A fit checks the trees'
probabilities of its validation rows against the Booster's own.

LightGBM is imported to train and for the split-gain importance (:func:`lightgbm_module`), without
scikit-learn, which LightGBM would otherwise import for its scikit-learn interface.
"""

from __future__ import annotations

import sys
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Self

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import N_CLASSES
from allocator_pipeline.core.common.storage import write_text
from allocator_pipeline.core.models.base import (
    PROBABILITY_FLOOR,
    Member,
    check_library_agrees,
    floor_probabilities,
    softmax_rows,
    split_arrays,
)
from allocator_pipeline.core.models.trees import BinaryTrees, TreeModelError
from allocator_pipeline.settings import LightGBMSettings

if TYPE_CHECKING:
    from lightgbm import Booster


def lightgbm_module() -> ModuleType:
    """The ``lightgbm`` module, imported on first use without scikit-learn.

    ``import lightgbm`` imports scikit-learn, when installed, for LightGBM's scikit-learn interface
    (``lightgbm.compat``; about 0.6 s on the development machine) that the members never use (they
    call ``lgb.train`` and ``lgb.Booster``). So the first import hides scikit-learn from LightGBM
    (``sys.modules["sklearn"] = None`` makes that import raise ``ImportError``, which LightGBM
    catches) and then unhides it: scikit-learn stays importable by everything else, and a process
    that already imported it imports LightGBM as usual. The Booster is the same either way.
    """
    if "lightgbm" not in sys.modules and "sklearn" not in sys.modules:
        sys.modules["sklearn"] = None  # type: ignore[assignment]
        try:
            import lightgbm
        finally:
            del sys.modules["sklearn"]
    import lightgbm

    return lightgbm


def lightgbm_params(settings: LightGBMSettings, *, seed: int, threads: int) -> dict[str, object]:
    """The ``lgb.train`` parameters of a :class:`LightGBMSettings` section.

    ``num_class`` is always 11 so that every bucket has an output, seen in training or not.
    ``deterministic`` + ``force_row_wise`` + a fixed ``seed`` make two fits bit-identical.
    """
    return {
        "objective": "multiclass",
        "num_class": N_CLASSES,
        "metric": "multi_logloss",
        "num_leaves": settings.num_leaves,
        "max_depth": settings.max_depth,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "lambda_l2": settings.lambda_l2,
        "feature_fraction": settings.feature_fraction,
        "learning_rate": settings.learning_rate,
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "num_threads": threads,
        "verbosity": -1,
    }


_UNSAFE_NAME_CHARS = frozenset('",:[]{}')


def _check_feature_names(names: list[str]) -> None:
    """LightGBM refuses JSON special characters in feature names and rewrites whitespace."""
    for name in names:
        if any(ch in _UNSAFE_NAME_CHARS or ch.isspace() for ch in name):
            raise InputDataError(
                'lightgbm: feature names may not contain whitespace or any of " , : [ ] { }', column=name
            )


class LightGBMMember(Member):
    """A LightGBM multiclass Booster over the 11 buckets.

    Parameters
    ----------
    model_text : str
        The Booster's text model (``Booster.model_to_string``), as written to ``lightgbm.txt``.
    """

    name = "lightgbm"
    file_name = "lightgbm.txt"

    def __init__(self, model_text: str) -> None:
        self.model_text = model_text
        self.trees = BinaryTrees.from_lightgbm_text(model_text)
        self.feature_names = self.trees.feature_names
        if self.trees.n_outputs != N_CLASSES:
            raise TreeModelError(f"the model has {self.trees.n_outputs} classes, expected {N_CLASSES}")

    @cached_property
    def booster(self) -> Booster:
        """LightGBM's Booster of the text (imports LightGBM): the split-gain importance."""
        return lightgbm_module().Booster(model_str=self.model_text)

    @classmethod
    def fit(
        cls,
        features: pd.DataFrame,
        labels: np.ndarray | pd.Series,
        val_features: pd.DataFrame,
        val_labels: np.ndarray | pd.Series,
        settings: LightGBMSettings,
        *,
        seed: int,
        threads: int,
        sample_weight: np.ndarray | None = None,
    ) -> LightGBMMember:
        """Train with early stopping on the validation split (multi log loss).

        Parameters
        ----------
        features, labels : training split (float features without NaN, class indices 0..10).
        val_features, val_labels : validation split, same columns.
        settings : LightGBMSettings
        seed, threads : ModelSettings.seed and ModelSettings.threads.
        """
        lgb = lightgbm_module()
        x_train, y_train = split_arrays(features, labels, member=cls.name, split="training")
        names = [str(c) for c in features.columns]
        x_val, y_val = split_arrays(val_features, val_labels, member=cls.name, split="validation", names=names)
        _check_feature_names(names)
        params = lightgbm_params(settings, seed=seed, threads=threads)
        train_set = lgb.Dataset(
            x_train, label=y_train, weight=sample_weight, feature_name=names, params={"verbosity": -1}
        )
        val_set = lgb.Dataset(x_val, label=y_val, reference=train_set)
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=settings.num_boost_round,
            valid_sets=[val_set],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)],
        )
        if list(booster.feature_name()) != names:
            raise InputDataError(
                "lightgbm: feature names must survive LightGBM unchanged (no spaces or JSON "
                f"special characters); got {booster.feature_name()[:5]} for {names[:5]}"
            )
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        member = cls(booster.model_to_string(num_iteration=best))
        library = booster.predict(x_val, num_iteration=best, num_threads=1).reshape(len(x_val), N_CLASSES)
        check_library_agrees(member.name, softmax_rows(member.trees.raw_scores(x_val)), library)
        return member

    def _predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return floor_probabilities(softmax_rows(self.trees.raw_scores(matrix)), PROBABILITY_FLOOR)

    def save(self, directory: str | Path) -> Path:
        return write_text(self.model_text, Path(directory) / self.file_name)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        path = Path(directory) / cls.file_name
        if not path.is_file():
            raise InputDataError("lightgbm model file not found", file=path)
        try:
            return cls(path.read_text())
        except TreeModelError as exc:
            raise InputDataError(f"not a readable LightGBM text model: {exc}", file=path) from exc

    def describe(self) -> dict[str, object]:
        return {
            "member": self.name,
            "iterations": self.trees.n_trees // self.trees.n_outputs,
            "trees": self.trees.n_trees,
            "features": len(self.feature_names),
        }

    def gain_importance(self) -> pd.Series:
        """Total split gain per feature, normalised to sum to 1 (all zeros if the model never split)."""
        gain = np.asarray(self.booster.feature_importance(importance_type="gain"), dtype=np.float64)
        total = gain.sum()
        share = gain / total if total > 0 else np.zeros_like(gain)
        return pd.Series(share, index=pd.Index(self.feature_names, name="feature"), name="gain_share")
