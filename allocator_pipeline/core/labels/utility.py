"""Utility labels: the best QQQ weight of each session in hindsight (docs/design.md section 5).

For a decision session ``d`` and each grid weight ``w`` in ``WEIGHT_GRID`` (0.00, 0.05, .., 1.00):

* the path of a book rebalanced daily to ``w`` over the next ``H`` sessions earns, on row
  ``d + k`` (k = 1..H), ``r_p = w * qqq_leg_return + (1 - w) * spy_leg_return`` (fractions;
  row ``d + k``'s return is realised over the session ending at ``decision_ts(d + k)``);
* ``future_return = prod(1 + r_p) - 1`` (compounded, fraction);
* ``future_drawdown`` = max drawdown of the path ``1.0, E_1, .., E_H`` (``E_k`` the compounded
  growth after k sessions; the running peak starts at 1.0 at d), a positive fraction, 0 when the
  path never falls below its running peak;
* ``turnover_cost = cost_model.rebalance_cost(w, w_prev)`` (fraction of capital), ``w_prev`` the
  previous session's label ``best_weight`` (first session: ``LabelSettings.baseline_weight``);
* ``U = future_return - lambda_dd * future_drawdown - lambda_tc * turnover_cost``.

``best_weight = argmax_w U`` (ties go to the lower weight). ``label_class`` follows
``LabelSettings.class_rule``: ``bucket_argmax`` (default) the bucket with the highest ``U`` among the
11 bucket weights (symmetric in QQQ and SPY, and the utilities the policy matrix averages), or
``nearest`` the bucket nearest to ``best_weight`` (``grid.nearest_bucket``: every odd grid weight
goes to the lower bucket). With ``lambda_tc = 0`` (default) the labels are penalty-free and do not
depend on the previous label. The label of row ``d`` reads the returns of rows
``d + 1 .. d + H`` and, through ``w_prev``, earlier labels only; the last ``H`` rows have no label.

:func:`utility_labels` is vectorised over (sessions, weights, horizon); only the ``w_prev`` chain
is a loop over sessions, on a precomputed ``(n, 21)`` array. :func:`utility_labels_loop` is the
plain per-session reference, computed with the same floating-point operations in the same order,
so the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import GRID_INDEX_OF_BUCKET, UTILITY_COLUMNS, WEIGHT_GRID, nearest_bucket
from allocator_pipeline.core.features.inputs import check_index, column_values
from allocator_pipeline.settings import LabelSettings

LABEL_COLUMNS = ["best_weight", "label_class", "best_utility"]
CHUNK_SESSIONS = 1024
"""Sessions per vectorised chunk: bounds the (chunk, 21, H) work arrays (about 3.4 MB at H=20)."""


def _leg_returns(panel: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    index = check_index(panel)
    missing = [c for c in ("qqq_leg_return", "spy_leg_return") if c not in panel.columns]
    if missing:
        raise InputDataError("the leg panel has no leg return column", column=missing[0])
    return index, column_values(panel, "qqq_leg_return"), column_values(panel, "spy_leg_return")


def path_statistics(
    r_qqq: np.ndarray, r_spy: np.ndarray, horizon: int, chunk: int = CHUNK_SESSIONS
) -> tuple[np.ndarray, np.ndarray]:
    """Future return and future drawdown of every grid weight, for every labelled session.

    Parameters
    ----------
    r_qqq, r_spy : numpy.ndarray
        Daily leg returns (fractions), one per session, row ``t`` realised over the session
        ending at ``decision_ts(t)``.
    horizon : int
        ``H`` in sessions.
    chunk : int
        Sessions per vectorised block (memory bound only; results do not depend on it).

    Returns
    -------
    (future_return, future_drawdown) : tuple of numpy.ndarray
        Each ``(max(n - H, 0), 21)``: row ``d`` uses rows ``d + 1 .. d + H``; positive fractions
        for the drawdown.
    """
    n = len(r_qqq)
    m = max(n - horizon, 0)
    weights = WEIGHT_GRID
    future_return = np.empty((m, len(weights)), dtype=np.float64)
    future_drawdown = np.empty((m, len(weights)), dtype=np.float64)
    if m == 0:
        return future_return, future_drawdown
    # growth[t, j] = 1 + (w_j * r_qqq[t] + (1 - w_j) * r_spy[t]); same operation order as the loop
    r_p = weights[None, :] * r_qqq[:, None] + (1.0 - weights)[None, :] * r_spy[:, None]
    growth = 1.0 + r_p
    # windows[d, j, k] = growth[d + 1 + k, j], k = 0..H-1
    windows = sliding_window_view(growth[1:], horizon, axis=0)
    for start in range(0, m, chunk):
        stop = min(start + chunk, m)
        paths = np.cumprod(windows[start:stop], axis=2)
        peaks = np.maximum.accumulate(paths, axis=2)
        np.maximum(peaks, 1.0, out=peaks)
        future_return[start:stop] = paths[:, :, -1] - 1.0
        future_drawdown[start:stop] = np.max(1.0 - paths / peaks, axis=2)
    return future_return, future_drawdown


def bucket_classes(utilities: np.ndarray, best: np.ndarray, rule: str) -> np.ndarray:
    """The label class (bucket 0..10) of each labelled row under ``LabelSettings.class_rule``.

    ``bucket_argmax``: ``argmax_k U(B_k)`` over the 11 bucket columns (grid columns ``2 k``; ties to
    the lower bucket). ``nearest``: the bucket nearest to the grid's best weight ``WEIGHT_GRID[best]``.
    """
    if rule == "bucket_argmax":
        return np.argmax(utilities[:, GRID_INDEX_OF_BUCKET], axis=1).astype(np.int64)
    return nearest_bucket(WEIGHT_GRID[best])


def _frames(
    index: pd.DatetimeIndex, utilities: np.ndarray, best: np.ndarray, rule: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    n, m = len(index), len(best)
    table = np.full((n, len(WEIGHT_GRID)), np.nan)
    table[:m] = utilities
    best_weight = np.full(n, np.nan)
    best_weight[:m] = WEIGHT_GRID[best]
    best_utility = np.full(n, np.nan)
    best_utility[:m] = utilities[np.arange(m), best]
    classes = pd.array([pd.NA] * n, dtype="Int64")
    if m:
        classes[:m] = bucket_classes(utilities, best, rule)
    idx = index.rename("decision_ts")
    labels = pd.DataFrame({"best_weight": best_weight, "label_class": classes, "best_utility": best_utility}, index=idx)
    return labels, pd.DataFrame(table, index=idx, columns=UTILITY_COLUMNS)


def utility_labels(
    panel: pd.DataFrame, settings: LabelSettings, cost_model: CostModel
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Utility labels and the full utility table of the leg panel (vectorised).

    Parameters
    ----------
    panel : pandas.DataFrame
        Leg panel indexed by ``decision_ts`` (UTC) with ``qqq_leg_return`` and
        ``spy_leg_return`` (fractions, finite on every row).
    settings : LabelSettings
        ``horizon`` H (sessions), ``lambda_dd``, ``lambda_tc``, ``baseline_weight``.
    cost_model : CostModel
        The project's cost model; ``rebalance_cost(w, w_prev)`` is a fraction of capital.

    Returns
    -------
    labels : pandas.DataFrame
        Index ``decision_ts``; ``best_weight`` (float, grid value), ``label_class`` (Int64 0..10),
        ``best_utility`` (float, fraction); NaN / ``<NA>`` on the last H rows.
    utilities : pandas.DataFrame
        Index ``decision_ts``; ``UTILITY_COLUMNS`` (U of each grid weight, given the label path's
        ``w_prev``); NaN on the last H rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from allocator_pipeline.core.common.costs import CostModel
    >>> from allocator_pipeline.core.common.sessions import decision_ts_from_dates
    >>> from allocator_pipeline.settings import LabelSettings
    >>> idx = decision_ts_from_dates(pd.bdate_range("2024-01-02", periods=6))
    >>> panel = pd.DataFrame({"qqq_leg_return": [0.0, 0.01, -0.02, 0.03, 0.0, 0.01],
    ...                       "spy_leg_return": [0.0, 0.005, 0.0, 0.01, -0.01, 0.0]}, index=idx)
    >>> labels, utilities = utility_labels(panel, LabelSettings(horizon=2), CostModel())
    >>> labels["label_class"].tolist()  # the last H = 2 sessions have no label
    [0, 0, 10, 10, <NA>, <NA>]
    >>> utilities.shape  # U of each of the 21 grid weights
    (6, 21)
    """
    index, r_qqq, r_spy = _leg_returns(panel)
    h = settings.horizon
    future_return, future_drawdown = path_statistics(r_qqq, r_spy, h)
    base = future_return - settings.lambda_dd * future_drawdown
    # penalty[i, j] = lambda_tc * cost of moving from grid weight i to grid weight j
    penalty = settings.lambda_tc * cost_model.rebalance_cost(WEIGHT_GRID[None, :], WEIGHT_GRID[:, None])
    first_penalty = settings.lambda_tc * cost_model.rebalance_cost(WEIGHT_GRID, settings.baseline_weight)
    m = base.shape[0]
    utilities = np.empty_like(base)
    best = np.empty(m, dtype=np.int64)
    previous = first_penalty
    for d in range(m):  # the w_prev chain: each label depends on the previous one
        row = base[d] - previous
        k = int(row.argmax())  # first maximum: ties go to the lower weight
        utilities[d] = row
        best[d] = k
        previous = penalty[k]
    return _frames(index, utilities, best, settings.class_rule)


