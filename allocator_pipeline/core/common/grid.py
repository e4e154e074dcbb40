"""The weight grid and the class buckets.

``WEIGHT_GRID``: candidate ``w_qqq`` values for labels, {0.00, 0.05, ..., 1.00} (21 values).
``BUCKETS``: the 11 model classes {0.0, 0.1, ..., 1.0}; class ``k`` is weight ``BUCKETS[k]``.
Bucket ``k`` is grid column ``2 * k`` (``GRID_INDEX_OF_BUCKET``).
"""

from __future__ import annotations

import numpy as np

WEIGHT_GRID: np.ndarray = np.round(np.arange(21) * 0.05, 2)
BUCKETS: np.ndarray = np.round(np.arange(11) * 0.1, 1)
N_CLASSES: int = len(BUCKETS)
GRID_INDEX_OF_BUCKET: np.ndarray = np.arange(N_CLASSES) * 2
UTILITY_COLUMNS: list[str] = [f"u_{int(round(w * 100)):03d}" for w in WEIGHT_GRID]
PROBA_COLUMNS: list[str] = [f"p_{k:02d}" for k in range(N_CLASSES)]
OUT_OF_RANGE_COLUMN = "out_of_range"
"""Column of a model's decision frame: True where an input lies outside the model's training range."""


def nearest_bucket(weights: np.ndarray) -> np.ndarray:
    """Class index of the nearest bucket for each weight (ties go to the lower bucket)."""
    w = np.asarray(weights, dtype=float)
    return np.clip(np.floor(w * 10 + 0.5 - 1e-9), 0, N_CLASSES - 1).astype(np.int64)
