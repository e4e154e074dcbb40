"""Output policy: expected utility per bucket, sizing, smoothing and the daily change cap.

The one code path from bucket probabilities to the traded weight is :func:`allocator_path`; the
walk-forward backtest and the live daily decision both call it (docs/design.md section 6)::

    EU_j      = sum_k p_k * M[j, k]                       (expected utility of bucket j)
    held_t    = w_s,t-1 drifted through row t's leg returns (the weight actually held)
    w_raw     = sizing (policy.sizing; the baseline weight on a session whose model inputs are out of
                range, below):
      "expected_weight" (default): clip(b + kappa * (sum_k p_k B_k - sum_k pi_k B_k), 0, 1)
      "argmax":                    BUCKETS[argmax_j (EU_j - lambda * cost(2 |B_j - held_t|))]  (ties -> lower)
    w_s,t     = w_s,t-1 + cap(band(alpha * w_s,t-1 + (1 - alpha) * w_raw,t - w_s,t-1))   (smooth_and_cap)
    w_final, exposure = risk envelope (core/allocation/envelope.py)

**Sizing.** ``"expected_weight"`` sizes the tilt in proportion to what the model believes beyond
what it would believe knowing nothing: ``sum_k p_k B_k`` is the expected best weight under the
calibrated probabilities, ``sum_k pi_k B_k`` the same under the class prior ``pi`` (each class's
share of the fold's labelled train and validation rows, :func:`class_prior`), ``b`` the baseline
weight and ``kappa`` ``policy.sizing_gain``. A model that has learnt nothing (calibrated
probabilities equal to the prior) holds the baseline; a modest edge gives a modest tilt, the way
bet sizing from calibrated probabilities does (López de Prado, *Advances in Financial Machine
Learning*, ch. 10), where the argmax of nearly linear expected utilities jumps between 0 and 1 on
any edge and turns it into turnover. ``"argmax"`` is the seed's rule: ``lambda`` is
``policy.turnover_penalty`` (0: plain argmax) and ``cost`` the backtest's cost model, so the labels
(penalty-free by default) and ``M`` carry no turnover charge: turnover is charged once, there,
against the weight held (``lambda`` is not used by ``"expected_weight"``, whose turnover the
smoothing, the daily cap and the envelope's band control).

``M[j, k]`` is the mean realised utility of bucket ``j`` on training days whose best bucket was
``k`` (:func:`utility_matrix`). Weights are the QQQ leg's share of capital, fractions in [0, 1].

**Out of range, hold the baseline** (``policy.hold_out_of_range``): on a session where one of the
deciding model's inputs lies outside the range it took on the model's own train and validation
rows (``FoldModel.input_ranges``), ``w_raw`` is the baseline weight: the model does not
extrapolate. Smoothing, the change cap and the envelope then apply as on any other session.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.envelope import EnvelopeState, apply_envelope
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import (
    BUCKETS,
    GRID_INDEX_OF_BUCKET,
    N_CLASSES,
    OUT_OF_RANGE_COLUMN,
    UTILITY_COLUMNS,
)
from allocator_pipeline.settings import Settings

EU_COLUMNS: list[str] = [f"eu_{k:02d}" for k in range(N_CLASSES)]


def utility_matrix(utilities: pd.DataFrame, label_class: pd.Series) -> np.ndarray:
    """Mean realised utility of each bucket conditional on the day's best bucket.

    Parameters
    ----------
    utilities : DataFrame
        The utility table (``grid.UTILITY_COLUMNS``, utility per candidate weight, a fraction of
        capital), indexed by ``decision_ts``; NaN on unlabelled rows.
    label_class : Series
        Best bucket (0..10, nullable) per ``decision_ts``; ``<NA>`` on unlabelled rows.

    Returns
    -------
    ndarray, shape (11, 11)
        ``M[j, k]`` = mean utility of bucket ``j`` (column ``UTILITY_COLUMNS[2 j]``) over the
        labelled rows whose class is ``k``. A class ``k`` with no training row gets the
        unconditional mean utility of each bucket ``j`` over all labelled rows (the policy then
        treats probability mass on an unseen class as "no information").

    Raises
    ------
    InputDataError
        No labelled row, a missing utility column, or a class outside 0..10.
    """
    missing = [c for c in UTILITY_COLUMNS if c not in utilities.columns]
    if missing:
        raise InputDataError("utility table lacks columns", column=missing[0])
    cols = [UTILITY_COLUMNS[g] for g in GRID_INDEX_OF_BUCKET]
    classes = label_class.reindex(utilities.index)
    u = utilities[cols].to_numpy(dtype=float, na_value=np.nan)
    k = classes.to_numpy(dtype=float, na_value=np.nan)
    rows = np.isfinite(k) & np.isfinite(u).all(axis=1)
    if not rows.any():
        raise InputDataError("no labelled row to build the utility matrix from", column="label_class")
    k_int = k[rows].astype(np.int64)
    if (k_int != k[rows]).any() or k_int.min() < 0 or k_int.max() >= N_CLASSES:
        i = int(np.flatnonzero((k_int != k[rows]) | (k_int < 0) | (k_int >= N_CLASSES))[0])
        raise InputDataError(
            "class must be an integer in 0..10",
            column="label_class",
            row=utilities.index[np.flatnonzero(rows)[i]],
            value=k[rows][i],
        )
    u_lab = u[rows]
    one_hot = np.zeros((len(k_int), N_CLASSES))
    one_hot[np.arange(len(k_int)), k_int] = 1.0
    counts = one_hot.sum(axis=0)
    sums = u_lab.T @ one_hot  # (bucket j, class k)
    unconditional = u_lab.mean(axis=0)
    seen = counts > 0
    m = np.repeat(unconditional[:, None], N_CLASSES, axis=1)
    m[:, seen] = sums[:, seen] / counts[seen]
    return m


def class_prior(label_class: pd.Series) -> np.ndarray:
    """Each class's share of the labelled rows (shape (11,), sums to 1): the policy's ``pi``.

    >>> class_prior(pd.Series([0, 0, 10, 5]))[[0, 5, 10]].tolist()
    [0.5, 0.25, 0.25]
    """
    k = label_class.to_numpy(dtype=float, na_value=np.nan)
    k = k[np.isfinite(k)]
    if len(k) == 0:
        raise InputDataError("no labelled row to take the class prior from", column="label_class")
    counts = np.bincount(k.astype(np.int64), minlength=N_CLASSES)[:N_CLASSES].astype(float)
    return counts / counts.sum()


def _bucket_mean(p: np.ndarray) -> np.ndarray:
    """``sum_k p[:, k] * BUCKETS[k]`` summed in a fixed order (row results independent of the row count)."""
    out = p[:, 0] * float(BUCKETS[0])
    for k in range(1, N_CLASSES):
        out = out + p[:, k] * float(BUCKETS[k])
    return out


def sized_weight(proba: np.ndarray, prior: np.ndarray, baseline: float, gain: float) -> np.ndarray:
    """``clip(b + gain * (sum_k p_k B_k - sum_k prior_k B_k), 0, 1)`` per row: the ``"expected_weight"``
    sizing (QQQ share, fraction).

    >>> prior = np.full(11, 1 / 11)
    >>> sized_weight(np.vstack([prior, np.eye(11)[10]]), prior, 0.5, 1.0).round(6).tolist()
    [0.5, 1.0]
    """
    p = np.asarray(proba, dtype=float)
    pi = np.asarray(prior, dtype=float)
    if pi.shape != (N_CLASSES,) or not np.isfinite(pi).all():
        raise InputDataError(f"expected a class prior of shape ({N_CLASSES},), got {pi.shape}", column="class_prior")
    centre = float(_bucket_mean(pi[None, :])[0])
    return np.clip(baseline + gain * (_bucket_mean(p) - centre), 0.0, 1.0)


def raw_weight(proba: np.ndarray, eu: np.ndarray, prior: np.ndarray | None, settings: Settings) -> np.ndarray:
    """The policy's choice per row before any turnover charge, smoothing or hold: ``policy.sizing``
    ``"expected_weight"`` (:func:`sized_weight` around ``labels.baseline_weight``; needs ``prior``)
    or ``"argmax"`` (the bucket of highest expected utility ``eu``, ties to the lower bucket)."""
    if settings.policy.sizing == "argmax":
        return BUCKETS[np.argmax(eu, axis=1)] if len(eu) else np.empty(0)
    if prior is None:
        raise InputDataError(
            "policy.sizing 'expected_weight' needs the model's class prior (policy.json 'class_prior'): "
            "retrain the model, or set policy.sizing = 'argmax'",
            column="class_prior",
        )
    if not len(proba):
        return np.empty(0)
    return sized_weight(proba, prior, float(settings.labels.baseline_weight), settings.policy.sizing_gain)


def expected_utility(proba: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``EU[i, j] = sum_k proba[i, k] * M[j, k]``, shape (n, 11), in the utility's units.

    Summed over ``k`` in a fixed order, one elementwise product and addition at a time (not a BLAS
    product, nor numpy's reduction, whose order depends on the array's shape), so each row's result
    does not depend on how many rows are evaluated together: the live one-row decision reproduces
    the backtest's row bit for bit.
    """
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[1] != N_CLASSES or np.shape(m) != (N_CLASSES, N_CLASSES):
        raise InputDataError(f"expected proba (n, 11) and M (11, 11), got {p.shape} and {np.shape(m)}")
    mm = np.asarray(m, dtype=float)
    eu = p[:, 0:1] * mm[None, :, 0]
    for k in range(1, N_CLASSES):
        eu = eu + p[:, k : k + 1] * mm[None, :, k]
    return eu