def utility_labels_loop(
    panel: pd.DataFrame, settings: LabelSettings, cost_model: CostModel
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-session reference implementation of :func:`utility_labels` (same outputs, slow).

    Plain nested loops over sessions, grid weights and the H future sessions, written to be
    obviously correct; used by the tests and ``scripts/bench_labels.py``.
    """
    index, r_qqq, r_spy = _leg_returns(panel)
    h = settings.horizon
    n = len(index)
    m = max(n - h, 0)
    utilities = np.empty((m, len(WEIGHT_GRID)))
    best = np.empty(m, dtype=np.int64)
    w_prev = float(settings.baseline_weight)
    for d in range(m):
        best_u = -np.inf
        best_j = 0
        for j, w in enumerate(WEIGHT_GRID):
            w = float(w)
            equity = 1.0
            peak = 1.0
            drawdown = 0.0
            for t in range(d + 1, d + h + 1):
                r = w * float(r_qqq[t]) + (1.0 - w) * float(r_spy[t])
                equity = equity * (1.0 + r)
                peak = max(peak, equity)
                drawdown = max(drawdown, 1.0 - equity / peak)
            future_return = equity - 1.0
            turnover_cost = float(cost_model.rebalance_cost(w, w_prev))
            u = future_return - settings.lambda_dd * drawdown - settings.lambda_tc * turnover_cost
            utilities[d, j] = u
            if u > best_u:
                best_u, best_j = u, j
        best[d] = best_j
        w_prev = float(WEIGHT_GRID[best_j])
    return _frames(index, utilities, best, settings.class_rule)
