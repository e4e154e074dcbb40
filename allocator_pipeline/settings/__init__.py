"""One settings model for the whole pipeline.

Every field states its unit and allowed range; a value out of range is refused when the settings
are loaded, with a message naming the field (dotted path), the value and the allowed range.

Precedence, lowest first: field defaults < profile (quick/default/full) < TOML file
(``allocator.toml`` in the home directory, or ``--config`` / ``ALLOCATOR_CONFIG``) < environment
variables (``ALLOCATOR_HOME``, ``ALLOCATOR_PRICES``, ``ALLOCATOR_STEP3``, ``ALLOCATOR_PROFILE``) <
explicit arguments (command-line options, Dagster resource config).

Conventions used throughout the project:

* costs are in basis points of traded notional (1 bp = 1e-4);
* horizons, windows, purges and embargoes are counted in exchange sessions;
* weights are fractions of capital in [0, 1]; ``w`` is always the QQQ leg's share;
* annualisation uses 252 sessions a year.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from allocator_pipeline.settings.allocation import EnvelopeSettings, PolicySettings
from allocator_pipeline.settings.evaluation import (
    BacktestSettings,
    BootstrapSettings,
    GateSettings,
    LiveSettings,
    ReportSettings,
)
from allocator_pipeline.settings.sections import (  # noqa: F401  (re-exported: the settings API)
    FEATURE_BLOCKS,
    CatBoostSettings,
    CostSettings,
    DataSettings,
    EnsembleSettings,
    FeatureSettings,
    FoldSettings,
    LabelSettings,
    LightGBMSettings,
    LinearSettings,
    ModelSettings,
    Profile,
    SettingsError,
    Step3EngineSettings,
    TuningSettings,
    _Section,
)


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
    bootstrap: BootstrapSettings = BootstrapSettings()
    report: ReportSettings = ReportSettings()
    backtest: BacktestSettings = BacktestSettings()
    live: LiveSettings = LiveSettings()

    @model_validator(mode="after")
    def _purge_covers_horizon(self) -> Settings:
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
    def paths(self) -> ArtifactPaths:
        return ArtifactPaths(self.home.resolve())


class ArtifactPaths:
    """Artifact layout of docs/design.md section 9, rooted at the settings' home directory."""

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
        "tuning": {"enabled": False, "n_trials": 3, "timeout_seconds": 30.0},
        "folds": {"n_inner_folds": 2},
    },
    "default": {"tuning": {"enabled": True, "n_trials": 12, "timeout_seconds": 90.0}},
    "full": {
        "step3": {"num_boost_round": 150, "n_bags": 10},
        "models": {
            "lightgbm": {"num_boost_round": 800, "early_stopping_rounds": 50, "learning_rate": 0.03},
            "linear": {"max_iter": 2000},
            "catboost": {"iterations": 600, "early_stopping_rounds": 50, "learning_rate": 0.05},
        },
        "tuning": {"enabled": True, "n_trials": 60, "model_trials": 12, "timeout_seconds": 3600.0},
        "folds": {"n_inner_folds": 3},
    },
}


class RunOptions(BaseModel):
    """The global options of a run: the one declaration behind the ``allocator`` command's global
    flags, the Dagster settings resource's config and :func:`load_settings`.

    Each field's ``json_schema_extra`` gives its command-line ``flag``, its environment variable
    ``env``, the settings field it sets (``setting``, a dotted path; none for the settings file)
    and the ``kind`` of value the command line accepts (``home``: a directory that may not exist
    yet, ``dir``/``file``: an existing directory/file, ``profile``: one of :data:`PROFILES`).
    Unset (None) options fall back to the environment, then to the settings file and defaults.

    >>> options = RunOptions(profile="quick")
    >>> options.load(environ={}).models.lightgbm.num_boost_round
    40
    """

    model_config = ConfigDict(frozen=True)

    home: str | None = Field(
        None,
        description="Artifact root (default: the current directory).",
        json_schema_extra={"flag": "--home", "env": "ALLOCATOR_HOME", "setting": "home", "kind": "home"},
    )
    prices: str | None = Field(
        None,
        description="Directory of user price files <SYMBOL>.csv.",
        json_schema_extra={"flag": "--prices", "env": "ALLOCATOR_PRICES", "setting": "data.prices_dir", "kind": "dir"},
    )
    step3: str | None = Field(
        None,
        description="User Step 3 output directory (default: the reference engine).",
        json_schema_extra={"flag": "--step3", "env": "ALLOCATOR_STEP3", "setting": "data.step3_dir", "kind": "dir"},
    )
    profile: str | None = Field(
        None,
        description="Settings profile: quick / default / full.",
        json_schema_extra={"flag": "--profile", "env": "ALLOCATOR_PROFILE", "setting": "profile", "kind": "profile"},
    )
    config_file: str | None = Field(
        None,
        description="TOML settings file (default: <home>/allocator.toml if present).",
        json_schema_extra={"flag": "--config", "env": "ALLOCATOR_CONFIG", "setting": None, "kind": "file"},
    )
    overrides_json: str | None = Field(
        None,
        description="A JSON object of nested settings sections that wins "
        "over every other source (set by commands such as `optimize --trials`).",
    )

    def load(self, environ: Mapping[str, str] | None = None) -> Settings:
        """Validated settings for these options (see :func:`load_settings`)."""
        return load_settings(
            home=self.home,
            prices=self.prices,
            step3=self.step3,
            profile=self.profile,
            config_file=self.config_file,
            overrides=json.loads(self.overrides_json) if self.overrides_json else None,
            environ=environ,
        )


