"""The fold ensemble: validation-weighted blend of the members, then a calibrator chosen on validation.

Blend
-----
Each member's log loss ``L_m`` is measured on the fold's validation split; its weight is

    w_m = exp(-L_m / tau) / sum_j exp(-L_j / tau),     tau = EnsembleSettings.blend_temperature,

(a softmax of ``-L / tau``: a member worse by ``tau`` nats per row gets ``1/e`` of the weight; a
small ``tau`` approaches "best member only", a large one equal weights). The blend is
``sum_m w_m p_m`` (members in the order given), rows renormalised to sum to 1.

Calibration, chosen honestly
----------------------------
The validation rows (chronological) are cut in two: the **first half** ``A`` (the earlier
``floor(n / 2)`` rows) fits each candidate calibrator, the **second half** ``B`` scores it by log
loss. Candidates: ``none``, ``temperature``, ``isotonic``.

* ``calibration == "auto"``: candidates are ranked by their log loss on ``B`` (ties prefer the
  simpler one, in the order none, temperature, isotonic). Each in turn is refitted on **all**
  validation rows, and the first whose refitted log loss on all validation rows is not above that
  of ``none`` is kept (``none`` always qualifies). So the chosen calibrator never worsens the
  validation log loss, neither on the held-out half nor on the whole validation split.
  With fewer than :data:`MIN_SELECTION_ROWS` rows in either half the choice is ``none``.
* otherwise the named calibrator is fitted on all validation rows (the held-out scores of every
  candidate are still reported).

``metrics_before`` / ``metrics_after`` (log loss, Brier, ECE, accuracy, top-2) and the reliability
tables are computed on all validation rows, before and after the final calibrator. The "after"
figures are in-sample for the calibrator (optimistic, above all for isotonic); ``selection`` holds
the honest held-out log losses on ``B``.

The :class:`Ensemble` serialises to a JSON-able dict (``ensemble.json``); every float round-trips
exactly through JSON, so a loaded ensemble reproduces its predictions bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import N_CLASSES
from allocator_pipeline.core.common.storage import read_json, write_json
from allocator_pipeline.core.ensemble.calibration import (
    Calibrator,
    calibrator_from_dict,
    classification_metrics,
    fit_calibrator,
    log_loss,
    reliability_table,
)
from allocator_pipeline.settings import EnsembleSettings

CANDIDATES: tuple[str, ...] = ("none", "temperature", "isotonic")
MIN_SELECTION_ROWS: int = 20
_FORMAT = "allocator.ensemble.v1"


def _member_matrix(name: str, proba: np.ndarray, n_rows: int | None) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != N_CLASSES:
        raise InputDataError(f"member {name!r}: probabilities must have shape (n, {N_CLASSES}), got {p.shape}")
    if n_rows is not None and len(p) != n_rows:
        raise InputDataError(f"member {name!r}: {len(p)} rows, expected {n_rows}")
    if not np.all(np.isfinite(p)):
        raise InputDataError(f"member {name!r}: non-finite probability")
    return p


def blend_weights(member_log_loss: Mapping[str, float], blend_temperature: float) -> dict[str, float]:
    """Blend weights ``softmax(-log_loss / blend_temperature)`` over members (same key order)."""
    if not member_log_loss:
        raise InputDataError("the ensemble needs at least one member")
    if not blend_temperature > 0:
        raise ValueError(f"blend_temperature must be > 0, got {blend_temperature}")
    names = list(member_log_loss)
    scores = -np.array([member_log_loss[n] for n in names], dtype=np.float64) / blend_temperature
    scores -= scores.max()
    weights = np.exp(scores)
    weights /= weights.sum()
    return {n: float(w) for n, w in zip(names, weights)}


def blend(member_probs: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """``sum_m w_m p_m`` in the order of ``weights``, rows renormalised; shape ``(n, 11)``."""
    missing = [n for n in weights if n not in member_probs]
    if missing:
        raise InputDataError(
            f"member probabilities missing for {missing} (have {sorted(member_probs)})", column=missing[0]
        )
    out: np.ndarray | None = None
    for name, w in weights.items():
        p = _member_matrix(name, member_probs[name], None if out is None else len(out))
        out = w * p if out is None else out + w * p
    assert out is not None
    return out / out.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Ensemble:
    """A fold's blend weights, calibrator and validation diagnostics.

    Attributes
    ----------
    member_names : tuple of str
        Members, in blending order.
    weights : tuple of float
        Blend weight of each member (sum 1).
    calibrator : Calibrator
        The final calibrator (fitted on all validation rows).
    calibration_requested : str
        ``EnsembleSettings.calibration`` (``auto`` or a calibrator name).
    blend_temperature : float
    member_log_loss : dict
        Validation log loss of each member (nats per row).
    selection : dict
        ``heldout_log_loss`` per candidate (fitted on the first half, scored on the second),
        ``n_fit``, ``n_score``, ``refit_log_loss`` of the candidates tried after refitting.
    metrics_before, metrics_after : dict
        :func:`classification_metrics` of the blend on all validation rows, before and after the
        calibrator.
    reliability_before, reliability_after : dict
        :func:`reliability_table` of the same.
    """

    member_names: tuple[str, ...]
    weights: tuple[float, ...]
    calibrator: Calibrator
    calibration_requested: str
    blend_temperature: float
    member_log_loss: dict[str, float]
    selection: dict[str, Any]
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    reliability_before: dict[str, list[float]]
    reliability_after: dict[str, list[float]]
    ece_bins: int = 10
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def weight_of(self) -> dict[str, float]:
        return dict(zip(self.member_names, self.weights))

    def blend(self, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The uncalibrated blend, ``(n, 11)``."""
        return blend(member_probs, self.weight_of)

    def predict(self, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Calibrated ensemble probabilities ``(n, 11)`` from each member's ``(n, 11)`` output."""
        return self.calibrator.apply(self.blend(member_probs))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``ensemble.json``)."""
        return {
            "format": _FORMAT,
            "member_names": list(self.member_names),
            "weights": [float(w) for w in self.weights],
            "calibrator": self.calibrator.to_dict(),
            "calibration_requested": self.calibration_requested,
            "blend_temperature": float(self.blend_temperature),
            "member_log_loss": dict(self.member_log_loss),
            "selection": self.selection,
            "metrics_before": self.metrics_before,
            "metrics_after": self.metrics_after,
            "reliability_before": self.reliability_before,
            "reliability_after": self.reliability_after,
            "ece_bins": self.ece_bins,
            "notes": dict(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ensemble:
        """Rebuild from :meth:`to_dict` output (JSON nulls of empty reliability bins become NaN)."""
        if data.get("format") != _FORMAT:
            raise InputDataError(f"not an ensemble description (format {data.get('format')!r})")
        try:
            names = tuple(str(n) for n in data["member_names"])
            weights = tuple(float(w) for w in data["weights"])
            if len(names) != len(weights) or not names:
                raise ValueError("member_names and weights must have the same non-zero length")
            return cls(
                member_names=names,
                weights=weights,
                calibrator=calibrator_from_dict(data["calibrator"]),
                calibration_requested=str(data["calibration_requested"]),
                blend_temperature=float(data["blend_temperature"]),
                member_log_loss={k: float(v) for k, v in data["member_log_loss"].items()},
                selection=dict(data["selection"]),
                metrics_before=dict(data["metrics_before"]),
                metrics_after=dict(data["metrics_after"]),
                reliability_before=_reliability_from_json(data["reliability_before"]),
                reliability_after=_reliability_from_json(data["reliability_after"]),
                ece_bins=int(data["ece_bins"]),
                notes=dict(data.get("notes", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputDataError(f"malformed ensemble description: {exc!r}") from exc


def _reliability_from_json(table: Mapping[str, list[Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for key, values in table.items():
        out[key] = (
            [int(v) for v in values] if key == "count" else [float("nan") if v is None else float(v) for v in values]
        )
    return out


def _choose_calibrator(
    blended: np.ndarray, y: np.ndarray, requested: str
) -> tuple[Calibrator, dict[str, Any], dict[str, str]]:
    """Held-out selection on the two halves of the validation rows (see the module docstring)."""
    n = len(y)
    n_fit = n // 2
    fit_part, score_part = slice(0, n_fit), slice(n_fit, n)
    selection: dict[str, Any] = {"n_fit": n_fit, "n_score": n - n_fit, "heldout_log_loss": {}}
    notes: dict[str, str] = {}
    enough = n_fit >= MIN_SELECTION_ROWS and n - n_fit >= MIN_SELECTION_ROWS
    if enough:
        for kind in CANDIDATES:
            cal = fit_calibrator(kind, blended[fit_part], y[fit_part])
            selection["heldout_log_loss"][kind] = log_loss(cal.apply(blended[score_part]), y[score_part])
    if requested != "auto":
        return fit_calibrator(requested, blended, y), selection, notes
    if not enough:
        notes["calibration"] = f"{n} validation rows: fewer than {MIN_SELECTION_ROWS} per half, no calibrator chosen"
        return fit_calibrator("none", blended, y), selection, notes
    heldout = selection["heldout_log_loss"]
    ranked = sorted(CANDIDATES, key=lambda k: (heldout[k], CANDIDATES.index(k)))
    baseline = log_loss(blended, y)
    selection["refit_log_loss"] = {}
    for rank, kind in enumerate(ranked, start=1):
        cal = fit_calibrator(kind, blended, y)
        refit = log_loss(cal.apply(blended), y)
        selection["refit_log_loss"][kind] = refit
        if kind == "none" or refit <= baseline:
            return cal, selection, notes
        notes[f"skipped_{kind}"] = (
            f"{kind} (held-out rank {rank}) raised the validation log loss after refitting on all "
            f"rows ({refit:.6f} > {baseline:.6f})"
        )
    raise AssertionError("'none' is always a candidate")  # pragma: no cover


def fit_ensemble(val_probs: Mapping[str, np.ndarray], y_val: np.ndarray, settings: EnsembleSettings) -> Ensemble:
    """Blend weights from validation log loss, then the calibrator chosen on validation.

    Parameters
    ----------
    val_probs : mapping of member name to ndarray (n_val, 11)
        Each member's probabilities on the validation rows, in chronological row order.
    y_val : ndarray of int, shape (n_val,)
        True bucket classes 0..10 of the validation rows.
    settings : EnsembleSettings
        ``calibration`` (auto / none / temperature / isotonic), ``blend_temperature``,
        ``ece_bins``.

    Returns
    -------
    Ensemble
    """
    if not val_probs:
        raise InputDataError("the ensemble needs at least one member")
    y = np.asarray(y_val)
    matrices = {name: _member_matrix(name, p, len(y)) for name, p in val_probs.items()}
    requested = str(settings.calibration)
    if requested not in ("auto", *CANDIDATES):
        raise ValueError(f"unknown calibration {requested!r}; known: auto, {', '.join(CANDIDATES)}")
    bins = int(settings.ece_bins)
    tau = float(settings.blend_temperature)
    member_ll = {name: log_loss(p, y) for name, p in matrices.items()}
    weights = blend_weights(member_ll, tau)
    blended = blend(matrices, weights)
    y = y.astype(np.int64)
    calibrator, selection, notes = _choose_calibrator(blended, y, requested)
    calibrated = calibrator.apply(blended)
    return Ensemble(
        member_names=tuple(weights),
        weights=tuple(weights.values()),
        calibrator=calibrator,
        calibration_requested=requested,
        blend_temperature=tau,
        member_log_loss=member_ll,
        selection=selection,
        metrics_before=classification_metrics(blended, y, bins),
        metrics_after=classification_metrics(calibrated, y, bins),
        reliability_before=reliability_table(blended, y, bins),
        reliability_after=reliability_table(calibrated, y, bins),
        ece_bins=bins,
        notes=notes,
    )


def save_ensemble(ensemble: Ensemble, path: str | Path) -> Path:
    """Write ``ensemble.json`` atomically (deterministic JSON)."""
    return write_json(ensemble.to_dict(), path)


def load_ensemble(path: str | Path) -> Ensemble:
    """Read an ensemble written by :func:`save_ensemble`."""
    p = Path(path)
    if not p.is_file():
        raise InputDataError("ensemble file not found", file=p)
    try:
        return Ensemble.from_dict(read_json(p))
    except InputDataError as exc:
        raise InputDataError(exc.problem, file=p) from exc
