"""The reference Step 3 engine: per-symbol walk-forward direction models and their legs.

Per symbol (``qqq`` and ``spy`` roles, symbols from ``settings.data``):

* **Features**: the symbol's own prices only (core/inputs/reference_features.py), causal.
* **Target** at row ``d``: the next session's adjusted-close return is > 0.
* **Folds**: one per calendar year ``Y`` from ``year(first session) + min_train_years`` (the
  partial first year counts as a year; QQQ from 1999-03-10 gives 2002). Training window: every
  row before ``Y`` whose target is known before ``Y`` starts, i.e. up to the second-to-last
  session of ``Y - 1`` (a purge of 1 session: the last session's target is the first test
  session's return). Its last ``calibration_sessions`` rows are the calibration tail; the model
  is trained on the rows before it, minus the same 1-session purge.
* **Model**: ``n_bags`` LightGBM boosters with row and column subsampling and different seeds; each
  is calibrated by isotonic regression on the calibration tail. ``prob_up`` = mean of the
  calibrated bag probabilities, ``prob_q10/q50/q90`` = their 10/50/90 % quantiles (linear
  interpolation).
* **Position** decided at the close of ``d``:
  ``position = clip(long_bias + position_slope * (prob_up - 0.5), 0, 1)``.
* **Leg return** of row ``d`` (the session ending at ``decision_ts(d)``):
  ``position(d-1) * asset_return(d) - |position(d-1) - position(d-2)| * (fee_bps + slippage_bps) / 1e4``,
  with ``asset_return`` the adjusted-close (total) return: the trade made at the close of
  ``d-1`` is charged in row ``d``, the session it is held over. The book is flat before the
  first engine row, so the first row's leg return is 0 and the entry cost falls on the second.
* **Drift** at ``d``: mean over the short-memory input features (``DRIFT_FEATURES``, see
  core/inputs/reference_features.py for why not all of them) of the PSI of the trailing ``drift_window``
  rows (``<= d``) against the fold's whole training window (quintile bins from training);
  ``drift_flag = drift_psi > drift_flag_psi``. The summary's per-fold PSI uses the whole test
  year and is diagnostic only.
* **Passive** mode (``settings.data.step3_mode == "passive"``): total-return buy-and-hold,
  ``position = 1``, ``leg_return = asset_return``, from each symbol's second session, without
  confidence or drift columns, ``step3_fold = "passive"``.

Causality: a fold's models only see rows before its test year and every feature at ``d`` only
rows ``<= d``, so changing prices after a date ``D`` leaves every output row ``<= D`` unchanged.
Determinism: single-threaded deterministic LightGBM with fixed seeds; nothing is pickled.

Running the engine over both symbols and writing the Step 3 directory: core/inputs/reference_output.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.sessions import session_dates
from allocator_pipeline.core.inputs.reference_features import (
    DRIFT_FEATURES,
    asset_returns,
    direction_target,
    price_features,
    trailing_psi,
)
from allocator_pipeline.settings import Step3EngineSettings

PURGE_SESSIONS = 1
BAGGING_FRACTION = 0.8
FEATURE_FRACTION = 0.8
MAX_BIN = 63
CALIBRATION_PRIOR_ROWS = 10.0
ENGINE_SEED = 7
PASSIVE_FOLD = "passive"

Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class YearFold:
    """Row ranges (inclusive, positions in the symbol's series) of one yearly fold."""

    name: str
    train_start: int
    train_end: int
    calibration_start: int
    calibration_end: int
    test_start: int
    test_end: int


def plan_year_folds(
    decision_ts: pd.DatetimeIndex, min_train_years: int, calibration_sessions: int, min_train_rows: int = 1
) -> list[YearFold]:
    """Yearly walk-forward folds over one symbol's sessions (see the module docstring).

    The calibration tail ends ``PURGE_SESSIONS`` before the test year; train-proper ends
    ``PURGE_SESSIONS`` before the calibration tail, because the target at row ``d`` is the return
    of row ``d + 1``.

    Raises
    ------
    ValueError
        No fold fits, or a fold has fewer than ``min_train_rows`` train-proper rows.
    """
    years = session_dates(decision_ts).year.to_numpy()
    first_year = int(years[0]) + min_train_years
    folds = []
    for year in range(first_year, int(years[-1]) + 1):
        rows = np.flatnonzero(years == year)
        if rows.size == 0:
            continue
        s, e = int(rows[0]), int(rows[-1])
        cal_end = s - 1 - PURGE_SESSIONS
        cal_start = cal_end - calibration_sessions + 1
        train_end = cal_start - 1 - PURGE_SESSIONS
        if train_end + 1 < min_train_rows:
            raise ValueError(
                f"Step 3 fold {year}: {max(train_end + 1, 0)} training rows before a calibration tail of "
                f"{calibration_sessions} sessions (need >= {min_train_rows}); raise step3.min_train_years "
                "or lower step3.calibration_sessions"
            )
        folds.append(YearFold(str(year), 0, train_end, cal_start, cal_end, s, e))
    if not folds:
        raise ValueError(
            f"no Step 3 fold: the data spans {years[0]}..{years[-1]} and step3.min_train_years = {min_train_years}"
        )
    return folds


def _lgb_params(cfg: Step3EngineSettings, seed: int) -> dict:
    return {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "bagging_fraction": BAGGING_FRACTION,
        "bagging_freq": 1,
        "feature_fraction": FEATURE_FRACTION,
        "max_bin": MAX_BIN,
        "num_threads": 1,
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "verbosity": -1,
    }


def isotonic_calibration(
    raw: np.ndarray, target: np.ndarray, prior_rows: float = CALIBRATION_PRIOR_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic map from raw scores to up-probabilities, each block shrunk toward the base rate.

    Isotonic regression (pool-adjacent-violators, sklearn) pools the calibration rows into blocks
    of increasing frequency; on a year of daily directions the end blocks are small and their
    frequencies of 0 or 1 are noise. Each block's frequency ``k / n`` becomes
    ``(k + prior_rows * base_rate) / (n + prior_rows)`` (a Beta prior worth ``prior_rows`` rows),
    then a running maximum restores monotonicity.

    Returns
    -------
    x_thresholds, probabilities : arrays
        Knots for ``np.interp`` (which clips outside the calibration range, like
        ``out_of_bounds="clip"``).
    """
    from sklearn.isotonic import IsotonicRegression  # the engine's fit only (reading legs never needs it)

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, target)
    fitted = iso.predict(raw)
    knots = iso.y_thresholds_
    rows = (fitted[None, :] == knots[:, None]).sum(axis=1)
    base_rate = float(np.mean(target))
    shrunk = (knots * rows + prior_rows * base_rate) / (rows + prior_rows)
    return iso.X_thresholds_, np.maximum.accumulate(shrunk)


def bagged_probabilities(
    x: np.ndarray, y: np.ndarray, fold: YearFold, cfg: Step3EngineSettings, seed: int = ENGINE_SEED
) -> np.ndarray:
    """Calibrated up-probabilities of each bag on the fold's test rows, shape (n_bags, n_test).

    Each bag trains on train-proper rows, then an isotonic map fitted on the calibration tail
    (:func:`isotonic_calibration`) turns its raw scores into probabilities.
    """
    import lightgbm as lgb  # the engine's fit only (reading legs never needs it)

    proper = slice(fold.train_start, fold.train_end + 1)
    cal = slice(fold.calibration_start, fold.calibration_end + 1)
    test = slice(fold.test_start, fold.test_end + 1)
    n_cal = fold.calibration_end - fold.calibration_start + 1
    scored = np.concatenate([x[cal], x[test]])
    out = np.empty((cfg.n_bags, fold.test_end - fold.test_start + 1))
    # one binned dataset for every bag (the bins depend on the training rows only, not the seed)
    data = lgb.Dataset(x[proper], label=y[proper], params={"max_bin": MAX_BIN, "verbosity": -1}, free_raw_data=False)
    for bag in range(cfg.n_bags):
        booster = lgb.train(_lgb_params(cfg, seed + bag), data, num_boost_round=cfg.num_boost_round)
        raw = np.asarray(booster.predict(scored), dtype=np.float64)
        knots, probs = isotonic_calibration(raw[:n_cal], y[cal])
        out[bag] = np.interp(raw[n_cal:], knots, probs)
    return out


def leg_returns(position: np.ndarray, asset_return: np.ndarray, cost_bps: float) -> np.ndarray:
    """Net leg return per row: ``pos[d-1] * r[d] - |pos[d-1] - pos[d-2]| * cost_bps / 1e4``.

    ``position[d]`` is decided at the close of row ``d``; the book is flat (0) before row 0.
    """
    held = np.concatenate([[0.0], position[:-1]])
    held_before = np.concatenate([[0.0], held[:-1]])
    return held * asset_return - np.abs(held - held_before) * cost_bps / 1e4


def reference_leg(
    series: pd.DataFrame, symbol: str, cfg: Step3EngineSettings, seed: int = ENGINE_SEED, progress: Progress = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One symbol's walk-forward leg (contract columns) and its fold summary rows."""
    feats = price_features(series["adj_close"], series["volume"])
    x = feats.to_numpy()
    x_drift = feats[list(DRIFT_FEATURES)].to_numpy()
    y = direction_target(series["adj_close"]).to_numpy()
    ret = asset_returns(series["adj_close"]).to_numpy()
    folds = plan_year_folds(
        series.index, cfg.min_train_years, cfg.calibration_sessions, min_train_rows=2 * cfg.min_data_in_leaf
    )
    start = folds[0].test_start
    n = len(series) - start
    bags = np.empty((cfg.n_bags, n))
    psi = np.empty(n)
    fold_name = np.empty(n, dtype=object)
    summary = []
    for fold in folds:
        at = slice(fold.test_start - start, fold.test_end - start + 1)
        bags[:, at] = bagged_probabilities(x, y, fold, cfg, seed)
        train_rows = np.arange(fold.train_start, fold.calibration_end + 1)
        psi[at], whole = trailing_psi(x_drift, train_rows, fold.test_start, fold.test_end, cfg.drift_window)
        fold_name[at] = fold.name
        ts = series.index
        summary.append(
            {
                "step3_fold": fold.name,
                "symbol": symbol,
                "train_start": ts[fold.train_start],
                "train_end": ts[fold.train_end],
                "calibration_start": ts[fold.calibration_start],
                "calibration_end": ts[fold.calibration_end],
                "test_start": ts[fold.test_start],
                "test_end": ts[fold.test_end],
                "n_train": fold.train_end - fold.train_start + 1,
                "n_calibration": fold.calibration_end - fold.calibration_start + 1,
                "n_test": fold.test_end - fold.test_start + 1,
                "drift_psi": whole,
                "drift_flag": int(whole > cfg.drift_flag_psi),
                "mean_prob_up": float(bags[:, at].mean()),
            }
        )
        if progress is not None:
            progress(
                f"Step 3 reference engine: {symbol} fold {fold.name}: "
                f"{fold.train_end - fold.train_start + 1} training rows, "
                f"{fold.calibration_end - fold.calibration_start + 1} calibration rows, "
                f"{fold.test_end - fold.test_start + 1} test sessions, mean PSI {whole:.3f}"
            )
    prob_up = bags.mean(axis=0)
    q10, q50, q90 = np.quantile(bags, [0.1, 0.5, 0.9], axis=0)
    position = np.clip(cfg.long_bias + cfg.position_slope * (prob_up - 0.5), 0.0, 1.0)
    leg = pd.DataFrame(
        {
            "decision_ts": series.index[start:],
            "symbol": symbol,
            "leg_return": leg_returns(position, ret[start:], cfg.fee_bps + cfg.slippage_bps),
            "position": position,
            "prob_up": prob_up,
            "prob_q10": q10,
            "prob_q50": q50,
            "prob_q90": q90,
            "step3_fold": pd.array(fold_name, dtype="str"),
            "drift_psi": psi,
            "drift_flag": (psi > cfg.drift_flag_psi).astype("int64"),
            "asset_return": ret[start:],
        }
    )
    return leg, pd.DataFrame(summary)


def passive_leg(series: pd.DataFrame, symbol: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Total-return buy-and-hold leg from the symbol's second session, and its summary row."""
    ret = asset_returns(series["adj_close"]).to_numpy()[1:]
    ts = series.index[1:]
    leg = pd.DataFrame(
        {
            "decision_ts": ts,
            "symbol": symbol,
            "leg_return": ret,
            "position": 1.0,
            "step3_fold": PASSIVE_FOLD,
            "asset_return": ret,
        }
    )
    no_training = pd.DatetimeIndex([pd.NaT], tz="UTC")
    summary = pd.DataFrame(
        {
            "step3_fold": [PASSIVE_FOLD],
            "symbol": [symbol],
            "train_start": no_training,
            "train_end": no_training,
            "test_start": ts[:1],
            "test_end": ts[-1:],
            "n_train": [0],
            "n_test": [len(ts)],
            "drift_psi": [np.nan],
            "drift_flag": [0],
        }
    )
    return leg, summary