def global_options() -> dict[str, dict[str, Any]]:
    """The global options that are flags and environment variables: name -> its ``json_schema_extra``
    plus ``description``."""
    out: dict[str, dict[str, Any]] = {}
    for name, info in RunOptions.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict):
            out[name] = {**extra, "description": info.description}
    return out


ENV_VARS: dict[str, tuple[str, ...]] = {
    str(o["env"]): tuple(str(o["setting"]).split(".")) for o in global_options().values() if o["setting"]
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
    """One line per refused field, each naming the source, the field, the value and the allowed range
    (so the last line of a command's output is complete on its own)."""
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        value = e.get("input")
        if isinstance(value, dict):
            value = "{...}"
        ctx = e.get("ctx") or {}
        bounds = ", ".join(f"{k} {v}" for k, v in ctx.items() if k in ("ge", "gt", "le", "lt"))
        allowed = f" (allowed: {bounds})" if bounds else ""
        lines.append(f"invalid settings ({source}): {field} = {value!r}: {e['msg']}{allowed}")
    return "\n".join(lines)


def load_settings(
    *,
    home: str | Path | None = None,
    prices: str | Path | None = None,
    step3: str | Path | None = None,
    profile: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
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
    explicit = {("home",): home, ("data", "prices_dir"): prices, ("data", "step3_dir"): step3, ("profile",): profile}
    for path, value in explicit.items():
        if value is not None:
            _set_path(tree, path, value)

    home_dir = Path(tree.get("home", "."))
    file_tree: dict[str, Any] = {}
    source = "defaults"
    config_env = str(global_options()["config_file"]["env"])
    config_file = config_file if config_file is not None else env.get(config_env) or None
    cfg = Path(config_file) if config_file is not None else home_dir / "allocator.toml"
    if config_file is not None and not cfg.is_file():
        raise SettingsError(f"settings file {cfg} does not exist")
    if cfg.is_file():
        try:
            file_tree = tomllib.loads(cfg.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {cfg}: {exc}") from exc
        source = str(cfg)
    # the profile may come from the file too (arguments and environment win over it)
    chosen_profile = tree.get("profile", file_tree.get("profile", "default"))
    if chosen_profile not in PROFILES:
        raise SettingsError(f"invalid settings ({source}): profile = {chosen_profile!r}: allowed {sorted(PROFILES)}")
    merged = _deep_merge(PROFILES[chosen_profile], file_tree)
    merged = _deep_merge(merged, tree)
    if overrides:
        merged = _deep_merge(merged, overrides)
        source += " + overrides"
    try:
        return Settings.model_validate(merged)
    except ValidationError as err:
        raise SettingsError(format_validation_error(err, source)) from None


def tuned_settings(settings: Settings, params: Mapping[str, Any]) -> Settings:
    """``settings`` with the dotted parameters applied, re-validated as a whole.

    Parameters
    ----------
    settings : Settings
        The run's settings.
    params : mapping of str to value
        Dotted field names (``"models.lightgbm.num_leaves"``, ``"policy.alpha"``,
        ``"envelope.dd_soft"``, ``"ensemble.calibration"`` ...) and their values, e.g. a study's
        ``best_params``. Empty: ``settings`` is returned unchanged.

    Returns
    -------
    Settings
        A new, validated settings object.

    Raises
    ------
    SettingsError
        A name that is not a settings field, or a value (or combination, such as
        ``dd_hard <= dd_soft``) the settings model refuses; the message names the dotted field,
        the value and the allowed range.
    """
    if not params:
        return settings
    tree = settings.model_dump()
    for name, value in params.items():
        parts = str(name).split(".")
        node: Any = tree
        for depth, key in enumerate(parts[:-1]):
            child = node.get(key) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                section = ".".join(parts[: depth + 1])
                raise SettingsError(f"invalid tuned parameter {name!r}: {section!r} is not a settings section")
            node = child
        if not isinstance(node, dict) or parts[-1] not in node or isinstance(node[parts[-1]], dict):
            raise SettingsError(f"invalid tuned parameter {name!r}: no such settings field")
        node[parts[-1]] = value
    try:
        return Settings.model_validate(tree)
    except ValidationError as err:
        raise SettingsError(format_validation_error(err, "tuned parameters")) from None


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
