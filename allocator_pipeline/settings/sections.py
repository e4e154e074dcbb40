"""The sections of the pipeline's settings model (see ``allocator_pipeline.settings``).

Every field states its unit and allowed range; pydantic refuses a value out of range when the
settings are loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Profile = Literal["quick", "default", "full"]
TuningGroup = Literal["lightgbm", "linear", "catboost", "labels", "ensemble", "policy", "envelope"]
"""A group of the tuner's search space (``core/tuning/space.py``)."""
FEATURE_BLOCKS = ("returns", "volatility", "drawdown", "hit_rate", "confidence", "drift", "regime", "vix", "tbill")


class SettingsError(ValueError):
    """A settings value was refused; the message names the field, the value and the range."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DataSettings(_Section):
    """Where the inputs come from."""

    prices_dir: Path | None = Field(
        None,
        description="Directory of user price files <SYMBOL>.csv merged over the embedded data "
        "(env ALLOCATOR_PRICES). None: embedded data only.",
    )
    step3_dir: Path | None = Field(
        None,
        description="Directory with user Step 3 outputs (backtest/<SYMBOL>.parquet, ...) "
        "(env ALLOCATOR_STEP3). None: the reference Step 3 engine writes <home>/step3_out.",
    )
    step3_mode: Literal["reference", "passive"] = Field(
        "reference",
        description="Reference Step 3 engine used when step3_dir is None: 'reference' (walk-forward "
        "LightGBM legs with confidence columns) or 'passive' (buy-and-hold total-return legs).",
    )
    qqq_symbol: str = Field("QQQ", min_length=1, description="Symbol of the growth leg (w).")
    spy_symbol: str = Field("SPY", min_length=1, description="Symbol of the core leg (1 - w).")
    merge_return_tolerance: float = Field(
        1e-4,
        gt=0,
        le=0.01,
        description="Max absolute difference of daily returns (fraction) allowed between a user "
        "price file and the embedded data on overlapping dates.",
    )
    max_abs_leg_return: float = Field(
        0.25,
        gt=0,
        le=10,
        description="Plausibility bound: a Step 3 row with |leg_return| above it (fraction; 0.25 = 25% in one "
        "session) is refused. No SPY or QQQ session since 1993 moved 20%, and a leg's position is in [-1, 1].",
    )
    alignment_margin: float = Field(
        0.3,
        gt=0,
        le=2,
        description="A Step 3 leg is refused as shifted when its leg_return correlates with the position-weighted "
        "market return of the previous or next session (lag -1/+1) by more than this above the same session's (lag 0).",
    )
    alignment_min_corr: float = Field(
        0.5,
        ge=0,
        le=1,
        description="... and that lag's correlation is at least this (a lag must explain the leg clearly, so legs "
        "unrelated to their symbol's returns are never refused by chance).",
    )
    alignment_window_sessions: int = Field(
        126,
        ge=21,
        le=2520,
        description="The alignment check runs on the whole overlap with the market and on each calendar year "
        "holding at least this many of the leg's sessions (a shift in part of the history is found too).",
    )


class Step3EngineSettings(_Section):
    """The reference Step 3 engine (per-symbol walk-forward LightGBM direction model)."""

    min_train_years: int = Field(3, ge=1, le=15, description="Years of history before its first fold.")
    n_bags: int = Field(5, ge=5, le=50, description="Bagged seeds giving the uncertainty quantiles.")
    num_boost_round: int = Field(60, ge=10, le=2000, description="Boosting rounds per bag.")
    learning_rate: float = Field(0.05, gt=0, le=1.0, description="LightGBM learning rate.")
    num_leaves: int = Field(7, ge=2, le=255, description="LightGBM leaves per tree.")
    min_data_in_leaf: int = Field(100, ge=5, le=5000, description="LightGBM min rows per leaf.")
    calibration_sessions: int = Field(
        252, ge=63, le=1260, description="Validation tail (sessions) for isotonic calibration."
    )
    long_bias: float = Field(0.8, ge=0, le=1, description="Position when prob_up = 0.5.")
    position_slope: float = Field(
        2.0, ge=0, le=20, description="Position change per unit of (prob_up - 0.5); clipped to [0, 1]."
    )
    fee_bps: float = Field(1.0, ge=0, le=100, description="Leg's own fee, bps of traded notional.")
    slippage_bps: float = Field(1.0, ge=0, le=100, description="Leg's own slippage, bps.")
    drift_window: int = Field(63, ge=10, le=504, description="Trailing sessions for causal PSI drift.")
    drift_flag_psi: float = Field(0.5, gt=0, le=5, description="PSI above which drift_flag = 1.")


class LabelSettings(_Section):
    """Utility labels (docs/design.md section 5)."""

    horizon: int = Field(20, ge=1, le=126, description="H: label horizon in sessions.")
    lambda_dd: float = Field(
        0.25,
        ge=0,
        le=50,
        description="Penalty per unit of future drawdown. 0.25: an allocator fed pure noise then sits on "
        "the baseline weight on average (measured on synthetic fixtures; 1.0 tilts it to SPY).",
    )
    lambda_tc: float = Field(
        0.0,
        ge=0,
        le=50,
        description="Penalty per unit of turnover cost between consecutive hindsight labels. 0: "
        "penalty-free labels and utility matrix M (turnover is charged in the policy against the weight "
        "held, policy.turnover_penalty).",
    )
    baseline_weight: float = Field(0.5, ge=0, le=1, description="Step 3 baseline static w_qqq; first day's w_prev.")
    class_rule: Literal["nearest", "bucket_argmax"] = Field(
        "bucket_argmax",
        description="Label class: 'bucket_argmax', the bucket with the highest utility among the 11 "
        "(symmetric, the utilities M averages), or 'nearest', the bucket nearest to the 21-grid best "
        "weight (every odd grid weight goes to the lower bucket: a tilt to SPY).",
    )


class CostSettings(_Section):
    """One cost model for labels, tuning and backtest.

    cost(traded) = traded * (fee_bps + slippage_bps) / 1e4 + impact_bps * traded**2 / 1e4,
    with ``traded`` the sum over legs of |target - drifted| weight (fraction of capital).
    """

    fee_bps: float = Field(1.0, ge=0, le=100, description="Fee, bps of traded notional.")
    slippage_bps: float = Field(2.0, ge=0, le=100, description="Slippage, bps of traded notional.")
    impact_bps: float = Field(5.0, ge=0, le=1000, description="Quadratic turnover impact: impact_bps * traded^2 / 1e4.")
    financing_spread_bps: float = Field(
        50.0,
        ge=0,
        le=2000,
        description="Annual spread over the T-bill rate paid on gross exposure above 1 (bps a year; the borrowed "
        "part also pays the T-bill rate itself through the cash leg).",
    )


class FeatureSettings(_Section):
    """Feature blocks of the daily feature table; each can be switched off."""

    blocks: tuple[str, ...] = Field(
        tuple(b for b in FEATURE_BLOCKS if b != "vix"),
        description=f"Enabled feature blocks, a subset of {FEATURE_BLOCKS}. 'vix' is off by default: "
        "the embedded VIX series ends 2025-09-02, before the prices; switch it on with VIX data "
        "that reaches the last session. 'confidence' and 'drift' need a Step 3 source with those "
        "columns (switch them off for passive legs).",
    )
    vix_max_stale_sessions: int = Field(
        5,
        ge=0,
        le=63,
        description="VIX is forward-filled for at most this many sessions (a staleness feature "
        "counts them); past that the VIX features are NaN and the block must be off.",
    )
    long_ma_sessions: int = Field(200, ge=20, le=504, description="Long moving average for trend.")
    prob_mean_windows: tuple[int, ...] = Field(
        (5, 10, 21),
        description="Adds {leg}_prob_up_mean_<k>, the trailing mean of Step 3 prob_up over k sessions, for each k, "
        "to the confidence block: a Step 3 view about the next one, two or four weeks is informative averaged "
        "over about as many days (docs/research.md, generator family); () = none.",
    )

    @model_validator(mode="after")
    def _known_blocks(self) -> FeatureSettings:
        unknown = sorted(set(self.blocks) - set(FEATURE_BLOCKS))
        if unknown:
            raise ValueError(f"unknown feature blocks {unknown}; allowed: {list(FEATURE_BLOCKS)}")
        bad = [k for k in self.prob_mean_windows if not 2 <= k <= 252]
        if bad or len(set(self.prob_mean_windows)) != len(self.prob_mean_windows):
            raise ValueError(
                f"prob_mean_windows must be distinct sessions in 2..252, got {list(self.prob_mean_windows)}"
            )
        return self


class FoldSettings(_Section):
    """Walk-forward folds (docs/design.md section 3). Test windows are calendar years."""

    min_train_years: int = Field(
        3,
        ge=1,
        le=20,
        description="Years of usable train-proper data (before the validation tail) before the first test year.",
    )
    first_test_year: int | None = Field(
        None, ge=1995, le=2100, description="Force the first test year (None: earliest allowed)."
    )
    window: Literal["expanding", "rolling"] = Field("expanding", description="Training window type.")
    rolling_years: int = Field(8, ge=2, le=30, description="Training years when window = rolling.")
    validation_sessions: int = Field(
        252, ge=63, le=756, description="Validation tail of the training window, in sessions."
    )
    purge_sessions: int | None = Field(
        None, ge=1, le=252, description="Purge between train/validation/test (None: H). Must be >= H."
    )
    embargo_sessions: int = Field(
        10,
        ge=0,
        le=252,
        description="Sessions dropped from later training after a held-out block, on top of the purge "
        "(>= H) that keeps the training label windows clear of the block's.",
    )
    n_inner_folds: int = Field(3, ge=1, le=10, description="Inner splits for tuning.")
    inner_scheme: Literal["walk_forward", "purged_kfold"] = Field(
        "walk_forward",
        description="Inner splits: 'walk_forward' trains only on sessions before each held-out "
        "block; 'purged_kfold' also trains on sessions after it, minus the purge and the embargo.",
    )
    inner_test_sessions: int = Field(
        252, ge=63, le=756, description="Length of each inner held-out block, in sessions."
    )
    required_oos_years: tuple[int, ...] = Field(
        (2008, 2020, 2022), description="Years the out-of-sample span must include (checked)."
    )


class LightGBMSettings(_Section):
    num_leaves: int = Field(15, ge=2, le=255, description="Max leaves per tree.")
    max_depth: int = Field(4, ge=1, le=16, description="Max tree depth.")
    min_data_in_leaf: int = Field(80, ge=5, le=5000, description="Min rows per leaf.")
    lambda_l2: float = Field(5.0, ge=0, le=1000, description="L2 regularisation.")
    learning_rate: float = Field(0.05, gt=0, le=1, description="Shrinkage.")
    feature_fraction: float = Field(0.8, gt=0, le=1, description="Column subsample per tree.")
    num_boost_round: int = Field(200, ge=5, le=5000, description="Max boosting rounds.")
    early_stopping_rounds: int = Field(20, ge=1, le=500, description="Stop after rounds without gain.")


class LinearSettings(_Section):
    C: float = Field(0.05, gt=0, le=1e4, description="Inverse regularisation strength.")
    l1_ratio: float = Field(0.5, ge=0, le=1, description="Elastic-net mix (0 = L2, 1 = L1).")
    max_iter: int = Field(300, ge=50, le=20000, description="Solver iterations (saga).")


class CatBoostSettings(_Section):
    depth: int = Field(4, ge=1, le=10, description="Tree depth.")
    l2_leaf_reg: float = Field(5.0, gt=0, le=1000, description="L2 regularisation.")
    iterations: int = Field(150, ge=10, le=5000, description="Max boosting iterations.")
    learning_rate: float = Field(0.08, gt=0, le=1, description="Shrinkage.")
    early_stopping_rounds: int = Field(20, ge=1, le=500, description="Stop after rounds without gain.")


class ModelSettings(_Section):
    members: tuple[Literal["lightgbm", "linear", "catboost"], ...] = Field(
        ("lightgbm", "linear", "catboost"), min_length=1, description="Ensemble members."
    )
    seed: int = Field(7, ge=0, le=2**31 - 1, description="Random seed of every model.")
    threads: int = Field(1, ge=1, le=64, description="Threads per model fit.")
    sample_weight: Literal["none", "side_balanced", "utility_gap", "side_balanced_gap"] = Field(
        "side_balanced_gap",
        description="Training-row weights (mean 1): 'utility_gap' weights a row by |U(1.0) - U(0.0)| (what "
        "the choice was worth); 'side_balanced' gives the SPY-side classes (k < 5) and the QQQ-side classes "
        "(k > 5) equal total weight (removes the training period's unconditional tilt); "
        "'side_balanced_gap' both; 'none' equal weights.",
    )
    feature_screen: Literal["none", "block_stability"] = Field(
        "block_stability",
        description="In-fold feature screen on the train rows: 'block_stability' keeps the features whose "
        "Spearman correlation with the utility gap U(1.0) - U(0.0) keeps its sign across screen_blocks "
        "contiguous blocks (|mean| / (sd / sqrt(blocks)) >= screen_min_t), and drops a leg's "
        "volatility, downside-volatility or drawdown feature (and a gates.monotonic_features one) whose "
        "correlation has the forbidden sign (its rise raising its own leg's weight).",
    )
    screen_blocks: int = Field(6, ge=3, le=20, description="Contiguous train blocks of the feature screen.")
    screen_min_t: float = Field(3.0, ge=0, le=20, description="Min block t-statistic to keep a feature.")
    screen_min_features: int = Field(3, ge=1, le=1000, description="Features kept at least (best t first).")
    lightgbm: LightGBMSettings = LightGBMSettings()
    linear: LinearSettings = LinearSettings()
    catboost: CatBoostSettings = CatBoostSettings()


class EnsembleSettings(_Section):
    calibration: Literal["auto", "none", "temperature", "isotonic"] = Field(
        "auto", description="Calibrator; 'auto' picks the best validation log loss of the three."
    )
    blend_temperature: float = Field(
        0.3,
        gt=0,
        le=10,
        description="Blend weights are softmax(-validation_log_loss / blend_temperature): a member worse by 0.3 "
        "nats per validation row gets 1/e of the weight. 0.3, not 0.02 (best member only): on the resampled "
        "planted-signal family the members' validation log losses differ by noise, and the near-winner-take-all "
        "blend traded a weaker signal than the linear member alone (docs/research.md, the blend temperature).",
    )
    ece_bins: int = Field(10, ge=2, le=50, description="Bins of the expected calibration error.")


class TuningSettings(_Section):
    enabled: bool = Field(
        True,
        description="Run the nested Optuna study per fold and trade the trial tuning.selection picks. On in the "
        "default and full profiles, off in quick (the tests' profile).",
    )
    selection: Literal["beats_defaults", "highest"] = Field(
        "beats_defaults",
        description="Which trial trades: 'beats_defaults' the defaults unless the highest objective beats them on "
        "the inner blocks' daily returns as the allocator must beat the baseline (the bootstrap section's paired "
        "intervals of the Calmar and average monthly PnL differences above 0; core/tuning/selection.py); "
        "'highest' the highest objective.",
    )
    n_trials: int = Field(12, ge=1, le=5000, description="Trials per fold.")
    model_trials: int | None = Field(
        None,
        ge=1,
        le=5000,
        description="When the search space holds parameters whose change refits the members on every inner split "
        "(models, labels, costs): the first model_trials trials of a fold to finish (complete or pruned, the defaults "
        "trial included) search every parameter; every later one keeps those parameters of the best complete one of "
        "them and the sampler proposes the others given them, so it reuses that trial's fits instead of refitting. "
        "None: every trial searches every parameter. 12 in the full profile (of its 60 trials).",
    )
    timeout_seconds: float = Field(90.0, gt=0, le=86400, description="Wall-clock budget per fold.")
    seed: int = Field(11, ge=0, le=2**31 - 1, description="TPE sampler seed.")
    pruning: bool = Field(True, description="Median pruning on inner folds.")
    groups: tuple[TuningGroup, ...] | None = Field(
        None,
        min_length=1,
        description="Search groups (lightgbm, linear, catboost, labels, ensemble, policy, envelope); None: the "
        "profile's (quick and default, when tuning is switched on: ensemble, policy; full: every group).",
    )
    storage: str | None = Field(
        None,
        description="Optuna storage URL (RDB URL or 'journal:<path>'); None: an Optuna journal file per "
        "fold under step3_out/allocator/optuna/ (<fold>.journal).",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes on each fold's study; > 1 needs a shared storage (RDB URL or "
        "journal). 1: reproducible for a seed; > 1: parallel, not reproducible.",
    )
    fit_reuse: bool = Field(
        True,
        description="Reuse inner-split member fits across folds and runs: a fit whose inputs (the split's rows "
        "and values, the models settings and seed, the utility rows, the fitting code and library versions) "
        "match a stored one is read from step3_out/allocator/optuna/fit_cache/ (<key>.npz, member probabilities "
        "only) instead of fitted again; the results are bit for bit the same. False: every study fits its own.",
    )
    w_calmar: float = Field(1.0, ge=0, le=100, description="Weight of median inner-fold Calmar.")
    w_monthly_pnl: float = Field(
        50.0, ge=0, le=10000, description="Weight of average monthly PnL (fraction of capital)."
    )
    w_dd_penalty: float = Field(5.0, ge=0, le=1000, description="Penalty per unit of drawdown over cap.")
    dd_cap: float = Field(0.25, gt=0, lt=1, description="Drawdown cap for the penalty (fraction).")
    w_turnover_penalty: float = Field(0.05, ge=0, le=100, description="Penalty per unit of turnover over cap.")
    turnover_cap: float = Field(12.0, gt=0, le=1000, description="Annualised turnover cap for the penalty.")
    w_tail_penalty: float = Field(
        0.5, ge=0, le=100, description="Penalty per unit of (median - min) inner-fold Calmar spread."
    )

    @model_validator(mode="after")
    def _parallel_needs_shared_storage(self) -> TuningSettings:
        if self.workers > 1 and self.storage is None:
            raise ValueError(
                f"tuning.workers = {self.workers} needs a shared tuning.storage (an RDB URL such as "
                "postgresql://... or 'journal:<path>'); the default per-fold journal file takes one worker"
            )
        return self
