"""The tuner's search space, as data, and how a parameter set becomes a ``Settings``.

Every tunable parameter is named by the dotted path of the ``Settings`` field it sets
(``"models.lightgbm.num_leaves"``, ``"policy.alpha"``, ``"envelope.dd_soft"`` ...), so a trial's
parameters apply to the run's settings with ``allocator_pipeline.settings.tuned_settings`` and
are re-validated by the one settings model (ranges, ``dd_hard > dd_soft``, purge >= H). The label horizon ``H`` is never
tuned: it stays a setting of the run (it defines the purge and the fold plan).

Groups and their cost
---------------------
=========== ============================================================ ==========================
group       parameters                                                   cost of a trial
=========== ============================================================ ==========================
lightgbm    num_leaves, max_depth, learning_rate, min_data_in_leaf,      refit of the members on
            lambda_l2, feature_fraction                                  every inner split
linear      C, l1_ratio                                                  idem
catboost    depth, l2_leaf_reg, iterations                               idem
labels      lambda_dd, lambda_tc (utility labels recomputed, members     relabel + refit
            refitted on the new classes)
ensemble    calibration (auto/none/temperature/isotonic),                blend + calibrator only
            blend_temperature
policy      sizing_gain or turnover_penalty (by policy.sizing), alpha,   policy path + backtest
            no_trade_band, max_daily_change
envelope    dd_soft, dd_hard, vol_target_scale, drift_psi_threshold      policy path + backtest
=========== ============================================================ ==========================

A trial that only changes the cheap groups (ensemble, policy, envelope) reuses the members fitted
on each inner split (see ``core/tuning/objective.py``): it costs a blend, a calibrator and three
policy/backtest paths, a few tens of milliseconds, instead of several seconds of model fitting.
Tuning is on in the ``default`` and ``full`` profiles and off in ``quick``, the tests' profile
(``tuning.enabled``; the traded trial is chosen by ``tuning.selection``, ``core/tuning/selection.py``).
:data:`PROFILE_GROUPS` uses the cheap groups: the ``quick``
and ``default`` profiles search the ensemble and policy groups on members fitted once per inner
split with the run's model settings; ``full`` searches every group; ``tuning.groups`` overrides
both. The envelope group is not searched by default: on the planted-signal fixtures (docs/research.md,
power of the verdict) a tuner free to choose the envelope picked volatility targets of 10 to 15%
and drift thresholds that throttled 45% of the sessions, which lowered the signal kept in the
traded weight (w_final correlation with the future spread +0.05..+0.17 against +0.13..+0.21
untuned) and cost the average monthly PnL the acceptance gate compares with a fully invested
baseline.

Ranges (:data:`SEARCH_PARAMETERS`) are widened, per run, to contain the run's own value of each
field (:func:`search_space`), so the defaults trial that opens every study lies inside the space.
``dd_soft`` and ``dd_hard`` have disjoint ranges, so every sampled pair satisfies
``dd_hard > dd_soft``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from allocator_pipeline.settings import Settings
from allocator_pipeline.settings.sections import TuningGroup

__all__ = [
    "CHEAP_GROUPS",
    "GROUPS",
    "MEMBER_SECTIONS",
    "MODEL_GROUPS",
    "PROFILE_GROUPS",
    "SEARCH_PARAMETERS",
    "SearchParameter",
    "current_value",
    "default_params",
    "refits_members",
    "resolve_groups",
    "search_space",
    "search_space_table",
]


@dataclass(frozen=True)
class SearchParameter:
    """One tunable settings field: its dotted name, group, prior distribution and meaning."""

    name: str
    group: str
    distribution: BaseDistribution
    description: str


def _p(name: str, group: str, dist: BaseDistribution, description: str) -> SearchParameter:
    return SearchParameter(name, group, dist, description)


SEARCH_PARAMETERS: tuple[SearchParameter, ...] = (
    _p("models.lightgbm.num_leaves", "lightgbm", IntDistribution(4, 63, log=True), "max leaves per tree"),
    _p("models.lightgbm.max_depth", "lightgbm", IntDistribution(2, 8), "max tree depth"),
    _p("models.lightgbm.learning_rate", "lightgbm", FloatDistribution(0.01, 0.2, log=True), "shrinkage"),
    _p(
        "models.lightgbm.min_data_in_leaf",
        "lightgbm",
        IntDistribution(20, 400, log=True),
        "min rows (sessions) per leaf",
    ),
    _p("models.lightgbm.lambda_l2", "lightgbm", FloatDistribution(0.1, 100.0, log=True), "L2 regularisation"),
    _p(
        "models.lightgbm.feature_fraction", "lightgbm", FloatDistribution(0.4, 1.0), "share of feature columns per tree"
    ),
    _p("models.linear.C", "linear", FloatDistribution(1e-3, 10.0, log=True), "inverse regularisation strength"),
    _p("models.linear.l1_ratio", "linear", FloatDistribution(0.0, 1.0), "elastic-net mix (0 = L2, 1 = L1)"),
    _p("models.catboost.depth", "catboost", IntDistribution(2, 8), "tree depth"),
    _p("models.catboost.l2_leaf_reg", "catboost", FloatDistribution(0.5, 50.0, log=True), "L2 regularisation"),
    _p(
        "models.catboost.iterations",
        "catboost",
        IntDistribution(50, 600, log=True),
        "max boosting iterations (early stopping on validation still applies)",
    ),
    _p(
        "labels.lambda_dd",
        "labels",
        FloatDistribution(0.0, 4.0),
        "label penalty per unit of future drawdown (labels recomputed)",
    ),
    _p(
        "labels.lambda_tc",
        "labels",
        FloatDistribution(0.0, 4.0),
        "label penalty per unit of turnover cost (labels recomputed)",
    ),
    _p(
        "ensemble.calibration",
        "ensemble",
        CategoricalDistribution(("auto", "none", "temperature", "isotonic")),
        "calibrator of the blended probabilities",
    ),
    _p(
        "ensemble.blend_temperature",
        "ensemble",
        FloatDistribution(0.005, 1.0, log=True),
        "blend weights softmax(-log loss / T): small T = best member, large T = equal weights",
    ),
    _p(
        "policy.turnover_penalty",
        "policy",
        FloatDistribution(0.0, 20.0),
        "lambda: expected utility charged lambda * cost of the move from the weight held ('argmax' sizing)",
    ),
    _p(
        "policy.sizing_gain",
        "policy",
        FloatDistribution(0.5, 6.0),
        "kappa: tilt per unit shift of the expected best weight from the prior's ('expected_weight' sizing)",
    ),
    _p("policy.alpha", "policy", FloatDistribution(0.0, 0.97), "smoothing w_t = a w_{t-1} + (1 - a) w_raw"),
    _p(
        "policy.no_trade_band",
        "policy",
        FloatDistribution(0.0, 0.05),
        "dead band on the smoothed daily step (fraction of capital)",
    ),
    _p(
        "policy.max_daily_change",
        "policy",
        FloatDistribution(0.02, 1.0, log=True),
        "cap on |w_t - w_{t-1}| per session (fraction of capital)",
    ),
    _p("envelope.dd_soft", "envelope", FloatDistribution(0.05, 0.15), "own drawdown where exposure is first cut"),
    _p("envelope.dd_hard", "envelope", FloatDistribution(0.16, 0.35), "own drawdown where exposure is cut further"),
    _p(
        "envelope.vol_target_scale",
        "envelope",
        FloatDistribution(0.5, 1.2),
        "volatility target as a multiple of the legs' long-run volatility",
    ),
    _p(
        "envelope.drift_psi_threshold",
        "envelope",
        FloatDistribution(0.1, 1.0, log=True),
        "mean leg PSI that triggers the drift throttle",
    ),
)
"""The full search space, in a fixed order (the order parameters are sampled in)."""

GROUPS: tuple[str, ...] = get_args(TuningGroup)
"""Every group, in the order of the search space (the values ``tuning.groups`` accepts)."""
MODEL_GROUPS: tuple[str, ...] = ("lightgbm", "linear", "catboost", "labels")
"""Groups whose change requires refitting the members on every inner split."""
MEMBER_SECTIONS: tuple[str, ...] = ("models", "labels", "costs")
"""Settings sections the members' fit reads (the labels are computed with the costs): the key of
a fit in ``core/tuning/objective.py``'s cache; the parameters of :data:`MODEL_GROUPS` are in them."""
CHEAP_GROUPS: tuple[str, ...] = ("ensemble", "policy", "envelope")
"""Groups evaluated on cached member probabilities (no refit)."""
PROFILE_GROUPS: dict[str, tuple[str, ...]] = {
    "quick": ("ensemble", "policy"),
    "default": ("ensemble", "policy"),
    "full": GROUPS,
}
"""Groups searched by each profile, when tuning is on, if the caller does not name them."""

