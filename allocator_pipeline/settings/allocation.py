"""Settings of the allocation stage: the output policy and the risk envelope."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from allocator_pipeline.settings.sections import _Section


class PolicySettings(_Section):
    alpha: float = Field(
        0.9,
        ge=0,
        lt=1,
        description="Smoothing: w_t = a*w_{t-1} + (1-a)*w_raw (0.9: about a 20-session average, the label "
        "horizon). Defaults of alpha, sizing_gain and no_trade_band: the grid point of highest median model-only "
        "share of the rule's gain whose turnover stays under the gate's cap on every resampled fixture "
        "(docs/research.md, sizing).",
    )
    max_daily_change: float = Field(
        0.2, gt=0, le=1, description="Cap on |w_t - w_{t-1}| per session (QQQ share, fraction)."
    )
    sizing: Literal["expected_weight", "argmax"] = Field(
        "expected_weight",
        description="w_raw: 'expected_weight' = clip(b + sizing_gain * (sum_k p_k B_k - sum_k pi_k B_k), 0, 1), the "
        "baseline tilted by how far the model's expected best weight lies from the class prior's (a model "
        "that learnt nothing holds the baseline); 'argmax' = the bucket of highest expected utility net of "
        "the turnover charge (the seed's rule). docs/method.md, sizing.",
    )
    sizing_gain: float = Field(
        4.0,
        ge=0,
        le=10,
        description="kappa of the 'expected_weight' sizing: tilt per unit shift of the expected best weight "
        "(fraction of capital per fraction).",
    )
    no_trade_band: float = Field(
        0.02,
        ge=0,
        le=0.5,
        description="Dead band on the smoothed daily step (QQQ share, fraction): a step within it is not traded, "
        "a larger one stops at its edge (docs/method.md, sizing).",
    )
    hold_out_of_range: bool = Field(
        True,
        description="On a session where an input of the deciding model lies outside the range it took on the "
        "model's train and validation rows, w_raw is the baseline weight (the model does not extrapolate).",
    )
    turnover_penalty: float = Field(
        5.0,
        ge=0,
        le=50,
        description="lambda ('argmax' sizing only): each bucket's expected utility is charged lambda * cost(2 |B_j - w_held|), w_held "
        "the previous policy weight drifted through the session's leg returns (the weight held), priced by "
        "the backtest's cost model; 0 = off. lambda 5 (with the argmax's former alpha 0.7) from the planted-signal fixtures "
        "(docs/research.md, power of the verdict): lambda 10 without smoothing froze the weight for whole years.",
    )


class EnvelopeSettings(_Section):
    """Risk envelope, applied in order: drawdown guard, volatility scaling, drift throttle (all on)."""

    dd_guard: bool = Field(True, description="Enable the drawdown guard rails on the allocator's own equity.")
    dd_soft: float = Field(
        0.10, gt=0, lt=1, description="Own drawdown (fraction) beyond which the tilt is cut and leverage is off."
    )
    dd_hard: float = Field(
        0.20, gt=0, lt=1, description="Own drawdown beyond which the tilt is removed and exposure is cut."
    )
    dd_soft_tilt_cut: float = Field(
        0.5, ge=0, le=1, description="Share of the tilt w - baseline removed beyond dd_soft (all of it beyond dd_hard)."
    )
    dd_soft_exposure: float = Field(1.0, ge=0, le=3, description="Max gross exposure beyond dd_soft.")
    dd_hard_exposure: float = Field(0.50, ge=0, le=3, description="Max gross exposure beyond dd_hard.")
    dd_reset_sessions: int = Field(
        126,
        ge=1,
        le=2520,
        description="Re-risk rule: after this many consecutive sessions beyond dd_soft the guard takes the loss, "
        "its peak resets to the current equity and exposure returns.",
    )
    vol_scaling: bool = Field(True, description="Enable volatility scaling of gross exposure.")
    vol_target: float | None = Field(
        None,
        gt=0,
        le=2,
        description="Annualised volatility target (fraction); None: the realised volatility of the baseline "
        "portfolio over the trailing vol_target_window sessions (causal, re-estimated every session).",
    )
    vol_target_scale: float = Field(
        0.8,
        gt=0,
        le=3,
        description="Multiplier of the estimated target (vol_target None): below 1 the envelope runs below the "
        "legs' long-run volatility. 0.8 from resampled legs (scripts/envelope_tradeoff.py, docs/method.md).",
    )
    vol_target_window: int = Field(
        1260, ge=252, le=5040, description="Trailing sessions of the volatility target's estimate (vol_target None)."
    )
    vol_window: int = Field(21, ge=5, le=252, description="Trailing sessions for realised volatility.")
    max_exposure: float = Field(
        1.5,
        ge=0.1,
        le=3,
        description="Cap on gross exposure; above 1 the extra is borrowed at the T-bill rate plus "
        "costs.financing_spread_bps. 1: no borrowing.",
    )
    exposure_band: float = Field(
        0.1,
        ge=0,
        le=1,
        description="No-trade band on gross exposure: the exposure decided moves only when the stages' target "
        "leaves [previous - band, previous + band] (0: every session), so volatility noise does not trade.",
    )
    drift_throttle: bool = Field(True, description="Enable the drift safety throttle.")
    drift_psi_threshold: float = Field(0.5, gt=0, le=5, description="Mean leg PSI that triggers it.")
    drift_shrink: float = Field(
        0.5, ge=0, le=1, description="Fraction of the way from w toward the baseline when throttled."
    )

    @model_validator(mode="after")
    def _ordered(self) -> EnvelopeSettings:
        if self.dd_hard <= self.dd_soft:
            raise ValueError(f"dd_hard ({self.dd_hard}) must be greater than dd_soft ({self.dd_soft})")
        for name in ("dd_soft_exposure", "dd_hard_exposure"):
            if getattr(self, name) > self.max_exposure:
                raise ValueError(f"{name} ({getattr(self, name)}) must not exceed max_exposure ({self.max_exposure})")
        return self

    @property
    def history_sessions(self) -> int:
        """Leg-return sessions before a path's first row that its volatility stages read."""
        windows = [self.vol_window]
        if self.vol_scaling and self.vol_target is None:
            windows.append(self.vol_target_window)
        return max(windows) - 1
