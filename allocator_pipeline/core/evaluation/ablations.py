"""Ablations of the allocator: what its risk envelope alone and its model alone would have done.

Both run on the allocator's own out-of-sample sessions and are backtested like every strategy
(same costs, same initial book, same execution lag):

* ``envelope_only``: the Step 3 baseline weight (``labels.baseline_weight``, constant) through the
  allocator's risk envelope (drawdown guard, volatility scaling, drift throttle), each fold with
  the settings it was tuned with;
* ``model_only``: the allocator's own ``w_smoothed`` (the policy's weight before the envelope),
  fully invested, with no drift throttle: the envelope with all three stages off.

One code path: :func:`envelope_path` applies :func:`~allocator_pipeline.core.allocation.envelope.apply_envelope`
fold by fold on ONE continuous path, the state carried across folds by the allocator's own rules
(:func:`~allocator_pipeline.core.allocation.path.start_state`, ``state_after``: fresh only at the
first session, the envelope's equity, peak and held book continuing into the next fold, the
volatility window re-read from the leg panel). Fed the allocator's ``w_smoothed`` and tuned
settings, it reproduces the allocator's ``w_final`` and ``exposure`` exactly (a test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.envelope import apply_envelope
from allocator_pipeline.core.allocation.path import AllocatorState, start_state, state_after
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.settings import Settings

ABLATIONS: tuple[str, ...] = ("envelope_only", "model_only")


def ablation_settings(kind: str, settings: Settings) -> Settings:
    """A fold's settings for an ablation: unchanged for ``envelope_only``; the envelope's drawdown
    guard, volatility scaling and drift throttle off for ``model_only`` (``w_final = w_smoothed``,
    exposure 1)."""
    if kind == "envelope_only":
        return settings
    if kind == "model_only":
        off = settings.envelope.model_copy(update={"dd_guard": False, "vol_scaling": False, "drift_throttle": False})
        return settings.model_copy(update={"envelope": off})
    raise ValueError(f"unknown ablation {kind!r}; allowed: {list(ABLATIONS)}")


def envelope_path(
    weights: pd.Series, folds: pd.Series, settings_of: Mapping[str, Settings], context: pd.DataFrame
) -> pd.DataFrame:
    """The envelope applied to ``weights`` (as ``w_smoothed``) on one continuous path over the folds.

    Parameters
    ----------
    weights : Series
        QQQ share in [0, 1] per ``decision_ts`` (consecutive leg-panel sessions, sorted).
    folds : Series
        The fold deciding each session (same index); each fold's rows are one adjacent block.
    settings_of : mapping
        fold -> the settings it decides with (envelope, baseline weight).
    context : DataFrame
        The leg panel (returns, cash, drift columns), covering the sessions and the history
        the volatility window needs.

    Returns
    -------
    DataFrame
        The :func:`apply_envelope` rows of every session (``w_final``, ``exposure``, ...).
    """
    if not weights.index.equals(folds.index):
        raise InputDataError("weights and folds must share their decision_ts index", column="decision_ts")
    state: AllocatorState | None = None
    parts = []
    keys = folds.astype(str).to_numpy()
    change = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    bounds = list(zip(change, [*change[1:], len(keys)]))
    if len({keys[a] for a, _ in bounds}) != len(bounds):
        raise InputDataError("each fold's sessions must be one adjacent block", column="fold")
    for a, b in bounds:
        fold = keys[a]
        if fold not in settings_of:
            raise InputDataError(f"no settings for fold {fold}", column="fold", value=fold)
        s = settings_of[fold]
        index = weights.index[a:b]
        _, env0 = start_state(context, index[0], s, state, f"fold {fold}")
        part = apply_envelope(
            weights.iloc[a:b].to_numpy(dtype=float), context.loc[index], s.envelope, s.labels.baseline_weight, env0
        )
        state = state_after(part)
        parts.append(part)
    return pd.concat(parts)


def ablation_decisions(
    path: pd.DataFrame, settings_of: Mapping[str, Settings], context: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Decision frames (``w``, ``exposure``, by ``decision_ts``) of every ablation on the sessions of
    the continuous allocator ``path`` (its ``fold`` and ``w_smoothed`` columns)."""
    out = {}
    for kind in ABLATIONS:
        settings = {fold: ablation_settings(kind, s) for fold, s in settings_of.items()}
        if kind == "envelope_only":
            bw = [settings[str(f)].labels.baseline_weight for f in path["fold"].astype(str)]
            weights = pd.Series(bw, index=path.index, dtype=float)
        else:
            weights = path["w_smoothed"].astype(float)
        env = envelope_path(weights, path["fold"], settings, context)
        out[kind] = pd.DataFrame({"w": env["w_final"], "exposure": env["exposure"]}, index=path.index)
    return out
