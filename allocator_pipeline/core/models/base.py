"""The common interface of the allocator's ensemble members.

Every member is a multiclass classifier over the 11 buckets of ``core/common/grid.py`` (class ``k`` is
``w_qqq = k / 10``). Whatever the library, a member outputs an ``(n, 11)`` float64 array of class
probabilities in bucket order, rows summing to 1, even when some buckets never occur in the
fold's training labels.

Conventions shared by the members
---------------------------------
* **Features**: a pandas DataFrame of numeric columns. A member stores the names it was trained
  on and, at prediction time, selects and reorders the columns of its input by those names; extra
  columns are ignored, a missing column is an :class:`InputDataError`.
* **Unseen classes and the floor**: libraries that only know the classes present in the
  training labels (CatBoost, scikit-learn) have their columns mapped into the 11 buckets, the
  buckets absent from training starting at 0 (LightGBM is trained with ``num_class=11`` and gives
  them about 1e-15). Then, for every member alike, every bucket is raised to the probability floor
  :data:`PROBABILITY_FLOOR` (``1e-4``) and each row is divided by its sum
  (:func:`floor_probabilities`). The floor is stored in ``linear.json``; for LightGBM and CatBoost,
  whose file formats are the libraries' own, it is this module constant, so fitting and loading
  apply the same one.
* **What is saved is what predicts**: a fitted member predicts from the very text it writes to
  disk (parsed back once at fit time), so loading the file reproduces its probabilities bit for
  bit. The tree members evaluate their text with numpy (``core/models/trees.py``), so predicting
  imports no fitting library. No pickle, no joblib.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import N_CLASSES

PROBABILITY_FLOOR: float = 1e-4
"""Minimum probability of every bucket (before row renormalisation), seen in training or not."""


class Member(ABC):
    """A fitted ensemble member (one per library), saved and loaded without pickle.

    Attributes
    ----------
    name : str
        Member name used in settings and in the fold directory (``lightgbm``, ``linear``,
        ``catboost``).
    file_name : str
        The member's file inside a fold's model directory.
    feature_names : tuple of str
        Training feature columns, in the order the model expects them.
    """

    name: ClassVar[str]
    file_name: ClassVar[str]
    feature_names: tuple[str, ...]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape ``(n, 11)``, float64, bucket order, rows summing to 1.

        Parameters
        ----------
        features : DataFrame
            One row per decision session; must contain every column of ``feature_names`` (extra
            columns are ignored, order does not matter).

        Raises
        ------
        InputDataError
            When a feature column is missing or holds a non-numeric or infinite value.
        """
        matrix = feature_matrix(features, self.feature_names, member=self.name)
        return self._predict_matrix(matrix)

    @abstractmethod
    def _predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, 11)`` from a float64 matrix whose columns are ``feature_names``."""

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write the member atomically as ``directory / file_name``; return that path."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path) -> Self:
        """Read the member written by :meth:`save` from ``directory``."""

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """JSON-able facts about the fitted model (iterations, seen classes, ...) for metadata."""


def feature_matrix(features: pd.DataFrame, names: Sequence[str], *, member: str) -> np.ndarray:
    """Select ``names`` from ``features`` (in that order) as a C-contiguous float64 matrix.

    NaN is passed through (tree members handle it; the linear member refuses it itself);
    infinite values and non-numeric columns are refused.

    Raises
    ------
    InputDataError
        Naming the first missing column (and how many are missing), or the column, row and value
        of the first non-numeric or infinite entry.
    """
    if not isinstance(features, pd.DataFrame):
        raise InputDataError(f"{member}: features must be a pandas DataFrame, got {type(features).__name__}")
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise InputDataError(
            f"{member}: {len(missing)} feature column(s) the model was trained on are missing "
            f"from the input (first missing: {missing[0]!r}; all missing: {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''})",
            column=missing[0],
        )
    if features.columns.duplicated().any():
        dup = features.columns[features.columns.duplicated()][0]
        raise InputDataError(f"{member}: duplicated feature column", column=str(dup))
    selected = features.loc[:, list(names)]
    for col in names:
        dtype = selected[col].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise InputDataError(f"{member}: feature columns must be numeric, got dtype {dtype}", column=col)
    matrix = np.ascontiguousarray(selected.to_numpy(dtype=np.float64, na_value=np.nan))
    bad = np.isinf(matrix)
    if bad.any():
        _raise_first(bad, matrix, selected, f"{member}: infinite feature value")
    return matrix


def check_no_nan(matrix: np.ndarray, frame: pd.DataFrame, problem: str) -> None:
    """Raise an :class:`InputDataError` naming the first NaN of ``matrix`` (columns of ``frame``)."""
    bad = np.isnan(matrix)
    if bad.any():
        _raise_first(bad, matrix, frame, problem)


def _raise_first(bad: np.ndarray, matrix: np.ndarray, frame: pd.DataFrame, problem: str) -> None:
    row, col = np.argwhere(bad)[0]
    raise InputDataError(problem, column=str(frame.columns[col]), row=frame.index[row], value=float(matrix[row, col]))


def class_labels(y: np.ndarray | pd.Series | Sequence[int], *, what: str) -> np.ndarray:
    """Validate bucket labels and return them as an int64 array of class indices 0..10.

    Raises
    ------
    InputDataError
        On a missing value, a non-integer value or a value outside 0..10 (naming the row).
    """
    series = pd.Series(y).reset_index(drop=True) if not isinstance(y, pd.Series) else y
    if series.isna().any():
        pos = int(np.flatnonzero(series.isna().to_numpy())[0])
        raise InputDataError(f"{what}: missing class label", column="label_class", row=series.index[pos])
    try:
        values = series.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputDataError(
            f"{what}: class labels must be integers 0..{N_CLASSES - 1}, got dtype {series.dtype}", column="label_class"
        ) from exc
    bad = (values != np.round(values)) | (values < 0) | (values > N_CLASSES - 1)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise InputDataError(
            f"{what}: class labels must be integers 0..{N_CLASSES - 1}",
            column="label_class",
            row=series.index[pos],
            value=values[pos],
        )
    return values.astype(np.int64)


def split_arrays(
    features: pd.DataFrame,
    labels: np.ndarray | pd.Series,
    *,
    member: str,
    split: str,
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(X, y)`` arrays of a training or validation split (no NaN allowed).

    Parameters
    ----------
    features : DataFrame
        The split's features; its columns (training) or ``names`` (validation) are used.
    labels : array-like of int
        Class indices 0..10, one per row.
    member, split : str
        Used in error messages.
    names : sequence of str, optional
        Feature columns to take, in order (default: every column of ``features``; they must be
        strings).
    """
    if names is None:
        if not isinstance(features, pd.DataFrame):
            raise InputDataError(
                f"{member}: {split} features must be a pandas DataFrame, got {type(features).__name__}"
            )
        bad_names = [c for c in features.columns if not isinstance(c, str)]
        if bad_names:
            raise InputDataError(f"{member}: feature column names must be strings", column=repr(bad_names[0]))
        names = list(features.columns)
    matrix = feature_matrix(features, names, member=member)
    check_no_nan(
        matrix, features.loc[:, list(names)], f"{member}: NaN in the {split} features (drop warm-up rows first)"
    )
    y = class_labels(labels, what=f"{member} {split} labels")
    if len(y) != len(matrix):
        raise InputDataError(f"{member}: {split} features have {len(matrix)} rows but labels have {len(y)}")
    if len(y) == 0:
        raise InputDataError(f"{member}: the {split} split is empty")
    return matrix, y


