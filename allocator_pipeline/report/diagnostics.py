"""Model diagnostics of the walk-forward report: calibration, feature importance, tuning.

All inputs are sections of ``metrics.json`` (see ``report/page.py``); outputs are pandas frames
of raw numbers for the charts and tables of the page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.report.tables import as_float

CALIBRATION_SCORES: tuple[str, ...] = ("log_loss", "brier", "ece", "accuracy", "top2_accuracy")


def _floats(values: Any, n: int) -> np.ndarray:
    """A JSON list (None for undefined) -> float array of length ``n`` (NaN where undefined)."""
    seq = list(values) if values is not None else []
    out = np.full(n, np.nan)
    for i, v in enumerate(seq[:n]):
        x = as_float(v)
        if x is not None:
            out[i] = x
    return out


def pooled_reliability(calibration: Mapping[str, Any], stage: str) -> pd.DataFrame:
    """Reliability curve pooled over folds for ``stage`` in {'before', 'after'} calibration.

    Bins are matched by their mid-point (rounded to 6 decimals). Pooled confidence and accuracy
    are count-weighted means of the folds' bins; ``count`` is the total number of test rows.

    Returns
    -------
    DataFrame
        Columns ``bin_mid``, ``confidence``, ``accuracy`` (fractions, NaN for an empty bin),
        ``count`` (rows), sorted by ``bin_mid``. Empty when no fold has the stage.
    """
    parts = []
    for fold in sorted(calibration, key=str):
        curve = ((calibration[fold] or {}).get("reliability") or {}).get(stage) or {}
        mids = curve.get("bin_mid") or []
        n = len(mids)
        if n == 0:
            continue
        part = pd.DataFrame(
            {
                "bin_mid": np.round(_floats(mids, n), 6),
                "confidence": _floats(curve.get("confidence"), n),
                "accuracy": _floats(curve.get("accuracy"), n),
                "count": np.nan_to_num(_floats(curve.get("count"), n), nan=0.0),
            }
        )
        parts.append(part.dropna(subset=["bin_mid"]))
    if not parts:
        return pd.DataFrame(columns=["bin_mid", "confidence", "accuracy", "count"], dtype="float64")
    pooled = pd.concat(parts, ignore_index=True)
    valid = pooled["count"] > 0
    pooled["w_conf"] = np.where(valid & pooled["confidence"].notna(), pooled["confidence"] * pooled["count"], 0.0)
    pooled["w_acc"] = np.where(valid & pooled["accuracy"].notna(), pooled["accuracy"] * pooled["count"], 0.0)
    pooled["n_conf"] = np.where(valid & pooled["confidence"].notna(), pooled["count"], 0.0)
    pooled["n_acc"] = np.where(valid & pooled["accuracy"].notna(), pooled["count"], 0.0)
    g = pooled.groupby("bin_mid", sort=True)[["w_conf", "w_acc", "n_conf", "n_acc", "count"]].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame(
            {
                "bin_mid": g.index.to_numpy(dtype=float),
                "confidence": np.where(g["n_conf"] > 0, g["w_conf"] / g["n_conf"], np.nan),
                "accuracy": np.where(g["n_acc"] > 0, g["w_acc"] / g["n_acc"], np.nan),
                "count": g["count"].to_numpy(dtype=float),
            }
        )
    return out.reset_index(drop=True)


def pooled_ece(curve: pd.DataFrame) -> float | None:
    """Expected calibration error of a pooled curve: sum(count * |accuracy - confidence|) / sum(count)."""
    ok = curve["confidence"].notna() & curve["accuracy"].notna() & (curve["count"] > 0)
    total = float(curve.loc[ok, "count"].sum())
    if total <= 0:
        return None
    gap = (curve.loc[ok, "accuracy"] - curve.loc[ok, "confidence"]).abs()
    return float((gap * curve.loc[ok, "count"]).sum() / total)


def calibration_table(calibration: Mapping[str, Any]) -> pd.DataFrame:
    """Per fold: the chosen calibrator and each score before/after calibration.

    Returns
    -------
    DataFrame
        Index ``fold``; column ``chosen`` (str) and ``<score>_before`` / ``<score>_after`` for
        log_loss, brier, ece, accuracy, top2_accuracy (floats, NaN where absent).
    """
    rows = []
    for fold in sorted(calibration, key=str):
        entry = calibration[fold] or {}
        row: dict[str, Any] = {"fold": str(fold), "chosen": str(entry.get("chosen") or "")}
        for score in CALIBRATION_SCORES:
            for stage in ("before", "after"):
                x = as_float((entry.get(stage) or {}).get(score))
                row[f"{score}_{stage}"] = np.nan if x is None else x
        rows.append(row)
    columns = ["fold", "chosen"] + [f"{s}_{t}" for s in CALIBRATION_SCORES for t in ("before", "after")]
    return pd.DataFrame(rows, columns=columns).set_index("fold")


def importance_matrix(importance: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Normalised gain, features x folds (a feature absent from a fold has gain 0).

    Rows are sorted by mean gain across folds (descending, then by name), columns by fold.
    """
    folds = sorted(importance, key=str)
    features = sorted({str(f) for fold in folds for f in (importance[fold] or {})})
    data = np.zeros((len(features), len(folds)))
    pos = {f: i for i, f in enumerate(features)}
    for j, fold in enumerate(folds):
        for feature, gain in (importance[fold] or {}).items():
            x = as_float(gain)
            data[pos[str(feature)], j] = 0.0 if x is None else x
    frame = pd.DataFrame(data, index=pd.Index(features, name="feature"), columns=[str(f) for f in folds])
    if frame.empty:
        return frame
    order = sorted(features, key=lambda f: (-frame.loc[f].mean(), f))
    return frame.loc[order]


