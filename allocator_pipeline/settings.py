"""One settings model for the whole pipeline.

Every field states its unit and allowed range; a value out of range is refused when the settings
are loaded, with a message naming the field (dotted path), the value and the allowed range.

Precedence, lowest first: field defaults < profile (quick/default/full) < TOML file
(``allocator.toml`` in the home directory, or ``--config``) < environment variables
(``ALLOCATOR_HOME``, ``ALLOCATOR_PRICES``, ``ALLOCATOR_STEP3``, ``ALLOCATOR_PROFILE``) <
explicit arguments (command-line options, Dagster resource config).

Conventions used throughout the project:

* costs are in basis points of traded notional (1 bp = 1e-4);
* horizons, windows, purges and embargoes are counted in exchange sessions;
* weights are fractions of capital in [0, 1]; ``w`` is always the QQQ leg's share;
* annualisation uses 252 sessions a year.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Profile = Literal["quick", "default", "full"]
FEATURE_BLOCKS = (
    "returns",
    "volatility",
    "drawdown",
    "hit_rate",
    "confidence",
    "drift",
    "regime",
    "vix",
    "tbill",
)


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
    """Utility labels (DESIGN.md section 5)."""

    horizon: int = Field(20, ge=1, le=126, description="H: label horizon in sessions.")
    lambda_dd: float = Field(1.0, ge=0, le=50, description="Penalty per unit of future drawdown.")
    lambda_tc: float = Field(1.0, ge=0, le=50, description="Penalty per unit of turnover cost.")
    baseline_weight: float = Field(
        0.5, ge=0, le=1, description="Step 3 baseline static w_qqq; first day's w_prev."
    )


class CostSettings(_Section):
    """One cost model for labels, tuning and backtest.

    cost(traded) = traded * (fee_bps + slippage_bps) / 1e4 + impact_bps * traded**2 / 1e4,
    with ``traded`` the sum over legs of |target - drifted| weight (fraction of capital).
    """

    fee_bps: float = Field(1.0, ge=0, le=100, description="Fee, bps of traded notional.")
    slippage_bps: float = Field(2.0, ge=0, le=100, description="Slippage, bps of traded notional.")
    impact_bps: float = Field(
        5.0, ge=0, le=1000, description="Quadratic turnover impact: impact_bps * traded^2 / 1e4."
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

    @model_validator(mode="after")
    def _known_blocks(self) -> "FeatureSettings":
        unknown = sorted(set(self.blocks) - set(FEATURE_BLOCKS))
        if unknown:
            raise ValueError(f"unknown feature blocks {unknown}; allowed: {list(FEATURE_BLOCKS)}")
        return self


class FoldSettings(_Section):
    """Walk-forward folds (DESIGN.md section 3). Test windows are calendar years."""

    min_train_years: int = Field(
        3, ge=1, le=20, description="Years of usable train-proper data (before the validation tail) before the first test year."
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
        10, ge=0, le=252, description="Sessions after a held-out block dropped from later training."
    )
    n_inner_folds: int = Field(3, ge=1, le=10, description="Inner splits for tuning.")
    inner_scheme: Literal["walk_forward", "purged_kfold"] = Field(
        "walk_forward",
        description="Inner splits: 'walk_forward' trains only on sessions before each held-out "
        "block; 'purged_kfold' also trains on sessions after it, minus the embargo.",
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
    lightgbm: LightGBMSettings = LightGBMSettings()
    linear: LinearSettings = LinearSettings()
    catboost: CatBoostSettings = CatBoostSettings()


class EnsembleSettings(_Section):
    calibration: Literal["auto", "none", "temperature", "isotonic"] = Field(
        "auto", description="Calibrator; 'auto' picks the best validation log loss of the three."
    )
    blend_temperature: float = Field(
        0.02,
        gt=0,
        le=10,
        description="Blend weights are softmax(-validation_log_loss / blend_temperature).",
    )
    ece_bins: int = Field(10, ge=2, le=50, description="Bins of the expected calibration error.")


class PolicySettings(_Section):
    alpha: float = Field(0.5, ge=0, lt=1, description="Smoothing: w_t = a*w_{t-1} + (1-a)*w_raw.")
    max_daily_change: float = Field(0.10, gt=0, le=1, description="Cap on |w_t - w_{t-1}| per session.")


class EnvelopeSettings(_Section):
    """Risk envelope, applied in order: drawdown guard, volatility scaling, drift throttle."""

    dd_guard: bool = Field(True, description="Enable drawdown guard rails.")
    dd_soft: float = Field(0.10, gt=0, lt=1, description="Own drawdown (fraction) where exposure is cut.")
    dd_hard: float = Field(0.20, gt=0, lt=1, description="Own drawdown where exposure is cut further.")
    dd_soft_exposure: float = Field(0.75, ge=0, le=1, description="Max exposure beyond dd_soft.")
    dd_hard_exposure: float = Field(0.50, ge=0, le=1, description="Max exposure beyond dd_hard.")
    vol_scaling: bool = Field(True, description="Enable volatility scaling of gross exposure.")
    vol_target: float = Field(0.22, gt=0, le=2, description="Annualised volatility target (fraction).")
    vol_window: int = Field(21, ge=5, le=252, description="Trailing sessions for realised volatility.")
    drift_throttle: bool = Field(True, description="Enable the drift safety throttle.")
    drift_psi_threshold: float = Field(0.5, gt=0, le=5, description="Mean leg PSI that triggers it.")
    drift_shrink: float = Field(
        0.5, ge=0, le=1, description="Fraction of the way from w toward the baseline when throttled."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "EnvelopeSettings":
        if self.dd_hard <= self.dd_soft:
            raise ValueError(f"dd_hard ({self.dd_hard}) must be greater than dd_soft ({self.dd_soft})")
        return self


class TuningSettings(_Section):
    enabled: bool = Field(True, description="Run the nested Optuna study per fold.")
    n_trials: int = Field(12, ge=1, le=5000, description="Trials per fold.")
    timeout_seconds: float = Field(90.0, gt=0, le=86400, description="Wall-clock budget per fold.")
    seed: int = Field(11, ge=0, le=2**31 - 1, description="TPE sampler seed.")
    pruning: bool = Field(True, description="Median pruning on inner folds.")
    storage: str | None = Field(
        None,
        description="Optuna storage URL (RDB URL or 'journal:<path>'); None: a SQLite file per fold "
        "under step3_out/allocator/optuna/.",
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


class GateSettings(_Section):
    """Acceptance gates (DESIGN.md section 8)."""

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
        description="Key risk features whose rise must not raise the mean predicted w_qqq.",
    )


class ReportSettings(_Section):
    notional: float = Field(1_000_000.0, gt=0, description="Capital for currency PnL figures.")
    currency: str = Field("USD", min_length=1, max_length=8, description="Currency label.")


class Settings(_Section):
    """The whole pipeline's settings."""

    home: Path = Field(Path("."), description="Artifact root (env ALLOCATOR_HOME); step3_out/ lives here.")
    profile: Profile = Field("default", description="quick (tests) / default / full.")
    workers: int = Field(2, ge=1, le=64, description="Folds trained in parallel by the CLI.")
    data: DataSettings = DataSettings()
    step3: Step3EngineSettings = Step3EngineSettings()
    labels: LabelSettings = LabelSettings()
    costs: CostSettings = CostSettings()
    features: FeatureSettings = FeatureSettings()
    folds: FoldSettings = FoldSettings()
    models: ModelSettings = ModelSettings()
    ensemble: EnsembleSettings = EnsembleSettings()
    policy: PolicySettings = PolicySettings()
    envelope: EnvelopeSettings = EnvelopeSettings()
    tuning: TuningSettings = TuningSettings()
    gates: GateSettings = GateSettings()
    report: ReportSettings = ReportSettings()

    @model_validator(mode="after")
    def _purge_covers_horizon(self) -> "Settings":
        if self.folds.purge_sessions is not None and self.folds.purge_sessions < self.labels.horizon:
            raise ValueError(
                f"folds.purge_sessions ({self.folds.purge_sessions}) must be >= labels.horizon "
                f"({self.labels.horizon}): a shorter purge lets training labels overlap the test window"
            )
        return self

    @property
    def purge(self) -> int:
        """Purge length in sessions (defaults to the label horizon H)."""
        return self.folds.purge_sessions if self.folds.purge_sessions is not None else self.labels.horizon

    @property
    def paths(self) -> "ArtifactPaths":
        return ArtifactPaths(self.home.resolve())