def _step(prev: float, x: float, a: float, b: float, band: float, cap: float) -> float:
    """One session of smoothing, dead band and cap: the new weight from ``prev`` toward ``x``."""
    step = a * prev + b * x - prev
    if band > 0.0:
        step = step - band if step > band else (step + band if step < -band else 0.0)
    return prev + min(max(step, -cap), cap)


def smooth_and_cap(
    w_raw: np.ndarray, alpha: float, max_daily_change: float, w_prev0: float, band: float = 0.0
) -> np.ndarray:
    """Exponential smoothing, a no-trade band, then a cap on the daily change.

    ``d_t = alpha * w_{t-1} + (1 - alpha) * w_raw_t - w_{t-1}`` (the smoothed step); the band
    shrinks it toward zero by ``band`` (``d_t - band`` above ``band``, ``d_t + band`` below
    ``-band``, 0 in between: a small move is not traded, a large one stops at the band's edge, the
    rule that is optimal under proportional costs); ``w_t = w_{t-1} + clip(d_t, -max_daily_change,
    +max_daily_change)``, with ``w_{-1} = w_prev0``. The state carried from one session to the next
    is the previous output ``w_{t-1}``. Each ``w_t`` lies between ``w_{t-1}`` and ``w_raw_t``, so
    inputs in [0, 1] give outputs in [0, 1].
    """
    raw = np.asarray(w_raw, dtype=float)
    out = np.empty(len(raw))
    prev = float(w_prev0)
    a, b, cap, dead = float(alpha), 1.0 - float(alpha), float(max_daily_change), float(band)
    for i, x in enumerate(raw.tolist()):
        prev = _step(prev, x, a, b, dead, cap)
        out[i] = prev
    return out


