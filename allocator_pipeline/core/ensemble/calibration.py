"""Probability calibration of the blended bucket probabilities, and classification metrics.

Calibrators (each serialisable to a JSON-able dict and back, the same numpy code applying it at
fit time and after loading, so a stored calibrator reproduces its output exactly; SciPy and
scikit-learn are imported by the fitting functions only, so a decision that applies a stored
calibrator never imports them):

``none``
    Identity.
``temperature``
    One scalar ``T > 0``: ``q = softmax(log(max(p, 1e-15)) / T)``. ``T > 1`` softens an
    over-confident model, ``T < 1`` sharpens an under-confident one. Fitted by minimising the
    log loss over ``log T`` in ``[log 0.05, log 20]`` (bounded Brent,
    ``scipy.optimize.minimize_scalar``); if the optimum found is not better than ``T = 1`` on the
    fitting rows, ``T = 1`` is kept.
``isotonic``
    One-vs-rest: for each bucket ``k``, a non-decreasing map fitted by
    ``sklearn.isotonic.IsotonicRegression`` from ``p_k`` to the indicator ``1[y = k]``. Stored as
    its breakpoints (``X_thresholds_``, ``y_thresholds_``) and applied with ``np.interp``
    (linear between breakpoints, constant beyond them). Then every bucket is raised to
    ``floor`` (default :data:`ISOTONIC_FLOOR`) and rows are divided by their sum.

Metrics (``classification_metrics``) use natural-log log loss with probabilities clipped at
``1e-15``, the multiclass Brier score ``mean_i sum_k (p_ik - 1[y_i = k])^2`` (0 perfect, 2 worst),
the top-label expected calibration error over equal-width confidence bins, accuracy of the
argmax (ties to the lowest bucket) and top-2 accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from allocator_pipeline.core.common.errors import InputDataError

LOG_LOSS_CLIP: float = 1e-15
ISOTONIC_FLOOR: float = 1e-3
"""Minimum probability of every bucket after isotonic calibration (before renormalisation)."""
TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)


# --------------------------------------------------------------------------------------- metrics


def _checked(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(y)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputDataError(f"probabilities must be a 2-d array (n, n_classes >= 2), got {p.shape}")
    if labels.ndim != 1 or len(labels) != len(p):
        raise InputDataError(f"labels must be 1-d with {len(p)} entries, got shape {labels.shape}")
    if len(p) == 0:
        raise InputDataError("no rows to score")
    if not np.all(np.isfinite(p)):
        row = int(np.argwhere(~np.isfinite(p))[0][0])
        raise InputDataError("non-finite probability", row=row)
    if not np.issubdtype(labels.dtype, np.integer):
        if np.any(labels != np.round(labels)):
            raise InputDataError("class labels must be integers")
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= p.shape[1])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputDataError(
            f"class label outside 0..{p.shape[1] - 1}", column="label_class", row=row, value=int(labels[row])
        )
    return p, labels


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative natural log of the probability of the true class (clipped at 1e-15)."""
    p, labels = _checked(proba, y)
    true_p = np.clip(p[np.arange(len(p)), labels], LOG_LOSS_CLIP, 1.0)
    return float(-np.mean(np.log(true_p)))


def _top_label(p: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence and correctness (argmax; ties go to the lowest bucket)."""
    pred = np.argmax(p, axis=1)
    return p[np.arange(len(p)), pred], (pred == labels).astype(np.float64)


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1]: bin ``b`` holds ``b / bins <= c < (b + 1) / bins`` (1.0 in the last)."""
    return np.minimum(np.floor(confidence * bins), bins - 1).astype(np.int64)


def reliability_table(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Top-label reliability diagram data over ``bins`` equal-width confidence bins.

    Returns
    -------
    dict of lists (one entry per bin)
        ``bin_mid`` (centre of the bin), ``confidence`` (mean top-label probability in the bin),
        ``accuracy`` (share of rows whose top label is the true class), ``count`` (rows).
        ``confidence`` and ``accuracy`` are NaN for an empty bin.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    p, labels = _checked(proba, y)
    conf, correct = _top_label(p, labels)
    idx = _bin_index(conf, bins)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=bins) / count
        accuracy = np.bincount(idx, weights=correct, minlength=bins) / count
    return {
        "bin_mid": ((np.arange(bins) + 0.5) / bins).tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": accuracy.tolist(),
        "count": count.astype(np.int64).tolist(),
    }


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Top-label ECE: ``sum_b (n_b / n) * |accuracy_b - confidence_b|`` over non-empty bins."""
    table = reliability_table(proba, y, bins)
    count = np.asarray(table["count"], dtype=np.float64)
    filled = count > 0
    gap = np.abs(np.asarray(table["accuracy"])[filled] - np.asarray(table["confidence"])[filled])
    return float(np.sum(count[filled] * gap) / count.sum())


def classification_metrics(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Log loss, Brier, ECE, accuracy and top-2 accuracy of class probabilities.

    Parameters
    ----------
    proba : ndarray, shape (n, K)
        Class probabilities, rows summing to 1 (bucket order for the allocator, K = 11).
    y : ndarray of int, shape (n,)
        True class indices 0..K-1.
    bins : int
        Equal-width confidence bins of the ECE.

    Returns
    -------
    dict
        ``log_loss`` (nats per row), ``brier`` (multiclass, in [0, 2]), ``ece`` (in [0, 1]),
        ``accuracy``, ``top2_accuracy`` (fractions), ``n`` (rows).
    """
    p, labels = _checked(proba, y)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(p)), labels] = 1.0
    _, correct = _top_label(p, labels)
    top2 = np.argsort(-p, axis=1, kind="stable")[:, :2]
    return {
        "log_loss": log_loss(p, labels),
        "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
        "ece": expected_calibration_error(p, labels, bins),
        "accuracy": float(correct.mean()),
        "top2_accuracy": float(np.mean(np.any(top2 == labels[:, None], axis=1))),
        "n": len(p),
    }