# Parameters that only matter when a setting of the run has a given value (a switch on, a sizing).
_SWITCHES: dict[str, tuple[str, Any]] = {
    "policy.turnover_penalty": ("policy.sizing", "argmax"),
    "policy.sizing_gain": ("policy.sizing", "expected_weight"),
    "envelope.dd_soft": ("envelope.dd_guard", True),
    "envelope.dd_hard": ("envelope.dd_guard", True),
    "envelope.vol_target_scale": ("envelope.vol_scaling", True),
    "envelope.drift_psi_threshold": ("envelope.drift_throttle", True),
}


def current_value(settings: Settings, name: str) -> Any:
    """The value of the dotted settings field ``name`` (``AttributeError`` if there is none)."""
    node: Any = settings
    for part in name.split("."):
        node = getattr(node, part)
    return node


def resolve_groups(settings: Settings, groups: Iterable[str] | None = None) -> tuple[str, ...]:
    """The groups to search: ``groups`` if given, else ``settings.tuning.groups``, else the profile's.

    The profile's groups are :data:`PROFILE_GROUPS`.

    Model groups of members that are not in ``settings.models.members`` are dropped (their
    parameters would not change anything).
    """
    if groups is None:
        groups = settings.tuning.groups or PROFILE_GROUPS[settings.profile]
    chosen = tuple(groups)
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown tuning groups {unknown}; known: {list(GROUPS)}")
    members = set(settings.models.members)
    return tuple(g for g in GROUPS if g in chosen and (g not in ("lightgbm", "linear", "catboost") or g in members))


