"""Price features, direction target and causal drift of the reference Step 3 engine.

Everything here works on one symbol's own daily series (adjusted close and volume on its
sessions). Row ``d`` of every feature uses rows ``<= d`` only (trailing windows); the target at
``d`` is the only forward-looking quantity, and it looks exactly one session ahead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR

RETURN_WINDOWS = (1, 5, 21, 63, 126, 252)
# Drift is measured on the model inputs whose memory is short against the trailing window: a
# 63-session window of a 252-session return or a 200-session moving-average gap holds about one
# independent value, so its PSI against training measures where the market stands in its cycle
# (median PSI > 2 on SPY at any time), not a change of distribution. Daily and weekly returns
# (their spread is the volatility regime) and the volume z-score keep the PSI informative.
DRIFT_FEATURES = ("ret_1", "ret_5", "volume_z_63")
# Quintile bins: 63 trailing rows over 10 bins leave ~6 rows a bin and a sampling PSI of ~0.15 by
# itself; over 5 bins ~13 rows a bin.
PSI_BINS = 5
PSI_FLOOR = 1e-4


def price_features(adj_close: pd.Series, volume: pd.Series) -> pd.DataFrame:
    """Causal features of one symbol from its adjusted close and volume.

    Parameters
    ----------
    adj_close : Series
        Split- and dividend-adjusted close (> 0), one value per session, no gaps.
    volume : Series
        Shares traded per session (NaN allowed: the volume feature is then NaN).

    Returns
    -------
    DataFrame
        Same index; float64 columns, NaN during each window's warm-up:

        * ``ret_K`` (K in 1, 5, 21, 63, 126, 252): log return over the last K sessions,
          ``log(p_d / p_{d-K})``;
        * ``vol_21``, ``vol_63``: annualised volatility (std of 1-session log returns x sqrt(252));
        * ``vol_ratio``: ``vol_21 / vol_63``;
        * ``ma_gap_50``, ``ma_gap_200``: ``log(p_d / SMA_K(p)_d)``;
        * ``drawdown_252``: ``p_d / max(p_{d-251..d}) - 1`` (<= 0);
        * ``up_rate_21``: share of the last 21 sessions with a positive return;
        * ``volume_z_63``: z-score of ``log1p(volume)`` against its last 63 sessions.
    """
    log_p = np.log(adj_close.astype("float64"))
    feats = pd.DataFrame(index=adj_close.index)
    for k in RETURN_WINDOWS:
        feats[f"ret_{k}"] = log_p - log_p.shift(k)
    r1 = feats["ret_1"]
    for k in (21, 63):
        feats[f"vol_{k}"] = r1.rolling(k, min_periods=k).std() * np.sqrt(SESSIONS_PER_YEAR)
    feats["vol_ratio"] = feats["vol_21"] / feats["vol_63"]
    for k in (50, 200):
        feats[f"ma_gap_{k}"] = log_p - np.log(adj_close.rolling(k, min_periods=k).mean())
    feats["drawdown_252"] = adj_close / adj_close.rolling(252, min_periods=1).max() - 1.0
    up = (r1 > 0).astype("float64").where(r1.notna())
    feats["up_rate_21"] = up.rolling(21, min_periods=21).mean()
    log_v = np.log1p(volume.astype("float64"))
    mean = log_v.rolling(63, min_periods=63).mean()
    std = log_v.rolling(63, min_periods=63).std()
    feats["volume_z_63"] = ((log_v - mean) / std).where(std > 0)
    return feats.astype("float64")


def asset_returns(adj_close: pd.Series) -> pd.Series:
    """Simple total return of row ``d`` (close ``d-1`` to close ``d``) from the adjusted close."""
    return adj_close.astype("float64").pct_change()


def direction_target(adj_close: pd.Series) -> pd.Series:
    """Target at row ``d``: 1.0 if the **next** session's return is > 0, else 0.0; NaN on the last row.

    This is the only forward-looking series of the engine: it uses row ``d + 1``.
    """
    nxt = asset_returns(adj_close).shift(-1)
    return (nxt > 0).astype("float64").where(nxt.notna())


def psi_bins(train: np.ndarray, n_bins: int = PSI_BINS) -> tuple[list[np.ndarray], np.ndarray]:
    """Quantile bin edges per feature from the training rows, and the training share per bin.

    PSI (population stability index) of a sample against training, per feature:
    ``sum_b (a_b - e_b) * ln(a_b / e_b)`` with ``a_b``, ``e_b`` the sample's and training's shares
    of bin ``b`` (both floored at 1e-4); NaN values are left out of both.

    Returns
    -------
    edges : list of arrays
        Inner edges per feature (unique training quantiles; values ``< edges[0]`` are bin 0).
    expected : array (n_features, n_bins)
        Share of the feature's non-NaN training values in each bin (floored at 1e-4 in the PSI).
        A feature without training values has an all-NaN row and is left out of the PSI.
    """
    n_features = train.shape[1]
    edges: list[np.ndarray] = []
    expected = np.full((n_features, n_bins), np.nan)
    probs = np.arange(1, n_bins) / n_bins
    for j in range(n_features):
        col = train[:, j]
        col = col[~np.isnan(col)]
        if col.size == 0:
            edges.append(np.array([]))
            continue
        e = np.unique(np.quantile(col, probs))
        edges.append(e)
        counts = np.bincount(np.searchsorted(e, col, side="right"), minlength=n_bins)[:n_bins]
        expected[j] = counts / col.size
    return edges, expected


def _one_hot(values: np.ndarray, edges: list[np.ndarray], n_bins: int) -> np.ndarray:
    """(rows, features, bins) indicator of each non-NaN value's bin."""
    n, f = values.shape
    hot = np.zeros((n, f, n_bins), dtype=np.int64)
    for j in range(f):
        col = values[:, j]
        ok = ~np.isnan(col)
        if not ok.any():
            continue
        bins = np.searchsorted(edges[j], col[ok], side="right")
        hot[np.flatnonzero(ok), j, bins] = 1
    return hot


