"""The daily feature table of the allocator (one row per session, strictly causal).

Row ``d`` of the feature table uses rows ``<= d`` of the leg panel only: the leg returns realised
over sessions ending at or before ``decision_ts(d)``, the Step 3 confidence and causal drift
columns as of ``decision_ts(d)``, and the market context (adjusted closes, VIX, T-bill yield)
known at that close. Every feature is a trailing-window statistic computed from its own window
(``core/features/windows.py``), so values never depend on later rows, nor on where the panel
starts beyond the window.

Blocks (``settings.FEATURE_BLOCKS``; each can be switched off in ``FeatureSettings.blocks``):

============ ===================================================================================
returns      compounded leg returns over 1/5/21/63 sessions and the QQQ - SPY spread
volatility   realised and downside volatility over 5/21/63 sessions (annualised), QQQ - SPY spread
drawdown     max drawdown over 63/252 sessions, drawdown from the 252-session peak, sessions since
             that peak, rebound from the 21-session trough
hit_rate     share of positive sessions and payoff ratio over 21/63 sessions
confidence   Step 3 ``prob_up``, ``q10/q50/q90``, ``q90 - q10``, 5-session change of ``prob_up``,
             ``position``
drift        Step 3 causal ``drift_psi`` / ``drift_flag`` and their trailing 21-session means
regime       trend vs MA(``long_ma_sessions``), 21-session MA slope, QQQ-SPY correlation over 21/63,
             relative-strength trend, log volatility ratio
vix          VIX level, 5/21-session change, 252-session z-score, staleness
tbill        T-bill yield, its 21-session change, 63-session excess return of each leg over cash
============ ===================================================================================

``feature_dictionary`` gives each feature's block, formula, window (sessions of input read) and
units. All features are float64; NaN appears only in each feature's warm-up (its first
``window - 1`` rows, plus any leading NaN of its input columns).

VIX rule (one rule, enforced): a session without a VIX value takes the last real value for at
most ``FeatureSettings.vix_max_stale_sessions`` sessions, and ``vix_stale_sessions`` counts the
sessions since the last real value. A longer gap after VIX's first value would leave the VIX
features NaN after warm-up, so ``build_features`` refuses it with an ``InputDataError`` naming the
session: **the vix block must be off for data beyond VIX's end** (or the leg panel must end within
the limit). ``available_blocks(panel)`` applies the same rule, so the embedded data (VIX ends
2025-09-02, prices 2025-09-26) runs with the vix block off by default, and data with a current
VIX series keeps it. This keeps the contract "NaN only during warm-up" for every consumer.

Examples
--------
The passive legs of the embedded data (no confidence columns, so no confidence block):

>>> import tempfile
>>> from allocator_pipeline.core.inputs import build_leg_panel, load_prices, market_panel, run_reference_engine
>>> from allocator_pipeline.settings import FeatureSettings, load_settings
>>> market = market_panel(load_prices(None, 1e-4), "QQQ", "SPY")
>>> passive = load_settings(environ={}, overrides={"data": {"step3_mode": "passive"}})
>>> panel = build_leg_panel(run_reference_engine(market, passive, tempfile.mkdtemp()), market)
>>> settings = FeatureSettings(blocks=available_blocks(panel))
>>> settings.blocks
('returns', 'volatility', 'drawdown', 'hit_rate', 'regime', 'tbill')
>>> build_features(panel, settings).shape  # sessions x features
(6679, 57)
>>> print(feature_dictionary(settings, panel.columns)[["name", "block", "window"]].head(3).to_string())
         name    block  window
0   qqq_ret_1  returns       1
1   qqq_ret_5  returns       5
2  qqq_ret_21  returns      21
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.features.blocks import FeatureSpec, PanelInputs
from allocator_pipeline.core.features.context_blocks import BLOCKS
from allocator_pipeline.core.features.inputs import available_blocks, block_columns, check_block_columns, check_index
from allocator_pipeline.settings import FEATURE_BLOCKS, FeatureSettings

__all__ = ["FeatureSpec", "available_blocks", "block_columns", "build_features", "feature_dictionary", "feature_specs"]

DICTIONARY_COLUMNS = ["name", "block", "formula", "window", "units"]


def _enabled(settings: FeatureSettings) -> list[str]:
    """Enabled blocks in the canonical ``FEATURE_BLOCKS`` order (column order is deterministic)."""
    return [b for b in FEATURE_BLOCKS if b in settings.blocks]


def feature_specs(settings: FeatureSettings) -> list[FeatureSpec]:
    """Specs of every feature of the enabled blocks, in column order."""
    return [spec for block in _enabled(settings) for spec, _ in BLOCKS[block](settings)]


def build_features(panel: pd.DataFrame, settings: FeatureSettings) -> pd.DataFrame:
    """Daily feature table from the leg panel.

    Parameters
    ----------
    panel : pandas.DataFrame
        The leg panel (docs/ARCHITECTURE.md): index ``decision_ts`` (tz-aware UTC, strictly
        increasing sessions); ``{qqq,spy}_leg_return`` (simple daily return, fraction, over the
        session ending at the row's decision_ts), ``{qqq,spy}_position``, and the inputs of the
        enabled blocks (see ``features_inputs.BLOCK_INPUTS``).
    settings : FeatureSettings
        Enabled blocks, VIX staleness limit (sessions), long moving-average length (sessions).

    Returns
    -------
    pandas.DataFrame
        Index ``decision_ts`` (the panel's), float64 columns in block order (names and units in
        :func:`feature_dictionary`). Row ``d`` uses panel rows ``<= d`` only. NaN only during each
        feature's warm-up.

    Raises
    ------
    InputDataError
        An empty panel, an enabled block's input column is absent (the message says to switch the block off),
        a bad index, a non-finite return or position, a NaN after a column's first value, or VIX
        stale beyond ``vix_max_stale_sessions`` while the vix block is on.
    """
    index = check_index(panel)
    if len(index) == 0:
        raise InputDataError("the leg panel has no rows", column="decision_ts")
    blocks = _enabled(settings)
    check_block_columns(blocks, panel.columns)
    inputs = PanelInputs(panel, settings)
    for block in blocks:  # validate every input column up front, including the strict leg returns
        for column in block_columns(block):
            if column == "vix":
                inputs.vix()
            else:
                inputs.col(column, block)
    columns: dict[str, np.ndarray] = {}
    for block in blocks:
        for spec, compute in BLOCKS[block](settings):
            values = np.asarray(compute(inputs), dtype=np.float64)
            if values.shape != (len(index),):
                raise AssertionError(f"feature {spec.name} has shape {values.shape}, expected ({len(index)},)")
            columns[spec.name] = values
    return pd.DataFrame(columns, index=index.rename("decision_ts"), dtype=np.float64)


def feature_dictionary(settings: FeatureSettings, panel_columns: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per feature of the enabled blocks: ``name, block, formula, window, units``.

    ``window`` is the number of sessions of input a feature reads (rows ``d - window + 1 .. d``).
    When ``panel_columns`` is given, an enabled block whose inputs are absent raises the same
    ``InputDataError`` as :func:`build_features`.
    """
    if panel_columns is not None:
        check_block_columns(_enabled(settings), list(panel_columns))
    specs = feature_specs(settings)
    frame = pd.DataFrame([[s.name, s.block, s.formula, s.window, s.units] for s in specs], columns=DICTIONARY_COLUMNS)
    return frame.astype({"window": "int64"})
