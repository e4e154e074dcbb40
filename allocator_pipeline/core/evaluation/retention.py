"""How much of a planted signal each stage of the allocator keeps, and the transparent rule.

On a Step 3 directory made by ``allocator synth-step3`` (``core/inputs/synthetic.py``) the answer
is known: the confidence columns carry a signal ``s`` correlated ``IC`` with the next ``H``
sessions' leg spread. Retention of a stage = the Pearson correlation of its weight (``w_raw``,
``w_smoothed``, ``w_final``) with that future spread over the out-of-sample sessions, beside the
planted signal's own correlation and that of its trailing ``H``-session mean.

The transparent rule: ``x_d = (logit(qqq_prob_up_d) - logit(spy_prob_up_d)) / 2`` divided by its
expanding standard deviation (rows ``<= d``), ``w_d = clip(0.5 + 0.5 * mean(x_{d-W+1..d}), 0, 1)``,
fully invested: a plain, causal use of the same columns, the yardstick of the gain available.
The planted rule (:func:`planted_rule`) is the one issue 22 measured the allocator against: a
fixed window ``W`` = :data:`RULE_WINDOW` = 20 sessions whatever the planted horizon, the window
of the confidence rule too (``ablations.py``): a user does not know the horizon their engine's
confidence speaks about. The rule at the planted horizon traded 28 a year at 10 sessions and 54
at 5 on the resampled family, the 20-session rule about 14; every one of them is over the
turnover gate's cap of 12, which binds the allocator and not the yardstick (docs/research.md).
On a fixture planted on one leg only it reads that leg's column alone; on the sign-flip variant,
``x`` times the regime's sign (the rule that knows the condition).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError

STAGES = ("w_raw", "w_smoothed", "w_final")
#: The one-line rule's trailing window (sessions), fixed: issue 22's planted rule and the confidence rule.
RULE_WINDOW = 20


def _corr(a: pd.Series, b: pd.Series) -> float:
    both = a.notna() & b.notna()
    if both.sum() < 3 or a[both].std() == 0 or b[both].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[both], b[both])[0, 1])


def signal_retention(path: pd.DataFrame, signal: pd.DataFrame, horizon: int) -> dict[str, Any]:
    """Correlations with the future spread over the path's sessions that have one.

    Parameters
    ----------
    path : DataFrame
        The allocator path (``w_raw``, ``w_smoothed``, ``w_final``) indexed by ``decision_ts``.
    signal : DataFrame
        ``signal`` (planted) and ``spread`` (next ``H`` sessions' QQQ-leg minus SPY-leg return) by
        ``decision_ts`` (``signal.parquet`` of a synth-step3 directory).
    horizon : int
        ``H`` (the trailing mean of the signal uses ``H`` sessions).

    Returns
    -------
    dict
        ``sessions`` compared, ``signal``, ``signal_trailing_mean`` and one entry per stage.
    """
    missing = [c for c in ("signal", "spread") if c not in signal.columns]
    if missing:
        raise InputDataError("the planted signal lacks a column", file="signal.parquet", column=missing[0])
    trailing = signal["signal"].rolling(horizon, min_periods=horizon).mean()
    rows = path.index.intersection(signal.index[signal["spread"].notna()])
    spread = signal.loc[rows, "spread"]
    out: dict[str, Any] = {
        "sessions": len(rows),
        "signal": _corr(signal.loc[rows, "signal"], spread),
        "signal_trailing_mean": _corr(trailing.loc[rows], spread),
    }
    for stage in STAGES:
        out[stage] = _corr(path.loc[rows, stage], spread)
    return out


def transparent_rule(
    leg_panel: pd.DataFrame, horizon: int, sign: pd.Series | None = None, informative: str = "both"
) -> pd.DataFrame:
    """The transparent rule's decisions (``w``, ``exposure`` = 1) on every leg-panel session (causal).

    ``sign``: a causal per-session sign (+1/-1, known at the close, e.g. the planted volatility
    regime's loading) multiplying ``x`` before the trailing mean: the rule that knows a condition
    on which the signal's sign depends (None: the plain rule; a session without a sign counts 0).
    ``informative``: ``"both"`` reads both legs' ``prob_up``; ``"qqq"`` uses ``x = logit(qqq_prob_up)``
    alone and ``"spy"`` ``x = -logit(spy_prob_up)`` alone (the rule on the informative column).

    >>> idx = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    >>> p = np.linspace(0.3, 0.7, 30)
    >>> panel = pd.DataFrame({"qqq_prob_up": p, "spy_prob_up": 1 - p}, index=idx)
    >>> rule = transparent_rule(panel, horizon=5)
    >>> bool(rule["w"].iloc[-1] > 0.5 > rule["w"].iloc[5]), float(rule["exposure"].max())
    (True, 1.0)
    """
    for column in ("qqq_prob_up", "spy_prob_up"):
        if column not in leg_panel.columns:
            raise InputDataError("the transparent rule needs the legs' prob_up", column=column)
    q = leg_panel["qqq_prob_up"].clip(1e-6, 1 - 1e-6)
    s = leg_panel["spy_prob_up"].clip(1e-6, 1 - 1e-6)
    logit_q, logit_s = np.log(q / (1 - q)), np.log(s / (1 - s))
    x = {"qqq": logit_q, "spy": -logit_s}.get(informative, (logit_q - logit_s) / 2.0)
    if sign is not None:
        x = x * sign.reindex(x.index).fillna(0.0)
    scale = x.expanding(min_periods=2).std().replace(0.0, np.nan)
    mean = (x / scale).rolling(horizon, min_periods=1).mean()
    w = (0.5 + 0.5 * mean).clip(0.0, 1.0).fillna(0.5)
    return pd.DataFrame({"w": w.to_numpy(), "exposure": 1.0}, index=leg_panel.index)


def planted_rule(leg_panel: pd.DataFrame, planted: tuple[dict[str, Any], pd.DataFrame]) -> pd.DataFrame:
    """The planted rule of a ``synth-step3`` directory (``planted`` = its ``synthetic.json`` content
    and signal frame, ``core/inputs/synthetic.py: read_planted``): :func:`transparent_rule` with the
    fixed window :data:`RULE_WINDOW` on the informative column(s), and on the ``flip``
    variant knowing the condition (the signal's ``loading`` sign). Decisions on every leg-panel
    session (``w``, ``exposure`` = 1).
    """
    meta, signal = planted
    sign = None
    if meta.get("condition") == "flip":
        if "loading" not in signal.columns:
            raise InputDataError("a sign-flip planted signal must carry its loading", column="loading")
        sign = signal["loading"]
    return transparent_rule(leg_panel, RULE_WINDOW, sign, str(meta.get("informative", "both")))