def _psi(actual_counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Mean over features of PSI = sum_b (a_b - e_b) * ln(a_b / e_b); NaN where no feature has data."""
    totals = actual_counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.maximum(actual_counts / totals, PSI_FLOOR)
    e = np.maximum(expected, PSI_FLOOR)
    per_feature = ((a - e) * np.log(a / e)).sum(axis=-1)
    valid = (totals[..., 0] > 0) & ~np.isnan(expected).any(axis=-1)
    per_feature = np.where(valid, per_feature, np.nan)
    n_valid = valid.sum(axis=-1)
    total = np.where(valid, per_feature, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_valid > 0, total / n_valid, np.nan)


def trailing_psi(
    values: np.ndarray, train_rows: np.ndarray, first: int, last: int, window: int, n_bins: int = PSI_BINS
) -> tuple[np.ndarray, float]:
    """Causal drift of rows ``first..last`` and the whole-range PSI.

    Parameters
    ----------
    values : array (rows, features)
        The model's input features, every row of the symbol.
    train_rows : array of int
        Rows of the fold's training window (the bins and expected shares come from them).
    first, last : int
        Inclusive row range to score (the fold's test rows).
    window : int
        Trailing sessions: the PSI at row ``d`` compares rows ``max(0, d - window + 1) .. d``
        with the training distribution, so it uses rows ``<= d`` only.

    Returns
    -------
    psi : array (last - first + 1,)
        Mean PSI over features at each row (causal).
    whole : float
        PSI of all rows ``first..last`` together against training (diagnostic only: it looks
        into the fold's future).
    """
    edges, expected = psi_bins(values[train_rows], n_bins)
    lo = max(0, first - window + 1)
    hot = _one_hot(values[lo : last + 1], edges, n_bins)
    cum = np.concatenate([np.zeros((1,) + hot.shape[1:], dtype=np.int64), hot.cumsum(axis=0)])
    rows = np.arange(first, last + 1) - lo  # position of row d inside the slice
    start = np.maximum(rows - window + 1, 0)
    counts = cum[rows + 1] - cum[start]
    whole_counts = cum[last - lo + 1] - cum[first - lo]
    return _psi(counts, expected), float(_psi(whole_counts[None], expected)[0])