def _widened(dist: BaseDistribution, value: Any) -> BaseDistribution:
    """``dist`` widened to contain ``value`` (unchanged when it does, or a log range cannot)."""
    if isinstance(dist, IntDistribution):
        v = int(value)
        if dist.low <= v <= dist.high or (dist.log and v < 1):
            return dist
        return IntDistribution(min(dist.low, v), max(dist.high, v), log=dist.log)
    if isinstance(dist, FloatDistribution):
        f = float(value)
        if dist.low <= f <= dist.high or (dist.log and f <= 0.0):
            return dist
        return FloatDistribution(min(dist.low, f), max(dist.high, f), log=dist.log)
    return dist


def search_space(settings: Settings, groups: Iterable[str] | None = None) -> dict[str, BaseDistribution]:
    """Name -> distribution of the parameters searched for this run.

    Parameters
    ----------
    settings : Settings
        The run's settings: the profile picks the default groups, ``models.members`` and the
        envelope's switches drop parameters that would have no effect, and every range is widened
        to contain the run's own value (so the defaults trial lies inside the space).
    groups : iterable of str, optional
        Groups to search (see :data:`GROUPS`); None: :data:`PROFILE_GROUPS` of the profile.
    """
    chosen = set(resolve_groups(settings, groups))
    space: dict[str, BaseDistribution] = {}
    for param in SEARCH_PARAMETERS:
        if param.group not in chosen:
            continue
        switch = _SWITCHES.get(param.name)
        if switch is not None and current_value(settings, switch[0]) != switch[1]:
            continue
        space[param.name] = _widened(param.distribution, current_value(settings, param.name))
    return space


def default_params(settings: Settings, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """The run's own value of every parameter of ``space`` (the first trial of every study)."""
    out: dict[str, Any] = {}
    for name, dist in space.items():
        value = current_value(settings, name)
        if isinstance(dist, IntDistribution):
            value = int(value)
        elif isinstance(dist, FloatDistribution):
            value = float(value)
        out[name] = value
    return out


def search_space_table(space: Mapping[str, BaseDistribution] | None = None) -> list[dict[str, Any]]:
    """Rows ``name, group, kind, low, high, log, choices, description`` for the docs.

    ``space`` (default: every parameter at its nominal range) gives the distributions shown.
    """
    by_name = {p.name: p for p in SEARCH_PARAMETERS}
    names: Sequence[str] = list(space) if space is not None else [p.name for p in SEARCH_PARAMETERS]
    rows = []
    for name in names:
        param = by_name[name]
        dist = space[name] if space is not None else param.distribution
        row: dict[str, Any] = {
            "name": name,
            "group": param.group,
            "kind": type(dist).__name__,
            "low": None,
            "high": None,
            "log": False,
            "choices": None,
            "description": param.description,
        }
        if isinstance(dist, (IntDistribution, FloatDistribution)):
            row.update(low=dist.low, high=dist.high, log=dist.log)
        elif isinstance(dist, CategoricalDistribution):
            row["choices"] = list(dist.choices)
        rows.append(row)
    return rows


def tunes_labels(params: Mapping[str, Any]) -> bool:
    """True when ``params`` change the label lambdas (labels must then be recomputed)."""
    return any(name.startswith("labels.") for name in params)


def refits_members(name: str) -> bool:
    """True when the parameter ``name`` (a dotted settings path) is in a section the members' fit
    reads (:data:`MEMBER_SECTIONS`), so a trial changing it refits them on every inner split."""
    return name.split(".", 1)[0] in MEMBER_SECTIONS
