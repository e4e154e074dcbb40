"""Overfitting statistics from the trial ledgers: the deflated Sharpe ratio and PBO by CSCV.

Every Sharpe ratio here is per session (not annualised): ``SR = mean(x) / std(x)`` of a daily
return series ``x`` with the sample standard deviation (ddof = 1); annualised figures multiply by
``sqrt(252)``.

Deflated Sharpe ratio (Bailey and Lopez de Prado, 2014)
    The statistic is taken on the skill the allocator claims, its weight choice over the Step 3
    baseline: ``x = ret_model_only - ret_baseline``, the daily return of the allocator's weight
    fully invested (no envelope, same costs) minus the baseline's (an information ratio). Not on
    the book's return over cash, whose Sharpe an allocator between two equity legs earns mostly
    from the legs: over cash the planted rule that reads the informative column alone (active
    Sharpe 2.2 to 2.7 a year on the resampled fixtures) could not pass at the ledger's ``N``
    (0.55 to 0.92) while the static baseline reached 0.69; and not on the envelope's reshaping of
    risk, which the three-way verdict's "envelope earns" comparison tests
    (``core/evaluation/comparisons.py``). The observed ``SR`` over ``T`` sessions is tested
    against ``SR0``, the Sharpe the best of ``N`` unskilled trials is expected to reach::

        SR0 = sqrt(V) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))
        DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR^2))

    with ``Z`` the standard normal CDF, ``g`` the Euler-Mascheroni constant, ``skew`` and ``kurt``
    the skewness and (non-excess, normal = 3) kurtosis of ``x`` (population moments), ``N`` the
    number of trials actually run across the folds' studies (complete and pruned) and ``V`` the
    variance of the trials' Sharpe ratios: pooled within studies,
    ``V = sum_f sum_i (SR_fi - mean_f)^2 / sum_f (n_f - 1)`` over the complete trials ``i`` of each
    fold ``f`` (each trial's SR of the same subject on its inner held-out blocks, concatenated:
    its weight choice fully invested over the baseline book, recorded per trial beside its
    traded returns, ``core/tuning/result.py``). Pooling within studies keeps the spread
    between folds' data (not a selection effect) out of ``V``. With ``N < 2`` or ``V = 0`` there
    is no selection to deflate for: ``SR0 = 0``. A weight choice that never leaves the baseline
    has no spread of ``x``: its deflated Sharpe is undefined, and the gate fails. An information
    ratio does not depend on the size of the tilt (a tenth of a tilt scores as the whole): the
    beats-the-baseline gates judge the gain's size, this one whether it is more than selection.

    The research ledger. The method's defaults were themselves chosen among variants tried on the
    fixtures (the envelope switched off, ``lambda_dd``, ``lambda``, ``alpha``, the hold, the
    screen, ...), on the same real leg returns the verdict then scores. Every such variant is a
    row of ``allocator_pipeline/data/research_ledger.csv`` (date, section, variant, outcome) and
    counts as a trial: ``N`` = the studies' trials + the ledger's rows
    (:func:`research_trials`). Their returns were not kept, so ``V`` is at least the sampling
    variance of a per-session Sharpe estimate of an unskilled strategy over the ``T``
    out-of-sample sessions, ``1 / T`` (Lo, 2002, at ``SR = 0`` with normal returns): the spread
    that selection among ``N`` unskilled variants exploits; the pooled variance of the studies
    replaces it only when larger (so tuning, which adds trials, never makes the test easier).
    This treats the variants as independent, which they are not (most differ from the default
    in one setting; ``scripts/bench_deflation.py`` measures a mean correlation of 0.96 between
    the active returns of sixteen such variants): the deflation is conservative. A new variant
    tried on the fixtures gets a new row.

Probability of backtest overfitting (Bailey, Borwein, Lopez de Prado and Zhu, CSCV)
    Per fold, the complete trials' daily excess returns on the inner blocks form a ``T x N``
    matrix. Its rows are cut into ``S`` contiguous blocks of ``floor(T / S)`` sessions (the
    ``T mod S`` oldest sessions are dropped). For each of the ``C(S, S/2)`` ways to pick half of
    the blocks as the in-sample set ``J`` (its complement the out-of-sample set), the trial with
    the best in-sample Sharpe ``n*`` is ranked by its out-of-sample Sharpe among the ``N`` trials
    (rank 1 = worst, ties averaged): ``w = rank / (N + 1)``, ``logit = ln(w / (1 - w))``. The fold's
    PBO is the share of combinations with ``logit <= 0`` (the in-sample winner at or below the
    out-of-sample median). Every fold has the same number of combinations, so the overall PBO,
    the share over all folds' combinations, is the mean of the folds' PBOs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import combinations
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR
from allocator_pipeline.core.common.storage import read_parquet

EULER_GAMMA = 0.5772156649015329
RESEARCH_LEDGER = Path(__file__).resolve().parents[2] / "data" / "research_ledger.csv"
"""The research ledger: one row per variant of the method tried on the fixtures."""
LEDGER_COLUMNS = ("date", "section", "variant", "outcome")
_NORMAL = NormalDist()


def sharpe_per_session(excess: np.ndarray) -> float:
    """``mean / std(ddof=1)`` of daily excess returns (NaN with fewer than 2 values or no spread)."""
    x = np.asarray(excess, dtype=float)
    if len(x) < 2:
        return math.nan
    sd = float(np.std(x, ddof=1))
    return float(np.mean(x)) / sd if sd > 0 else math.nan


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """``SR0``: the expected maximum Sharpe of ``n_trials`` unskilled trials whose Sharpe ratios have
    variance ``variance`` (module docstring); 0 when ``n_trials < 2`` or ``variance <= 0``.

    >>> round(expected_max_sharpe(100, 0.5**2), 4)
    1.2653
    """
    if n_trials < 2 or not variance > 0:
        return 0.0
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe_ratio(sr: float, n_sessions: int, skew: float, kurt: float, sr0: float) -> tuple[float, float]:
    """``(DSR, z)`` from the per-session Sharpe ``sr`` over ``n_sessions``, the returns' skewness and
    non-excess kurtosis, and the benchmark ``sr0`` (:func:`expected_max_sharpe`); NaN when undefined.

    The numerical example of Bailey and Lopez de Prado (2014): annualised SR 2.5 over 1,250 daily
    observations (250 a year), skewness -3, kurtosis 10, N = 100 trials with V = 1/2 (annualised):

    >>> sr0 = expected_max_sharpe(100, 0.5 / 250)
    >>> round(sr0, 4), round(deflated_sharpe_ratio(2.5 / math.sqrt(250), 1250, -3.0, 10.0, sr0)[0], 4)
    (0.1132, 0.9004)
    """
    if not (math.isfinite(sr) and math.isfinite(skew) and math.isfinite(kurt)) or n_sessions < 2:
        return math.nan, math.nan
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    if denom <= 0:
        return math.nan, math.nan
    z = (sr - sr0) * math.sqrt(n_sessions - 1) / math.sqrt(denom)
    return _NORMAL.cdf(z), z


def deflated_sharpe(excess: np.ndarray, n_trials: int, trial_sharpe_variance: float) -> dict[str, Any]:
    """The deflated Sharpe ratio of daily excess returns (formula in the module docstring).

    Parameters
    ----------
    excess : array-like
        Daily returns over a reference (fractions): over cash (``ret - cash_return``), or, as the
        gate takes it, the weight choice over the baseline (``ret_model_only - ret_baseline``).
    n_trials : int
        ``N``: trials run across the studies that chose the strategy.
    trial_sharpe_variance : float
        ``V``: variance of the trials' per-session Sharpe ratios.

    Returns
    -------
    dict
        ``dsr`` (probability in [0, 1], None when undefined), ``sharpe`` and ``sr0`` (per session),
        ``sharpe_annualised``, ``sr0_annualised``, ``z``, ``skewness``, ``kurtosis``, ``n_sessions``,
        ``n_trials``, ``trial_sharpe_variance``.
    """
    x = np.asarray(excess, dtype=float)
    t = len(x)
    sr = sharpe_per_session(x)
    sr0 = expected_max_sharpe(int(n_trials), float(trial_sharpe_variance))
    centred = x - x.mean() if t else x
    m2 = float(np.mean(centred**2)) if t else math.nan
    skew = float(np.mean(centred**3)) / m2**1.5 if m2 > 0 else math.nan
    kurt = float(np.mean(centred**4)) / m2**2 if m2 > 0 else math.nan
    dsr, z = deflated_sharpe_ratio(sr, t, skew, kurt, sr0)

    def clean(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    root = math.sqrt(SESSIONS_PER_YEAR)
    return {
        "dsr": clean(dsr),
        "sharpe": clean(sr),
        "sr0": sr0,
        "sharpe_annualised": clean(sr * root),
        "sr0_annualised": sr0 * root,
        "z": clean(z),
        "skewness": clean(skew),
        "kurtosis": clean(kurt),
        "n_sessions": t,
        "n_trials": int(n_trials),
        "trial_sharpe_variance": clean(float(trial_sharpe_variance)),
    }


def trial_columns(trial_returns: pd.DataFrame, complete: bool = True) -> list[str]:
    """The ``trial_<n>`` columns of a trial-returns ledger; ``complete``: only trials with a return
    on every row (evaluated on every inner block)."""
    from allocator_pipeline.core.tuning.result import TRIAL_PREFIX  # here: core.tuning imports this package

    cols = [c for c in trial_returns.columns if str(c).startswith(TRIAL_PREFIX)]
    if complete:
        cols = [c for c in cols if bool(trial_returns[c].notna().all())]
    return cols


def trial_excess(trial_returns: pd.DataFrame) -> pd.DataFrame:
    """Daily excess returns over cash of the complete trials (rows: the ledger's sessions)."""
    if "cash_return" not in trial_returns.columns:
        raise InputDataError("trial-returns ledger lacks a column", column="cash_return")
    cols = trial_columns(trial_returns)
    return trial_returns[cols].sub(trial_returns["cash_return"], axis=0).astype(float)


def trial_active(trial_returns: pd.DataFrame) -> pd.DataFrame:
    """The complete trials' weight choice over the baseline (``active_<n>`` columns, rows: the
    ledger's sessions); a trial stored before it was recorded is left out."""
    from allocator_pipeline.core.tuning.result import (  # here: core.tuning imports this package
        ACTIVE_PREFIX,
        TRIAL_PREFIX,
    )

    names = [ACTIVE_PREFIX + c[len(TRIAL_PREFIX) :] for c in trial_columns(trial_returns)]
    return trial_returns[[n for n in names if n in trial_returns.columns]].astype(float)


def pooled_sharpe_variance(sharpes: Mapping[str, np.ndarray]) -> tuple[float, int]:
    """Pooled within-study variance of Sharpe ratios and its degrees of freedom ``sum_f (n_f - 1)``
    (studies with fewer than 2 finite values contribute nothing); NaN with no degree of freedom."""
    ss, dof = 0.0, 0
    for values in sharpes.values():
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        if len(v) >= 2:
            ss += float(((v - v.mean()) ** 2).sum())
            dof += len(v) - 1
    return (ss / dof if dof else math.nan), dof


def pbo_cscv(performance: np.ndarray, n_blocks: int) -> dict[str, Any]:
    """Probability of backtest overfitting by CSCV on a ``T x N`` matrix of daily (excess) returns.

    Parameters
    ----------
    performance : ndarray, shape (T, N)
        Column ``j``: trial ``j``'s daily returns, rows in time order.
    n_blocks : int
        ``S`` (even): contiguous blocks; every choice of ``S / 2`` of them is one in-sample set.

    Returns
    -------
    dict
        ``pbo``, ``logits`` (one per combination), ``n_combinations``, ``n_trials``,
        ``n_sessions`` (used), ``block_sessions``; see the module docstring.
    """
    m = np.asarray(performance, dtype=float)
    if m.ndim != 2 or m.shape[1] < 2:
        raise InputDataError(f"CSCV needs a (T, N >= 2) matrix of trial returns, got shape {m.shape}")
    if n_blocks < 2 or n_blocks % 2:
        raise InputDataError("CSCV needs an even number of blocks >= 2", value=n_blocks)
    t, n = m.shape
    length = t // n_blocks
    if length < 2:
        raise InputDataError(f"CSCV with {n_blocks} blocks needs at least {2 * n_blocks} sessions, got {t}")
    if not np.isfinite(m).all():
        raise InputDataError("CSCV trial returns must be finite")
    blocks = m[t - length * n_blocks :].reshape(n_blocks, length, n)
    s1, s2 = blocks.sum(axis=1), (blocks**2).sum(axis=1)  # (S, N)
    chosen = np.array(list(combinations(range(n_blocks), n_blocks // 2)))
    indicator = np.zeros((len(chosen), n_blocks))
    indicator[np.arange(len(chosen))[:, None], chosen] = 1.0
    count = length * (n_blocks // 2)

    def sharpe(sum1: np.ndarray, sum2: np.ndarray) -> np.ndarray:
        mean = sum1 / count
        var = (sum2 - count * mean**2) / (count - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sr = mean / np.sqrt(var)
        return np.where(var > 0, sr, -np.inf)

    train = sharpe(indicator @ s1, indicator @ s2)
    test = sharpe((1.0 - indicator) @ s1, (1.0 - indicator) @ s2)
    best = np.argmax(train, axis=1)
    perf = test[np.arange(len(best)), best][:, None]
    rank = 1.0 + (test < perf).sum(axis=1) + ((test == perf).sum(axis=1) - 1) / 2.0
    omega = rank / (n + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return {
        "pbo": float(np.mean(logits <= 0.0)),
        "logits": logits,
        "n_combinations": int(len(chosen)),
        "n_trials": int(n),
        "n_sessions": int(length * n_blocks),
        "block_sessions": int(length),
    }


def research_ledger(path: str | Path | None = None) -> pd.DataFrame:
    """The research ledger (module docstring) as a frame with columns :data:`LEDGER_COLUMNS`.

    Raises
    ------
    InputDataError
        The file lacks a column, has an empty cell or a date that is not ``YYYY-MM-DD``.
    """
    frame = pd.read_csv(RESEARCH_LEDGER if path is None else path, dtype=str, keep_default_na=False)
    missing = [c for c in LEDGER_COLUMNS if c not in frame.columns]
    if missing:
        raise InputDataError(f"research ledger lacks columns {missing}", column=missing[0])
    for column in LEDGER_COLUMNS:
        empty = frame[column].str.strip() == ""
        if empty.any():
            raise InputDataError("research ledger has an empty cell", column=column, row=str(int(empty.idxmax()) + 2))
    dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        row = int(dates.isna().idxmax())
        raise InputDataError("research ledger date is not YYYY-MM-DD", column="date", row=str(row + 2))
    return frame[list(LEDGER_COLUMNS)]


def research_trials(path: str | Path | None = None) -> int:
    """How many variants the research ledger records (each one trial of the deflated Sharpe)."""
    return len(research_ledger(path))


def overfitting_statistics(
    active: np.ndarray,
    trial_returns: Mapping[str, pd.DataFrame],
    n_trials: int,
    n_blocks: int,
    research_trials_count: int | None = None,
) -> dict[str, Any]:
    """The deflated Sharpe ratio and PBO of a walk-forward run (module docstring).

    Parameters
    ----------
    active : array-like
        The deflated Sharpe's subject: the out-of-sample daily returns of the weight choice over
        the baseline (``ret_model_only - ret_baseline``).
    trial_returns : mapping
        fold -> its study's trial-returns ledger (``core/tuning/result.py``).
    n_trials : int
        Trials run across the folds' studies (complete + pruned, from the ledgers).
    n_blocks : int
        ``S`` of CSCV.
    research_trials_count : int, optional
        Variants tried in the method's research; None reads the research ledger
        (:func:`research_trials`). The deflated Sharpe's ``N`` is ``n_trials`` plus this.
    Returns
    -------
    dict
        ``{"deflated_sharpe": deflated_sharpe(...) + {"variance_dof", "variance_source" ("trials":
        pooled from the studies; "null": ``1 / T``, the floor), "trial_sharpe_variance_pooled" (the
        studies' pooled variance before the floor; None without two complete trials in a study),
        "n_study_trials", "n_research_trials"}, "pbo": {"value", "n_blocks",
        "folds": {fold: {pbo, n_trials, n_sessions, block_sessions, n_combinations, mean_logit}},
        "skipped": {fold: reason}}}``; ``pbo.value`` is None when no fold could be evaluated.
    """
    sharpes: dict[str, np.ndarray] = {}
    folds: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for fold, frame in sorted(trial_returns.items()):
        x = trial_excess(frame)
        active_x = trial_active(frame)
        sharpes[fold] = np.array([sharpe_per_session(active_x[c].to_numpy()) for c in active_x.columns])
        if x.shape[1] < 2:
            skipped[fold] = f"{x.shape[1]} complete trial(s) with inner-block returns (CSCV needs 2)"
            continue
        try:
            out = pbo_cscv(x.to_numpy(), n_blocks)
        except InputDataError as exc:
            skipped[fold] = str(exc)
            continue
        logits = out.pop("logits")
        folds[fold] = {**out, "mean_logit": float(np.mean(logits))}
    pooled, dof = pooled_sharpe_variance(sharpes)
    research = research_trials() if research_trials_count is None else int(research_trials_count)
    t = len(np.asarray(active))
    null = 1.0 / t if t else 0.0
    variance, source = pooled, "trials"
    if not (math.isfinite(variance) and variance >= null):  # never easier than N unskilled trials
        variance, source = null, "null"
    dsr = deflated_sharpe(active, int(n_trials) + research, variance)
    dsr.update(
        variance_dof=dof,
        variance_source=source,
        trial_sharpe_variance_pooled=float(pooled) if math.isfinite(pooled) else None,
        n_study_trials=int(n_trials),
        n_research_trials=research,
    )
    value = float(np.mean([f["pbo"] for f in folds.values()])) if folds else None
    return {"deflated_sharpe": dsr, "pbo": {"value": value, "n_blocks": n_blocks, "folds": folds, "skipped": skipped}}


def load_trial_returns(tuning: Mapping[str, Mapping[str, Any]]) -> dict[str, pd.DataFrame]:
    """fold -> its trial-returns ledger, read from the path each study summary records
    (``trial_returns``); folds without one (tuning off, or a study from before the ledger
    recorded returns) are left out."""
    out = {}
    for fold, summary in sorted(tuning.items()):
        path = summary.get("trial_returns")
        if path and Path(path).is_file():
            out[str(fold)] = read_parquet(path)
    return out