def expand_to_buckets(proba_seen: np.ndarray, seen: np.ndarray, floor: float) -> np.ndarray:
    """Map probabilities over the seen classes into the 11 buckets, then apply the floor.

    Parameters
    ----------
    proba_seen : ndarray, shape (n, len(seen))
        Probabilities of the seen classes, columns in the order of ``seen``.
    seen : ndarray of int
        Class index (0..10) of each column, strictly increasing.
    floor : float
        Probability floor (see :func:`floor_probabilities`); unseen buckets start at 0.

    Returns
    -------
    ndarray, shape (n, 11)
        float64, rows summing to 1.
    """
    out = np.zeros((proba_seen.shape[0], N_CLASSES), dtype=np.float64)
    out[:, seen] = proba_seen
    return floor_probabilities(out, floor)


def floor_probabilities(proba: np.ndarray, floor: float) -> np.ndarray:
    """``max(p, floor)`` for every bucket, then every row divided by its sum.

    Applied to every member's 11 columns: a bucket absent from training (probability 0 for
    CatBoost and scikit-learn, about 1e-15 for LightGBM's ``num_class=11`` model) ends at about
    ``floor``, and no member can be more confident than ``1 - 10 * floor`` about one bucket, which
    keeps the validation log loss (hence the blend weights) from being dominated by a few rows.
    """
    return normalise_rows(np.maximum(np.asarray(proba, dtype=np.float64), floor))


def normalise_rows(proba: np.ndarray) -> np.ndarray:
    """Divide every row by its sum (float64); refuse non-finite or non-positive rows."""
    proba = np.asarray(proba, dtype=np.float64)
    totals = proba.sum(axis=1, keepdims=True)
    if not np.all(np.isfinite(proba)) or not np.all(totals > 0):
        raise ValueError("class probabilities contain non-finite values or an all-zero row")
    return proba / totals


LIBRARY_TOLERANCE = 1e-9
"""Largest difference in probability allowed between a tree member's own evaluation of its stored
model (``core/models/trees.py``) and the fitting library's prediction, checked at fit time; they
differ by about 1e-16 (the same raw scores, another ``exp``)."""


def check_library_agrees(member: str, ours: np.ndarray, library: np.ndarray) -> None:
    """Raise ``RuntimeError`` when the member's probabilities from its stored model and the
    library's own differ by more than :data:`LIBRARY_TOLERANCE` (a file format this code misreads)."""
    gap = float(np.max(np.abs(ours - np.asarray(library, dtype=np.float64)), initial=0.0))
    if not gap <= LIBRARY_TOLERANCE:
        raise RuntimeError(
            f"{member}: the stored model's probabilities differ from the library's by {gap:.3g} "
            f"(over {LIBRARY_TOLERANCE:g}): the model file is not read as the library reads it"
        )


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a float64 matrix (max-subtracted for stability)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    expd = np.exp(shifted)
    return expd / expd.sum(axis=1, keepdims=True)


def require_two_classes(y: np.ndarray, *, member: str) -> np.ndarray:
    """The sorted distinct classes of ``y``; refuse a training split with a single class."""
    seen = np.unique(y)
    if len(seen) < 2:
        raise InputDataError(
            f"{member}: the training labels hold a single class ({int(seen[0])}); a classifier needs at least two",
            column="label_class",
        )
    return seen