class ArtifactPaths:
    """Artifact layout of DESIGN.md section 9, rooted at the settings' home directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.step3_out = home / "step3_out"
        self.allocator = self.step3_out / "allocator"
        self.dataset = self.allocator / "dataset"
        self.models = self.allocator / "models"
        self.backtest = self.allocator / "backtest"
        self.optuna = self.allocator / "optuna"
        self.final = home / "final output" / "step3_allocator"
        self.decisions = self.final / "decisions"

    def fold_models(self, fold: str) -> Path:
        return self.models / fold


# Profile overrides, as nested dicts merged over the defaults. `quick` keeps the test suite fast;
# `full` spends more compute on every stage.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "step3": {"num_boost_round": 20, "n_bags": 5},
        "models": {
            "lightgbm": {"num_boost_round": 40, "early_stopping_rounds": 10},
            "linear": {"max_iter": 100},
            "catboost": {"iterations": 40, "early_stopping_rounds": 10},
        },
        "tuning": {"n_trials": 3, "timeout_seconds": 30.0},
        "folds": {"n_inner_folds": 2},
    },
    "default": {"tuning": {"n_trials": 24, "timeout_seconds": 90.0}},
    "full": {
        "step3": {"num_boost_round": 150, "n_bags": 10},
        "models": {
            "lightgbm": {"num_boost_round": 800, "early_stopping_rounds": 50, "learning_rate": 0.03},
            "linear": {"max_iter": 2000},
            "catboost": {"iterations": 600, "early_stopping_rounds": 50, "learning_rate": 0.05},
        },
        "tuning": {"n_trials": 60, "timeout_seconds": 3600.0},
        "folds": {"n_inner_folds": 3},
    },
}

ENV_VARS = {
    "ALLOCATOR_HOME": ("home",),
    "ALLOCATOR_PRICES": ("data", "prices_dir"),
    "ALLOCATOR_STEP3": ("data", "step3_dir"),
    "ALLOCATOR_PROFILE": ("profile",),
}


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid settings ({source}):"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        value = e.get("input")
        if isinstance(value, dict):
            value = "{...}"
        ctx = e.get("ctx") or {}
        bounds = ", ".join(f"{k} {v}" for k, v in ctx.items() if k in ("ge", "gt", "le", "lt"))
        allowed = f" (allowed: {bounds})" if bounds else ""
        lines.append(f"  - {field} = {value!r}: {e['msg']}{allowed}")
    return "\n".join(lines)


def load_settings(
    *,
    home: str | Path | None = None,
    prices: str | Path | None = None,
    step3: str | Path | None = None,
    profile: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build validated settings from defaults, profile, TOML file, environment and arguments.

    Raises
    ------
    SettingsError
        When any field is out of range or unknown; the message names each bad field.
    """
    env = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    for var, path in ENV_VARS.items():
        if env.get(var):
            _set_path(tree, path, env[var])
    explicit = {("home",): home, ("data", "prices_dir"): prices, ("data", "step3_dir"): step3,
                ("profile",): profile}
    for path, value in explicit.items():
        if value is not None:
            _set_path(tree, path, value)

    chosen_profile = tree.get("profile", "default")
    if chosen_profile not in PROFILES:
        raise SettingsError(
            f"invalid settings: profile = {chosen_profile!r}: allowed {sorted(PROFILES)}"
        )
    home_dir = Path(tree.get("home", "."))
    file_tree: dict[str, Any] = {}
    source = "defaults"
    cfg = Path(config_file) if config_file is not None else home_dir / "allocator.toml"
    if config_file is not None and not cfg.is_file():
        raise SettingsError(f"settings file {cfg} does not exist")
    if cfg.is_file():
        try:
            file_tree = tomllib.loads(cfg.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {cfg}: {exc}") from exc
        source = str(cfg)
    merged = _deep_merge(PROFILES[chosen_profile], file_tree)
    merged = _deep_merge(merged, tree)
    if overrides:
        merged = _deep_merge(merged, overrides)
        source += " + overrides"
    try:
        return Settings.model_validate(merged)
    except ValidationError as err:
        raise SettingsError(format_validation_error(err, source)) from None


def describe_settings() -> list[dict[str, str]]:
    """Every settings field as rows (field, type, default, description) for the docs."""
    rows: list[dict[str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
                continue
            bounds = [
                f"{op} {getattr(m, attr)}"
                for m in info.metadata
                for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "len >="))
                if getattr(m, attr, None) is not None
            ]
            choices = [a for a in get_args(ann) if isinstance(a, str)] if get_origin(ann) is Literal else []
            if choices:
                bounds.append(" / ".join(choices))
            default = info.default
            rows.append(
                {
                    "field": f"{prefix}{name}",
                    "default": str(default) if isinstance(default, (Path, str)) else repr(default),
                    "range": ", ".join(bounds),
                    "description": info.description or "",
                }
            )

    walk(Settings, "")
    return rows