# ----------------------------------------------------------------------------------- calibrators


class Calibrator(Protocol):
    @property
    def kind(self) -> str:
        """``none``, ``temperature`` or ``isotonic``."""

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape, rows summing to 1."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able parameters (``kind`` plus the calibrator's own)."""


@dataclass(frozen=True)
class IdentityCalibrator:
    """No calibration: probabilities pass through unchanged (as float64)."""

    kind: str = field(default="none", init=False)

    def apply(self, proba: np.ndarray) -> np.ndarray:
        return np.array(proba, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


def _softmax_tempered(proba: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(np.asarray(proba, dtype=np.float64), LOG_LOSS_CLIP, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    expd = np.exp(logits)
    return expd / expd.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class TemperatureCalibrator:
    """Temperature scaling: ``softmax(log(max(p, 1e-15)) / temperature)``."""

    temperature: float
    kind: str = field(default="temperature", init=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}")

    def apply(self, proba: np.ndarray) -> np.ndarray:
        return _softmax_tempered(proba, self.temperature)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "temperature": float(self.temperature)}


@dataclass(frozen=True)
class IsotonicCalibrator:
    """One-vs-rest isotonic maps, one per class, then the floor and row renormalisation.

    ``x_thresholds[k]`` and ``y_thresholds[k]`` are the breakpoints of class ``k``'s
    non-decreasing map from the raw probability ``p_k`` to a calibrated score.
    """

    x_thresholds: tuple[np.ndarray, ...]
    y_thresholds: tuple[np.ndarray, ...]
    floor: float = ISOTONIC_FLOOR
    kind: str = field(default="isotonic", init=False)

    def apply(self, proba: np.ndarray) -> np.ndarray:
        p = np.asarray(proba, dtype=np.float64)
        if p.shape[1] != len(self.x_thresholds):
            raise InputDataError(f"isotonic calibrator fitted on {len(self.x_thresholds)} classes, got {p.shape[1]}")
        out = np.empty_like(p)
        for k, (xs, ys) in enumerate(zip(self.x_thresholds, self.y_thresholds)):
            out[:, k] = np.interp(p[:, k], xs, ys)
        out = np.maximum(out, self.floor)
        return out / out.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "floor": float(self.floor),
            "x_thresholds": [x.tolist() for x in self.x_thresholds],
            "y_thresholds": [y.tolist() for y in self.y_thresholds],
        }


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> TemperatureCalibrator:
    """Fit ``T`` minimising the log loss of ``softmax(log p / T)`` on ``(proba, y)``.

    Bounded Brent search over ``log T`` in ``[log 0.05, log 20]`` (``xatol = 1e-6``); ``T = 1``
    (identity) is kept when the optimum is not strictly better on these rows.
    """
    from scipy.optimize import minimize_scalar  # fitting only: applying a calibrator is numpy

    p, labels = _checked(proba, y)

    def objective(log_t: float) -> float:
        return log_loss(_softmax_tempered(p, float(np.exp(log_t))), labels)

    lo, hi = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    result = minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    temperature = float(np.exp(result.x))
    if not objective(float(result.x)) < objective(0.0):
        temperature = 1.0
    return TemperatureCalibrator(temperature)


def fit_isotonic(proba: np.ndarray, y: np.ndarray, floor: float = ISOTONIC_FLOOR) -> IsotonicCalibrator:
    """Fit one non-decreasing map per class from ``p_k`` to ``1[y = k]`` (sklearn, clipped to [0, 1])."""
    from sklearn.isotonic import IsotonicRegression  # fitting only: applying a calibrator is numpy

    p, labels = _checked(proba, y)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for k in range(p.shape[1]):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(p[:, k], (labels == k).astype(np.float64))
        xs.append(np.asarray(iso.X_thresholds_, dtype=np.float64))
        ys.append(np.asarray(iso.y_thresholds_, dtype=np.float64))
    return IsotonicCalibrator(tuple(xs), tuple(ys), float(floor))


def fit_calibrator(kind: str, proba: np.ndarray, y: np.ndarray) -> Calibrator:
    """Fit the calibrator named ``kind`` (``none``, ``temperature``, ``isotonic``) on ``(proba, y)``."""
    if kind == "none":
        return IdentityCalibrator()
    if kind == "temperature":
        return fit_temperature(proba, y)
    if kind == "isotonic":
        return fit_isotonic(proba, y)
    raise ValueError(f"unknown calibration {kind!r}; known: none, temperature, isotonic")


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """Rebuild a calibrator from :meth:`to_dict` output (e.g. read back from JSON)."""
    kind = data.get("kind")
    try:
        if kind == "none":
            return IdentityCalibrator()
        if kind == "temperature":
            return TemperatureCalibrator(float(data["temperature"]))
        if kind == "isotonic":
            xs = tuple(np.asarray(x, dtype=np.float64) for x in data["x_thresholds"])
            ys = tuple(np.asarray(v, dtype=np.float64) for v in data["y_thresholds"])
            if len(xs) != len(ys) or any(len(a) != len(b) or len(a) == 0 for a, b in zip(xs, ys)):
                raise ValueError("x_thresholds and y_thresholds must pair up, non-empty")
            return IsotonicCalibrator(xs, ys, float(data["floor"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputDataError(f"malformed {kind} calibrator: {exc!r}") from exc
    raise InputDataError(f"unknown calibrator kind {kind!r}", value=kind)
