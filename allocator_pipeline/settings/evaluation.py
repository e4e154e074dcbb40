"""The evaluation sections of the pipeline's settings: gates, bootstrap, backtest, report, live.

Every field states its unit and allowed range; pydantic refuses a value out of range when the
settings are loaded (see ``allocator_pipeline.settings``).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from allocator_pipeline.settings.sections import _Section


class GateSettings(_Section):
    """Acceptance gates (docs/design.md section 8)."""

    max_dd_tolerance: float = Field(
        0.02, ge=0, le=1, description="Allowed excess of allocator |max DD| over baseline (fraction)."
    )
    turnover_cap: float = Field(
        12.0, gt=0, le=1000, description="Annualised turnover cap (sum over legs, fraction per year)."
    )
    max_negative_fold_rate: float = Field(
        0.35, ge=0, le=1, description="Max share of folds with negative allocator return."
    )
    min_p25_fold_calmar: float = Field(0.0, ge=-100, le=100, description="Min 25th pct of fold Calmar.")
    min_importance_stability: float = Field(
        0.3, ge=-1, le=1, description="Min mean Spearman correlation of LightGBM gain across folds."
    )
    monotonic_features: tuple[str, ...] = Field(
        ("qqq_vol_21", "qqq_dd_63"),
        description="Risk features whose rise must not raise their leg's weight (measured when a fold model "
        "reads them, with every leg vol/downvol/dd input it reads).",
    )
    monotonic_tolerance: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Largest rise of a leg's mean weight (fraction of capital) per +1 std of one of its risk "
        "features that monotonic sanity still counts as no rise: a materiality floor, so that a response of a few "
        "basis points of capital (or a rounding residue) does not reject a model; 0: any rise fails.",
    )
    min_deflated_sharpe: float = Field(
        0.95,
        ge=0,
        le=1,
        description="Min deflated Sharpe ratio (Bailey and Lopez de Prado 2014) of the allocator's weight choice over "
        "the baseline out of sample (its weight fully invested minus the baseline, daily): the probability that its "
        "true Sharpe exceeds the best Sharpe expected from the trials run and the research ledger's variants.",
    )
    max_pbo: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Max probability of backtest overfitting (CSCV over the trials' inner-block returns): the share "
        "of splits where the in-sample best trial ranks at or below the out-of-sample median.",
    )
    pbo_blocks: int = Field(
        16,
        ge=2,
        le=20,
        description="S: even number of contiguous blocks the trials' inner-block sessions are cut into for CSCV "
        "(C(S, S/2) train/test combinations).",
    )

    @model_validator(mode="after")
    def _even_blocks(self) -> GateSettings:
        if self.pbo_blocks % 2:
            raise ValueError(f"pbo_blocks ({self.pbo_blocks}) must be even: CSCV splits the blocks in two halves")
        return self


class BootstrapSettings(_Section):
    """Stationary block bootstrap of the paired out-of-sample daily returns (allocator vs baseline)."""

    block_length: int = Field(
        63,
        ge=1,
        le=1260,
        description="Mean block length of the stationary bootstrap, in sessions (geometric block lengths).",
    )
    resamples: int = Field(2000, ge=100, le=100_000, description="Bootstrap resamples.")
    seed: int = Field(13, ge=0, le=2_147_483_647, description="Seed of the bootstrap's random generator.")
    confidence: float = Field(
        0.90,
        gt=0.5,
        lt=1,
        description="Two-sided confidence of the percentile intervals; a 'beats the baseline' gate passes when "
        "the interval's lower bound is > 0.",
    )


class ReportSettings(_Section):
    notional: float = Field(1_000_000.0, gt=0, description="Capital for currency PnL figures.")
    currency: str = Field("USD", min_length=1, max_length=8, description="Currency label.")


class LiveSettings(_Section):
    max_model_age_sessions: int = Field(
        300,
        ge=1,
        le=10_000,
        description="A daily decision refuses a model more sessions than this past its training end "
        "(the backtest retrains every year, about 252 sessions).",
    )
    age_warning_sessions: int = Field(
        21,
        ge=0,
        le=10_000,
        description="The live monitor's model-age check warns from max_model_age_sessions minus this many "
        "sessions on (21: about a month to retrain and promote before decisions are refused).",
    )
    max_stale_sessions: int = Field(
        1,
        ge=0,
        le=252,
        description="The live monitor's inputs check warns when the latest leg session is more than this many "
        "NYSE sessions behind the latest session closed by now (1: the evening's data may not be in yet).",
    )


class BacktestSettings(_Section):
    execution_lag: int = Field(
        0,
        ge=0,
        le=5,
        description="Sessions between a decision and its trade: 0 trades at the close the decision reads, "
        "1 at the next close. Applied in the walk-forward backtest, the tuner and the live decision's "
        "execution date; the report shows lag 0 and lag 1 side by side.",
    )
