"""The validation-weighted blend of the members and its calibration.

Asset group ``ensemble``: ``fold_ensemble``, ``fold_predictions``.
"""

from allocator_pipeline.core.ensemble.blend import (
    Ensemble,
    blend,
    blend_weights,
    fit_ensemble,
    load_ensemble,
    save_ensemble,
)
from allocator_pipeline.core.ensemble.calibration import (
    ISOTONIC_FLOOR,
    calibrator_from_dict,
    classification_metrics,
    fit_isotonic,
    fit_temperature,
    log_loss,
    reliability_table,
)

__all__ = [
    "ISOTONIC_FLOOR",
    "Ensemble",
    "blend",
    "blend_weights",
    "calibrator_from_dict",
    "classification_metrics",
    "fit_ensemble",
    "fit_isotonic",
    "fit_temperature",
    "load_ensemble",
    "log_loss",
    "reliability_table",
    "save_ensemble",
]
