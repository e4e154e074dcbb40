"""CatBoost multiclass member, saved as CatBoost's JSON model (``catboost.json``).

CatBoost only knows the classes present in the training labels, and refuses a validation set
holding any other class. So:

* the model's columns (``class_params.class_names`` of the JSON model, increasing) are mapped
  into the 11 buckets (unseen ones at 0), then every bucket is floored at
  :data:`PROBABILITY_FLOOR` and rows renormalised;
* early stopping (``use_best_model``) runs on the validation rows whose class occurs in training;
  if there is none, the model trains the full ``iterations`` without early stopping.

Prediction from the file. The member predicts from the JSON text it saves, evaluated with numpy
(:class:`~allocator_pipeline.core.models.trees.ObliviousTrees`: CatBoost's raw scores, then the
softmax), so loading the file reproduces its probabilities bit for bit and predicting a stored
model (the daily decision) does not import CatBoost. (CatBoost 1.2's own JSON *reader* does not
parse every leaf value to the double that was written, about one in ten comes back one ulp away;
Python's JSON parser reads them exactly.) A fit checks the probabilities of its validation rows
against the trained model's own.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.storage import write_text
from allocator_pipeline.core.models.base import (
    PROBABILITY_FLOOR,
    Member,
    check_library_agrees,
    expand_to_buckets,
    require_two_classes,
    softmax_rows,
    split_arrays,
)
from allocator_pipeline.core.models.trees import ObliviousTrees, TreeModelError
from allocator_pipeline.settings import CatBoostSettings

RUN_STAMPS = re.compile(r'("(?:model_guid|train_finish_time)"\s*:\s*)"[^"]*"')
"""CatBoost's per-run metadata in ``model_info``: a random model GUID and the wall-clock finish time."""


def without_run_stamps(text: str) -> str:
    """CatBoost's JSON model with its per-run stamps (random ``model_guid``, ``train_finish_time``)
    blanked, so the same inputs give the same file; they are metadata and predictions ignore them."""
    return RUN_STAMPS.sub(r'\1""', text)


class CatBoostMember(Member):
    """A CatBoost ``MultiClass`` model over the classes seen in training.

    Parameters
    ----------
    model_text : str
        CatBoost's JSON model, as written to ``catboost.json``.
    """

    name = "catboost"
    file_name = "catboost.json"

    def __init__(self, model_text: str) -> None:
        self.model_text = model_text
        try:
            model = json.loads(model_text)
            classes = np.asarray(model["model_info"]["class_params"]["class_names"], dtype=np.int64)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TreeModelError(f"not a CatBoost JSON model ({type(exc).__name__}: {exc})") from None
        self.trees = ObliviousTrees.from_catboost_json(model)
        self.feature_names = self.trees.feature_names
        self.classes = classes
        self.floor = PROBABILITY_FLOOR
        if self.trees.bias.shape != (len(self.classes),):
            raise TreeModelError(f"{len(self.trees.bias)} outputs for {len(self.classes)} classes")

    @classmethod
    def fit(
        cls,
        features: pd.DataFrame,
        labels: np.ndarray | pd.Series,
        val_features: pd.DataFrame,
        val_labels: np.ndarray | pd.Series,
        settings: CatBoostSettings,
        *,
        seed: int,
        threads: int,
        sample_weight: np.ndarray | None = None,
    ) -> CatBoostMember:
        """Train ``MultiClass`` with early stopping on the validation rows of seen classes.

        ``settings`` is a ``CatBoostSettings`` section (depth, l2_leaf_reg, iterations,
        learning_rate, early_stopping_rounds).
        """
        from catboost import CatBoostClassifier, Pool

        x_train, y_train = split_arrays(features, labels, member=cls.name, split="training")
        names = [str(c) for c in features.columns]
        x_val, y_val = split_arrays(val_features, val_labels, member=cls.name, split="validation", names=names)
        seen = require_two_classes(y_train, member=cls.name)
        keep = np.isin(y_val, seen)
        model = CatBoostClassifier(
            loss_function="MultiClass",
            depth=settings.depth,
            l2_leaf_reg=settings.l2_leaf_reg,
            iterations=settings.iterations,
            learning_rate=settings.learning_rate,
            random_seed=seed,
            thread_count=threads,
            allow_writing_files=False,
            verbose=0,
        )
        train_pool = Pool(x_train, label=y_train, weight=sample_weight, feature_names=names)
        if keep.any():
            model.fit(
                train_pool,
                eval_set=Pool(x_val[keep], label=y_val[keep], feature_names=names),
                early_stopping_rounds=settings.early_stopping_rounds,
                use_best_model=True,
            )
        else:
            model.fit(train_pool)
        with tempfile.TemporaryDirectory(prefix="catboost-json-") as tmp:
            path = Path(tmp) / "model.json"
            model.save_model(str(path), format="json")
            text = without_run_stamps(path.read_text(encoding="utf-8"))
        member = cls(text)
        if not np.array_equal(member.classes, seen) or list(member.feature_names) != names:
            raise RuntimeError(
                f"catboost: the JSON model holds classes {member.classes.tolist()} and features "
                f"{list(member.feature_names)[:5]}..., expected {seen.tolist()} and {names[:5]}..."
            )
        check_library_agrees(
            cls.name,
            softmax_rows(member.trees.raw_scores(x_val)),
            model.predict(x_val, prediction_type="Probability", thread_count=1),
        )
        return member

    def _predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return expand_to_buckets(softmax_rows(self.trees.raw_scores(matrix)), self.classes, self.floor)

    def save(self, directory: str | Path) -> Path:
        return write_text(self.model_text, Path(directory) / self.file_name)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        path = Path(directory) / cls.file_name
        if not path.is_file():
            raise InputDataError("catboost model file not found", file=path)
        try:
            return cls(path.read_text(encoding="utf-8"))
        except TreeModelError as exc:
            raise InputDataError(f"not a readable CatBoost JSON model: {exc}", file=path) from exc

    def describe(self) -> dict[str, object]:
        return {
            "member": self.name,
            "trees": self.trees.n_trees,
            "seen_classes": self.classes.tolist(),
            "features": len(self.feature_names),
        }
