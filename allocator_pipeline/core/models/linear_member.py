"""Elastic-net multinomial logistic regression on standardised features.

Fitted with scikit-learn (``LogisticRegression``, solver ``saga``; since scikit-learn 1.8 the
elastic net is selected by ``l1_ratio`` alone, the ``penalty`` argument being deprecated), after a
``StandardScaler`` fitted on the training split only. The validation split is not used by this
member (no early stopping); it is checked for shape and NaN like the others.

Prediction never calls scikit-learn: it is one numpy function of the stored parameters,

    z = (x - mean) / scale,   logits = z @ coef.T + intercept,   p = softmax(logits),

(for two seen classes scikit-learn fits one logit ``z``; the two columns are ``softmax([0, z])``)
then the seen classes are mapped into the 11 buckets and the probability floor applied. The same
function runs at fit time and after loading ``linear.json``, and JSON stores every float64 with
its shortest exact representation, so a loaded model reproduces its probabilities exactly.

A saga run that stops at ``max_iter`` before reaching its tolerance is recorded as
``converged = False`` in the model file (and in :meth:`LinearMember.describe`) instead of leaving
a ``ConvergenceWarning`` in the log.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.storage import read_json, write_json
from allocator_pipeline.core.models.base import (
    PROBABILITY_FLOOR,
    Member,
    check_no_nan,
    expand_to_buckets,
    require_two_classes,
    softmax_rows,
    split_arrays,
)
from allocator_pipeline.settings import LinearSettings

_FORMAT = "allocator.linear.v1"


class LinearMember(Member):
    """Stored parameters of the standardised elastic-net logistic regression.

    Parameters
    ----------
    feature_names : sequence of str
    mean, scale : ndarray, shape (n_features,)
        Standardisation fitted on the training split (``scale`` is 1 for a constant feature).
    coef : ndarray, shape (n_seen, n_features) or (1, n_features) for two seen classes
    intercept : ndarray, shape (n_seen,) or (1,)
    classes : ndarray of int
        Bucket index (0..10) of each seen class, increasing.
    floor : float
        Probability floor of every bucket (see ``models_base.floor_probabilities``).
    converged : bool
        Whether saga reached its tolerance within ``max_iter``.
    n_iter : int
        saga epochs run.
    """

    name = "linear"
    file_name = "linear.json"

    def __init__(
        self,
        feature_names: tuple[str, ...] | list[str],
        mean: np.ndarray,
        scale: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        classes: np.ndarray,
        floor: float = PROBABILITY_FLOOR,
        converged: bool = True,
        n_iter: int = 0,
    ) -> None:
        self.feature_names = tuple(feature_names)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64).reshape(-1, len(self.feature_names))
        self.intercept = np.asarray(intercept, dtype=np.float64).reshape(-1)
        self.classes = np.asarray(classes, dtype=np.int64)
        self.floor = float(floor)
        self.converged = bool(converged)
        self.n_iter = int(n_iter)
        expected_rows = 1 if len(self.classes) == 2 else len(self.classes)
        if self.coef.shape[0] != expected_rows or self.intercept.shape[0] != expected_rows:
            raise InputDataError(
                f"linear: {len(self.classes)} classes need {expected_rows} coefficient rows, "
                f"got coef {self.coef.shape} and intercept {self.intercept.shape}"
            )

    @classmethod
    def fit(
        cls,
        features: pd.DataFrame,
        labels: np.ndarray | pd.Series,
        val_features: pd.DataFrame,
        val_labels: np.ndarray | pd.Series,
        settings: LinearSettings,
        *,
        seed: int,
        threads: int,
        sample_weight: np.ndarray | None = None,
    ) -> LinearMember:
        """Standardise on the training split, fit the elastic net (saga), keep the parameters.

        ``settings`` is a ``LinearSettings`` section (``C``, ``l1_ratio``, ``max_iter``);
        ``seed`` seeds saga's sample order; ``threads`` is unused (saga is single-threaded).
        """
        # fitting only: prediction is numpy (a decision never imports scikit-learn)
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        x_train, y_train = split_arrays(features, labels, member=cls.name, split="training")
        names = [str(c) for c in features.columns]
        split_arrays(val_features, val_labels, member=cls.name, split="validation", names=names)
        seen = require_two_classes(y_train, member=cls.name)
        scaler = StandardScaler().fit(x_train)
        model = LogisticRegression(
            C=settings.C, l1_ratio=settings.l1_ratio, solver="saga", max_iter=settings.max_iter, random_state=seed
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(scaler.transform(x_train), y_train, sample_weight=sample_weight)
        converged = True
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                converged = False
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if not np.array_equal(model.classes_, seen):
            raise RuntimeError(f"linear: unexpected classes {model.classes_} (expected {seen})")
        return cls(
            feature_names=names,
            # C-ordered copies, as ``from_dict`` builds them: the matrix product then runs the same
            # BLAS kernel before and after a reload (sklearn's coef_ is Fortran-ordered, and the two
            # layouts can differ in the last bit on some processors).
            mean=np.ascontiguousarray(scaler.mean_),
            scale=np.ascontiguousarray(scaler.scale_),
            coef=np.ascontiguousarray(model.coef_),
            intercept=np.ascontiguousarray(model.intercept_),
            classes=seen,
            converged=converged,
            n_iter=int(np.max(model.n_iter_)),
        )

    def _predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(matrix, columns=list(self.feature_names))
        check_no_nan(matrix, frame, "linear: NaN feature value (the linear member cannot score it)")
        standardised = (matrix - self.mean) / self.scale
        logits = standardised @ self.coef.T + self.intercept
        if len(self.classes) == 2:
            logits = np.column_stack([np.zeros(len(logits)), logits[:, 0]])
        return expand_to_buckets(softmax_rows(logits), self.classes, self.floor)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able parameters (floats as Python floats: exact through ``json``)."""
        return {
            "format": _FORMAT,
            "feature_names": list(self.feature_names),
            "scaler_mean": self.mean.tolist(),
            "scaler_scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "classes": self.classes.tolist(),
            "probability_floor": self.floor,
            "converged": self.converged,
            "n_iter": self.n_iter,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> LinearMember:
        if data.get("format") != _FORMAT:
            raise InputDataError(f"not a linear member file (format {data.get('format')!r})", file=source)
        try:
            return cls(
                feature_names=data["feature_names"],
                mean=np.array(data["scaler_mean"], dtype=np.float64),
                scale=np.array(data["scaler_scale"], dtype=np.float64),
                coef=np.array(data["coef"], dtype=np.float64),
                intercept=np.array(data["intercept"], dtype=np.float64),
                classes=np.array(data["classes"], dtype=np.int64),
                floor=data["probability_floor"],
                converged=data["converged"],
                n_iter=data["n_iter"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputDataError(f"malformed linear member file: {exc!r}", file=source) from exc

    def save(self, directory: str | Path) -> Path:
        return write_json(self.to_dict(), Path(directory) / self.file_name)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        path = Path(directory) / cls.file_name
        if not path.is_file():
            raise InputDataError("linear model file not found", file=path)
        return cls.from_dict(read_json(path), source=path)  # type: ignore[return-value]  # final class

    def describe(self) -> dict[str, object]:
        return {
            "member": self.name,
            "seen_classes": self.classes.tolist(),
            "converged": self.converged,
            "n_iter": self.n_iter,
            "nonzero_coefficients": int(np.count_nonzero(self.coef)),
            "features": len(self.feature_names),
        }