def held_weight(w_prev: float, r_qqq: float, r_spy: float) -> float:
    """QQQ share of a book set to ``w_prev`` after one session's leg returns (the drifted book)."""
    q = w_prev * (1.0 + r_qqq)
    s = (1.0 - w_prev) * (1.0 + r_spy)
    total = q + s
    return q / total if total > 0.0 else w_prev


def policy_with_turnover(
    eu: np.ndarray,
    r_qqq: np.ndarray,
    r_spy: np.ndarray,
    penalty: Callable[[np.ndarray, float], np.ndarray],
    alpha: float,
    max_daily_change: float,
    w_prev0: float,
    raw_override: np.ndarray | None = None,
    band: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of expected utility net of the turnover cost from the weight held, then smoothing.

    ``w_held_t`` = the previous policy weight ``w_{t-1}`` (``w_prev0`` before the first row) drifted
    through row ``t``'s leg returns (realised over the session ending at ``decision_ts(t)``, so known
    at the decision); ``w_raw_t = BUCKETS[argmax_j (EU_tj - penalty(B_j, w_held_t))]`` (ties to the
    lower bucket); ``w_t`` = :func:`smooth_and_cap` of ``w_raw_t`` from ``w_{t-1}`` (with ``band``). ``penalty`` maps
    the bucket weights and a held weight to the charge (fraction of capital). ``raw_override``: a
    ``w_raw`` per row that replaces the argmax where it is finite (NaN elsewhere), or None. A loop:
    each row's charge depends on the previous row's weight. Returns ``(w_raw, w)``.
    """
    n = len(eu)
    raw = np.empty(n)
    out = np.empty(n)
    prev = float(w_prev0)
    a, b, cap = float(alpha), 1.0 - float(alpha), float(max_daily_change)
    for i in range(n):
        if raw_override is not None and np.isfinite(raw_override[i]):
            x = float(raw_override[i])
        else:
            held = held_weight(prev, float(r_qqq[i]), float(r_spy[i]))
            x = float(BUCKETS[int(np.argmax(eu[i] - penalty(BUCKETS, held)))])
        prev = _step(prev, x, a, b, band, cap)
        raw[i], out[i] = x, prev
    return raw, out


def allocator_path(
    proba: np.ndarray,
    m: np.ndarray,
    context: pd.DataFrame,
    settings: Settings,
    w_prev0: float,
    state0: EnvelopeState | None = None,
    out_of_range: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> pd.DataFrame:
    """Probabilities -> traded weight and exposure, for the backtest and the live decision.

    Parameters
    ----------
    proba : ndarray, shape (n, 11)
        Calibrated bucket probabilities decided at each context row (bucket order).
    m : ndarray, shape (11, 11)
        :func:`utility_matrix` of the fold's training rows.
    context : DataFrame
        ``n`` rows indexed by ``decision_ts``: ``qqq_leg_return``, ``spy_leg_return``,
        ``cash_return`` and optionally ``qqq_drift_psi``, ``spy_drift_psi`` (see
        :func:`allocator_pipeline.core.allocation.envelope.apply_envelope`).
    settings : Settings
        Uses ``policy`` (alpha, max_daily_change), ``envelope`` and ``labels.baseline_weight``.
    w_prev0 : float
        The smoothed weight of the session before the first row (the smoothing state).
    state0 : EnvelopeState, optional
        The envelope state at the end of the preceding path (None: a fresh start).
    out_of_range : ndarray of bool, shape (n,), optional
        Rows whose model inputs lie outside the model's training range (None: none). With
        ``policy.hold_out_of_range`` their ``w_raw`` is the baseline weight.
    prior : ndarray, shape (11,), optional
        :func:`class_prior` of the fold's training rows; required by ``policy.sizing =
        "expected_weight"`` (a model stored before it had none: retrain it).

    Returns
    -------
    DataFrame
        Index of ``context``; ``eu_00 .. eu_10``, ``out_of_range``, ``w_raw``, ``w_smoothed`` and the envelope's
        columns (``equity, peak, dd, exposure_dd, w_dd, vol, exposure_vol, drift_psi,
        drift_throttled, drift_status, w_drift, w_final, exposure``).
    """
    p = np.asarray(proba, dtype=float)
    if p.shape != (len(context), N_CLASSES):
        raise InputDataError(f"proba has shape {p.shape}, expected ({len(context)}, {N_CLASSES})")
    if len(p) and not np.isfinite(p).all():
        i = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise InputDataError("probability is not finite", column="proba", row=context.index[i])
    eu = expected_utility(p, m)
    outside = np.zeros(len(p), dtype=bool) if out_of_range is None else np.asarray(out_of_range, dtype=bool)
    if outside.shape != (len(p),):
        raise InputDataError(f"out_of_range has shape {outside.shape}, expected ({len(p)},)")
    raw_override = None
    if settings.policy.hold_out_of_range and outside.any():
        raw_override = np.where(outside, float(settings.labels.baseline_weight), np.nan)
    ps = settings.policy
    lam = ps.turnover_penalty
    if ps.sizing == "argmax" and lam > 0 and len(eu):
        cost_model = CostModel.from_settings(settings.costs)
        w_raw, w_s = policy_with_turnover(
            eu,
            context["qqq_leg_return"].to_numpy(dtype=float),
            context["spy_leg_return"].to_numpy(dtype=float),
            lambda w, held: lam * cost_model.rebalance_cost(w, held),
            ps.alpha,
            ps.max_daily_change,
            w_prev0,
            raw_override,
            ps.no_trade_band,
        )
    else:
        w_raw = raw_weight(p, eu, prior, settings)
        if raw_override is not None:
            w_raw = np.where(np.isfinite(raw_override), raw_override, w_raw)
        w_s = smooth_and_cap(w_raw, ps.alpha, ps.max_daily_change, w_prev0, ps.no_trade_band)
    env = apply_envelope(
        w_s, context, settings.envelope, settings.labels.baseline_weight, state0, settings.backtest.execution_lag
    )
    head = pd.DataFrame(eu, index=context.index, columns=EU_COLUMNS)
    head[OUT_OF_RANGE_COLUMN] = outside
    head["w_raw"] = w_raw.astype(float)
    return pd.concat([head, env], axis=1)
