"""The risk features: inputs whose sign the seed implies ("monotonic sanity of key risk features").

A leg's volatility, downside volatility or drawdown (all positive, higher = riskier) must not raise
that leg's weight. The in-fold feature screen (``core/models/training.py``) drops a risk feature
whose training correlation has the wrong sign for its leg, and the ``monotonic_sanity`` gate
(``core/evaluation/monotonic.py``) measures the fold models' response to the ones they read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["RISK_FEATURE", "leg_of", "leg_sign", "risk_features"]

RISK_FEATURE = re.compile(r"^(qqq|spy)_(vol|downvol|dd)_(\d+|now)$")
"""Features whose sign the seed implies: a leg's volatility, downside volatility or drawdown (all
positive, higher = riskier). Higher values must not raise that leg's weight."""


def risk_features(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that :data:`RISK_FEATURE` matches, in their order.

    >>> risk_features(["qqq_vol_63", "prob_up_mean_21", "spy_dd_now"])
    ['qqq_vol_63', 'spy_dd_now']
    """
    return [n for n in names if RISK_FEATURE.match(n)]


def leg_of(feature: str) -> str:
    """The leg a feature name starts with (``qqq``, ``spy``, or the name's first word).

    >>> leg_of("spy_downvol_21")
    'spy'
    """
    return feature.split("_", 1)[0]


def leg_sign(feature: str) -> float:
    """+1 for a QQQ feature (its leg's weight is ``w_qqq``), -1 for an SPY one (``1 - w_qqq``).

    A feature's rise must not raise ``leg_sign(feature) * w_qqq``.

    >>> leg_sign("qqq_vol_21"), leg_sign("spy_dd_63")
    (1.0, -1.0)
    """
    return -1.0 if feature.startswith("spy_") else 1.0
