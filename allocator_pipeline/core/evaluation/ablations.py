"""Ablations of the allocator: what its risk envelope alone and its model alone would have done.

Both run on the allocator's own out-of-sample sessions and are backtested like every strategy
(same costs, same initial book, same execution lag):

* ``envelope_only``: the Step 3 baseline weight (``labels.baseline_weight``, constant) through the
  allocator's risk envelope (drawdown guard, volatility scaling, drift throttle), each fold with
  the settings it was tuned with;
* ``model_only``: the allocator's own ``w_smoothed`` (the policy's weight before the envelope),
  fully invested, with no drift throttle: the envelope with all three stages off;
* ``confidence_rule`` (when the legs carry ``prob_up``): the simplest use of the user's own Step 3
  confidence, with no model, through the same envelope: the transparent rule of
  ``retention.py`` with fixed parameters, ``x_d = (logit(qqq_prob_up_d) - logit(spy_prob_up_d)) / 2``
  over its expanding standard deviation, ``w_d = clip(b + 0.5 * mean(x_{d-19..d}), 0, 1)`` (a
  trailing ``retention.RULE_WINDOW`` = 20 sessions, ``b`` the baseline weight 0.5 by default),
  then the envelope with each fold's settings. Not fitted on anything.

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
from allocator_pipeline.core.evaluation.retention import RULE_WINDOW, transparent_rule
from allocator_pipeline.settings import Settings

ABLATIONS: tuple[str, ...] = ("envelope_only", "model_only", "confidence_rule")


def ablation_settings(kind: str, settings: Settings) -> Settings:
    """A fold's settings for an ablation: unchanged for ``envelope_only`` and ``confidence_rule``;
    the envelope's drawdown guard, volatility scaling and drift throttle off for ``model_only``
    (``w_final = w_smoothed``, exposure 1)."""
    if kind in ("envelope_only", "confidence_rule"):
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
            weights.iloc[a:b].to_numpy(dtype=float),
            context.loc[index],
            s.envelope,
            s.labels.baseline_weight,
            env0,
            s.backtest.execution_lag,
        )
        state = state_after(part, s.backtest.execution_lag, env0)
        parts.append(part)
    return pd.concat(parts)


def _baseline_weights(path: pd.DataFrame, settings_of: Mapping[str, Settings]) -> pd.Series:
    """Each session's baseline weight (its fold's ``labels.baseline_weight``) on the path's sessions."""
    bw = [settings_of[str(f)].labels.baseline_weight for f in path["fold"].astype(str)]
    return pd.Series(bw, index=path.index, dtype=float)


def envelope_decisions(
    weights: pd.Series, path: pd.DataFrame, settings_of: Mapping[str, Settings], context: pd.DataFrame
) -> pd.DataFrame:
    """``weights`` through :func:`envelope_path` on the sessions of ``path`` (its ``fold``
    column): the decision frame (``w``, ``exposure``) to backtest."""
    env = envelope_path(weights, path["fold"], settings_of, context)
    return pd.DataFrame({"w": env["w_final"], "exposure": env["exposure"]}, index=path.index)


def ablation_decisions(
    path: pd.DataFrame, settings_of: Mapping[str, Settings], context: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Decision frames (``w``, ``exposure``, by ``decision_ts``) of every ablation on the sessions of
    the continuous allocator ``path`` (its ``fold`` and ``w_smoothed`` columns); ``confidence_rule``
    only when ``context`` has the legs' ``prob_up``."""
    out = {}
    for kind in ABLATIONS:
        settings = {fold: ablation_settings(kind, s) for fold, s in settings_of.items()}
        if kind == "envelope_only":
            weights = _baseline_weights(path, settings)
        elif kind == "confidence_rule":
            if not {"qqq_prob_up", "spy_prob_up"} <= set(context.columns):
                continue
            tilt = transparent_rule(context, RULE_WINDOW)["w"].loc[path.index] - 0.5
            weights = (_baseline_weights(path, settings) + tilt).clip(0.0, 1.0)
        else:
            weights = path["w_smoothed"].astype(float)
        out[kind] = envelope_decisions(weights, path, settings, context)
    return out


#: Envelope variants of the trade-off table (name -> EnvelopeSettings overrides of each fold's own).
ENVELOPE_VARIANTS: dict[str, dict[str, object]] = {
    "no envelope": {"dd_guard": False, "vol_scaling": False, "drift_throttle": False},
    "volatility scaling, no borrowing": {"dd_guard": False, "max_exposure": 1.0, "dd_soft_exposure": 1.0},
    "volatility scaling, up to 1.5": {"dd_guard": False, "max_exposure": 1.5, "dd_soft_exposure": 1.0},
    "drawdown guard only": {"vol_scaling": False},
    "stricter guard (5% / 10%)": {"dd_soft": 0.05, "dd_hard": 0.10},
    "looser guard (15% / 30%)": {"dd_soft": 0.15, "dd_hard": 0.30},
    "the run's settings": {},
}


def envelope_variant_decisions(
    path: pd.DataFrame, settings_of: Mapping[str, Settings], context: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Decision frames of the baseline weight through each of :data:`ENVELOPE_VARIANTS` on the
    allocator path's sessions (the "envelope only" ablation under a stricter or looser envelope):
    what a different envelope would cost or save, for the report's trade-off table."""
    out = {}
    for name, update in ENVELOPE_VARIANTS.items():
        settings = {}
        for fold, s in settings_of.items():
            env = s.envelope.model_validate({**s.envelope.model_dump(), **update})
            settings[fold] = s.model_copy(update={"envelope": env})
        out[name] = envelope_decisions(_baseline_weights(path, settings), path, settings, context)
    return out
