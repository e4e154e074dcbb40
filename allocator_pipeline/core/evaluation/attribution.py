"""Return attribution of the allocator against the Step 3 baseline, per day, per fold and overall.

On each ``oos_daily`` row (a decision; its returns are earned over the next session) the
allocator holds the executed QQQ share ``w = w_executed`` at gross exposure ``e =
exposure_executed`` (the rest in cash), the baseline holds ``b = w_baseline`` fully invested.
With ``P(x) = x * r_qqq + (1 - x) * r_spy`` the leg portfolio at QQQ share ``x`` (``r_*`` the
row's ``qqq_leg_return``, ``spy_leg_return``, ``cash_return``) and ``c_A``, ``c_B`` the two
strategies' costs (``cost``, ``cost_baseline``)::

    ret_allocator = e * P(w) + (1 - e) * r_cash - c_A
    ret_baseline  = P(b) - c_B

    allocation  = (w - b) * (r_qqq - r_spy)          the allocator's weight against the baseline's,
                                                     at full exposure: P(w) - P(b)
    exposure    = (1 - e) * (r_cash - P(b))          cash instead of the baseline's invested book
    interaction = (e - 1) * (w - b) * (r_qqq - r_spy) the weight change on the share held in cash
    cost        = c_B - c_A                          costs saved (negative: the allocator pays more)

    allocation + exposure + interaction + cost = ret_allocator - ret_baseline   (exactly, per day)

Aggregation: a fold's (or the whole span's) term is the **sum of its daily contributions**, so the
terms add up to the sum of the daily return differences (an arithmetic figure, in fractions of
capital; not the difference of compounded returns or CAGRs); ``annualised`` is that sum times
``252 / n`` over the ``n`` sessions (still additive).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR

ATTRIBUTION_TERMS = ("allocation", "exposure", "interaction", "cost")
ATTRIBUTION_INPUTS = (
    "w_executed",
    "exposure_executed",
    "w_baseline",
    "qqq_leg_return",
    "spy_leg_return",
    "cash_return",
    "cost",
    "cost_baseline",
    "ret_allocator",
    "ret_baseline",
)


def daily_attribution(oos_daily: pd.DataFrame) -> pd.DataFrame:
    """The daily terms (module docstring) of every ``oos_daily`` row.

    Returns
    -------
    DataFrame
        Index of ``oos_daily``; columns :data:`ATTRIBUTION_TERMS` and ``difference``
        (``ret_allocator - ret_baseline``), fractions of capital.

    Examples
    --------
    >>> import pandas as pd
    >>> row = pd.DataFrame({"w_executed": [0.8], "exposure_executed": [0.6], "w_baseline": [0.5],
    ...     "qqq_leg_return": [0.02], "spy_leg_return": [0.01], "cash_return": [0.0001],
    ...     "cost": [0.0003], "cost_baseline": [0.0], "ret_allocator": [0.6 * 0.018 + 0.4 * 0.0001 - 0.0003],
    ...     "ret_baseline": [0.015]})
    >>> terms = daily_attribution(row).iloc[0]
    >>> [round(float(terms[k]), 6) for k in ("allocation", "exposure", "interaction", "cost")]
    [0.003, -0.00596, -0.0012, -0.0003]
    >>> bool(abs(terms[["allocation", "exposure", "interaction", "cost"]].sum() - terms["difference"]) < 1e-15)
    True
    """
    missing = [c for c in ATTRIBUTION_INPUTS if c not in oos_daily.columns]
    if missing:
        raise InputDataError("oos_daily lacks a column the attribution needs", column=missing[0])
    col = {c: oos_daily[c].to_numpy(dtype=float) for c in ATTRIBUTION_INPUTS}
    w, e, b = col["w_executed"], col["exposure_executed"], col["w_baseline"]
    spread = col["qqq_leg_return"] - col["spy_leg_return"]
    invested_b = b * col["qqq_leg_return"] + (1.0 - b) * col["spy_leg_return"]
    return pd.DataFrame(
        {
            "allocation": (w - b) * spread,
            "exposure": (1.0 - e) * (col["cash_return"] - invested_b),
            "interaction": (e - 1.0) * (w - b) * spread,
            "cost": col["cost_baseline"] - col["cost"],
            "difference": col["ret_allocator"] - col["ret_baseline"],
        },
        index=oos_daily.index,
    )


def _summary(terms: pd.DataFrame) -> dict[str, Any]:
    n = len(terms)
    sums = {k: float(terms[k].sum()) for k in (*ATTRIBUTION_TERMS, "difference")}
    residual = sums["difference"] - sum(sums[k] for k in ATTRIBUTION_TERMS)
    return {
        **sums,
        "residual": residual,
        "n_sessions": n,
        "annualised": {k: v * SESSIONS_PER_YEAR / n for k, v in sums.items()} if n else {},
    }


def attribution_summary(oos_daily: pd.DataFrame) -> dict[str, Any]:
    """Sums of the daily terms overall and per fold (module docstring).

    Returns
    -------
    dict
        ``{"terms", "identity", "aggregation", "overall": {term: sum, "difference", "residual",
        "n_sessions", "annualised": {...}}, "folds": {fold: same}}``; ``residual`` is the
        difference minus the terms' sum (floating-point rounding only).
    """
    daily = daily_attribution(oos_daily)
    folds = {
        str(fold): _summary(daily.loc[np.asarray(oos_daily["fold"].astype(str) == str(fold))])
        for fold in pd.unique(oos_daily["fold"].astype(str).to_numpy())
    }
    return {
        "terms": list(ATTRIBUTION_TERMS),
        "identity": "allocation + exposure + interaction + cost = ret_allocator - ret_baseline (per day)",
        "aggregation": "sum of daily contributions (fractions of capital); annualised = sum * 252 / n",
        "overall": _summary(daily),
        "folds": folds,
    }