def mean_pairwise_spearman(matrix: pd.DataFrame) -> float | None:
    """Mean Spearman rank correlation of the gain vectors over all pairs of folds.

    Ranks use average ties; a constant fold vector gives an undefined pair, skipped. None when
    fewer than two folds or no defined pair.
    """
    if matrix.shape[1] < 2 or matrix.shape[0] < 2:
        return None
    ranks = matrix.rank(axis=0, method="average").to_numpy()
    ranks = ranks - ranks.mean(axis=0, keepdims=True)
    norms = np.sqrt((ranks**2).sum(axis=0))
    values = []
    n = ranks.shape[1]
    for i in range(n):
        for j in range(i + 1, n):
            if norms[i] > 0 and norms[j] > 0:
                values.append(float(ranks[:, i] @ ranks[:, j] / (norms[i] * norms[j])))
    return float(np.mean(values)) if values else None


TUNING_COLUMNS = ("n_trials", "traded", "best_value", "duration_s")
"""The columns of :func:`tuning_table` before the parameters."""


def tuning_table(tuning: Mapping[str, Any]) -> pd.DataFrame:
    """Per fold: trials, the trial traded, its objective, duration and its parameters (one column each).

    Returns
    -------
    DataFrame
        Index ``fold``; columns :data:`TUNING_COLUMNS` (``traded``: ``defaults`` or ``trial N``,
        the trial ``tuning.selection`` chose; None for a summary stored without a selection) then
        the parameter names sorted (object dtype: numbers, strings or booleans as stored).
    """
    rows = []
    params: set[str] = set()
    for fold in sorted(tuning, key=str):
        entry = tuning[fold] or {}
        best = entry.get("best_params") or {}
        params.update(str(k) for k in best)
        rows.append(
            {
                "fold": str(fold),
                "n_trials": entry.get("n_trials"),
                "traded": _traded(entry.get("selection") or {}),
                "best_value": entry.get("best_value"),
                "duration_s": entry.get("duration_s"),
                **{str(k): v for k, v in best.items()},
            }
        )
    columns = ["fold", *TUNING_COLUMNS, *sorted(params)]
    return pd.DataFrame(rows, columns=columns).set_index("fold").astype(object)


def _traded(selection: Mapping[str, Any]) -> str | None:
    chosen = selection.get("chosen_trial")
    if chosen is None:
        return None
    return "defaults" if selection.get("chosen_role") == "defaults" else f"trial {chosen}"


def parameter_stability(table: pd.DataFrame) -> pd.DataFrame:
    """Stability of each tuned parameter across folds.

    Numeric parameters: ``mean``, ``std`` (population, ddof=0), ``cv`` = std / |mean| (NaN
    when the mean is 0), ``min``, ``max``, ``range`` = max - min. Other parameters (strings,
    booleans): ``distinct`` values and the ``mode`` with its share of folds.

    Returns
    -------
    DataFrame
        Index ``parameter``; columns ``kind`` ('numeric' / 'categorical'), ``folds``, ``mean``,
        ``std``, ``cv``, ``min``, ``max``, ``range``, ``distinct``, ``mode``, ``mode_share``.
    """
    rows = []
    for name in [c for c in table.columns if c not in TUNING_COLUMNS]:
        raw = [v for v in table[name].tolist() if v is not None and not (isinstance(v, float) and np.isnan(v))]
        numeric = [as_float(v) for v in raw]
        row: dict[str, Any] = {"parameter": name, "folds": len(raw)}
        if raw and all(x is not None for x in numeric):
            x = np.asarray(numeric, dtype=float)
            mean, std = float(x.mean()), float(x.std(ddof=0))
            row.update(
                kind="numeric",
                mean=mean,
                std=std,
                cv=std / abs(mean) if mean != 0 else np.nan,
                min=float(x.min()),
                max=float(x.max()),
                range=float(x.max() - x.min()),
                distinct=len(set(x.tolist())),
            )
        else:
            counts = Counter(str(v) for v in raw)
            mode, hits = min(counts.items(), key=lambda kv: (-kv[1], kv[0])) if counts else ("", 0)
            share = hits / len(raw) if raw else np.nan
            row.update(kind="categorical", distinct=len(counts), mode=mode, mode_share=share)
        rows.append(row)
    columns = [
        "parameter",
        "kind",
        "folds",
        "mean",
        "std",
        "cv",
        "min",
        "max",
        "range",
        "distinct",
        "mode",
        "mode_share",
    ]
    return pd.DataFrame(rows, columns=columns).set_index("parameter")
