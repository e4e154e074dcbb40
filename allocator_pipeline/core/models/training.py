"""What a fold's members are trained on: the in-fold feature screen and the training-row weights.

Both use the fold's ``train`` rows only, and the utility table's gap ``U(1.0) - U(0.0)`` (the value
of holding QQQ rather than SPY over the next H sessions, a fraction of capital) as the target the
bucket classes summarise.

Why (measured on synthetic Step 3 fixtures with a planted signal and with pure noise, docs/research.md
"Power of the verdict"): with every feature block, slow regime features (moving-average slopes,
volatility ratios, drift means) take the trees' first splits; they correlate strongly with the
gap inside a training window but with alternating signs from one stretch of years to the next, and
out of sample they cancel a persistent signal. The screen keeps the features whose correlation
keeps its sign across contiguous blocks. Nearly every label is bucket 0 or 10 and the training
years favour one side; the weights make a row count by what the choice was worth and the two
sides count equally.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import UTILITY_COLUMNS
from allocator_pipeline.core.features.risk import leg_sign


def utility_gap(utilities: pd.DataFrame, index: pd.Index) -> np.ndarray:
    """``U(1.0) - U(0.0)`` of the rows ``index`` (fraction of capital over the label horizon)."""
    u = utilities.loc[index, [UTILITY_COLUMNS[-1], UTILITY_COLUMNS[0]]].to_numpy(dtype=float)
    return u[:, 0] - u[:, 1]


def training_weights(y: np.ndarray, gap: np.ndarray | None, mode: str) -> np.ndarray | None:
    """Row weights of ``ModelSettings.sample_weight`` (mean 1), None for ``"none"``.

    ``utility_gap``: ``|gap|``; ``side_balanced``: rows of classes ``k < 5`` (SPY side) and ``k > 5``
    (QQQ side) rescaled to equal total weight (class 5 unchanged; a side without rows leaves the
    weights alone); ``side_balanced_gap``: both.

    >>> training_weights(np.array([0, 0, 0, 10]), None, "side_balanced").round(3).tolist()
    [0.667, 0.667, 0.667, 2.0]
    """
    if mode == "none":
        return None
    w = np.ones(len(y))
    if mode in ("utility_gap", "side_balanced_gap"):
        if gap is None:
            raise InputDataError(f"sample_weight {mode!r} needs the utility table", column="utilities")
        w = np.abs(np.asarray(gap, dtype=float)) + 1e-12
    if mode in ("side_balanced", "side_balanced_gap"):
        low, high = y < 5, y > 5
        lo_sum, hi_sum = w[low].sum(), w[high].sum()
        if lo_sum > 0 and hi_sum > 0:
            half = (lo_sum + hi_sum) / 2.0
            w = np.where(low, w * half / lo_sum, np.where(high, w * half / hi_sum, w))
    return w / w.mean()


def screen_features(
    x: pd.DataFrame, gap: np.ndarray, blocks: int, min_t: float, min_keep: int, signed: Iterable[str] = ()
) -> list[str]:
    """Features whose rank correlation with ``gap`` keeps its sign across contiguous row blocks.

    The rows (in time order) are cut into ``blocks`` contiguous blocks; in each, the Spearman
    correlation ``rho_b`` of every feature with ``gap``; ``t = |mean_b(rho)| / (std_b(rho, ddof=1) /
    sqrt(blocks))``. Kept, in the frame's column order: ``t >= min_t``, and at least the
    ``min_keep`` largest ``t``. A feature of ``signed`` has a known sign: its rise must not raise
    its own leg's weight (``leg_sign(f) * w_qqq``, ``core/features/risk.py``), so it is dropped
    when ``leg_sign(f) * mean_b(rho) > 0`` (a QQQ risk feature rising with the QQQ-minus-SPY gap,
    an SPY one falling with it): the risk features and the ``gates.monotonic_features``, whose
    response the ``monotonic_sanity`` gate measures.

    >>> rng = np.random.default_rng(0)
    >>> gap = rng.normal(size=600)
    >>> x = pd.DataFrame({"signal": gap + rng.normal(size=600), "noise": rng.normal(size=600)})
    >>> screen_features(x, gap, blocks=6, min_t=3.0, min_keep=1)
    ['signal']
    """
    ranks = x.rank().to_numpy(dtype=float)
    g = pd.Series(gap).rank().to_numpy(dtype=float)
    rho = np.zeros((blocks, x.shape[1]))
    for b, rows in enumerate(np.array_split(np.arange(len(x)), blocks)):
        xc = ranks[rows] - ranks[rows].mean(axis=0)
        gc = g[rows] - g[rows].mean()
        den = np.sqrt((xc**2).sum(axis=0) * (gc**2).sum())
        rho[b] = np.where(den > 0, (xc * gc[:, None]).sum(axis=0) / np.where(den > 0, den, 1.0), 0.0)
    sd = rho.std(axis=0, ddof=1)
    t = np.abs(rho.mean(axis=0)) / np.where(sd > 0, sd / np.sqrt(blocks), np.inf)
    known = set(signed)
    sign = np.array([leg_sign(c) if c in known else 0.0 for c in x.columns])
    wrong = sign * rho.mean(axis=0) > 0
    t = np.where(wrong, -np.inf, t)
    keep = set(np.argsort(-t)[:min_keep].tolist()) | set(np.flatnonzero(t >= min_t).tolist())
    return [c for i, c in enumerate(x.columns) if i in keep and not wrong[i]]
