"""Monotonic sanity (docs/design.md section 8): how a fold model's weight answers a rise of a risk feature.

A rise of a leg's volatility, downside volatility or drawdown must not raise that leg's weight.
:func:`monotonic_sanity` measures it on each fold's test rows, at the model's own choice
(:func:`policy_weight`) and, optionally, at the traded weight (:func:`traded_weight`); the gate
``monotonic_sanity`` of :mod:`allocator_pipeline.core.evaluation.gates` reads the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.fold_model import FoldModel, feature_columns
from allocator_pipeline.core.allocation.policy import allocator_path, expected_utility, raw_weight
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import BUCKETS, OUT_OF_RANGE_COLUMN, PROBA_COLUMNS
from allocator_pipeline.core.features.risk import RISK_FEATURE, leg_of, leg_sign, risk_features
from allocator_pipeline.settings import Settings


def monotonic_response(
    predict_w: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    feature: str,
    bump_std: float = 1.0,
    comoving: Iterable[str] = (),
) -> float:
    """Change of the mean predicted w_qqq when ``feature`` rises by ``bump_std`` standard deviations.

    ``mean(predict_w(X bumped)) - mean(predict_w(X))``: ``feature`` rises by ``bump_std * std``,
    with the sample standard deviation (ddof = 1, NaNs skipped) of the feature over ``X``, and
    each input of ``comoving`` by its least-squares slope on ``feature`` over ``X`` (rows where
    both are finite) times the same rise, so that the inputs that move with the feature keep
    moving with it; NaN values stay NaN. Returns NaN when the feature has no spread.

    >>> X = pd.DataFrame({"vol": [1.0, 2.0, 3.0, 4.0], "downvol": [0.5, 1.0, 1.5, 2.0]})
    >>> w = lambda x: 0.5 - 0.1 * x["vol"].to_numpy() + 0.1 * x["downvol"].to_numpy()
    >>> round(monotonic_response(w, X, "downvol"), 4)  # downvol alone: up
    0.0645
    >>> round(monotonic_response(w, X, "downvol", comoving=["vol"]), 4)  # with vol (slope 2): down
    -0.0645
    """
    for name in (feature, *comoving):
        if name not in X.columns:
            raise InputDataError("feature not in the feature table", column=name)
    std = float(X[feature].std(ddof=1))
    if not math.isfinite(std) or std == 0.0:
        return float("nan")
    rise = bump_std * std
    bumped = X.copy()
    bumped[feature] = X[feature] + rise
    for other in comoving:
        pair = X[[feature, other]].dropna()
        slope = float(pair[other].cov(pair[feature]) / pair[feature].var()) if len(pair) > 1 else 0.0
        bumped[other] = X[other] + (slope if math.isfinite(slope) else 0.0) * rise
    before = np.asarray(predict_w(X), dtype=float)
    after = np.asarray(predict_w(bumped), dtype=float)
    return float(np.mean(after) - np.mean(before))


TRADED_SUFFIX = "@traded"
"""Key suffix of a response measured at the traded weight (``w_final``) rather than the raw choice."""


def policy_weight(model: FoldModel, settings: Settings | None = None) -> Callable[[pd.DataFrame], np.ndarray]:
    """Features -> the model's own choice ``w_raw`` by the configured sizing
    (:func:`~allocator_pipeline.core.allocation.policy.raw_weight`; ``settings`` None: the argmax of
    expected utility), for the monotonic sanity gate: without the turnover
    charge, smoothing or the out-of-range hold, which would mask the model's response to a feature."""

    def predict(features: pd.DataFrame) -> np.ndarray:
        proba = model.predict_proba(features)
        eu = expected_utility(proba, model.m)
        if settings is None:
            return BUCKETS[np.argmax(eu, axis=1)]
        return raw_weight(proba, eu, model.prior, settings)

    return predict


def traded_weight(
    model: FoldModel, context: pd.DataFrame, settings: Settings, hold_on: pd.DataFrame | None = None
) -> Callable[[pd.DataFrame], np.ndarray]:
    """Features -> the traded weight ``w_final`` of a fresh path over the same sessions: the policy
    with its turnover charge, smoothing and out-of-range hold, then the envelope
    (:func:`~allocator_pipeline.core.allocation.policy.allocator_path`, from the baseline weight).
    ``context`` holds the leg returns and cash return of the sessions (indexed like the features).

    ``hold_on``: the rows whose inputs decide the out-of-range hold (None: the features given).
    The gate passes the sessions' actual inputs: a bump that carries a feature past its training
    range would otherwise measure the hold (the previous weight kept), not the feature's effect.
    """
    held = None if hold_on is None else model.decision_frame(hold_on)[OUT_OF_RANGE_COLUMN]

    def predict(features: pd.DataFrame) -> np.ndarray:
        frame = model.decision_frame(features)
        proba = frame[list(PROBA_COLUMNS)].to_numpy(dtype=float)
        flags = frame[OUT_OF_RANGE_COLUMN] if held is None else held.loc[features.index]
        path = allocator_path(
            proba,
            model.m,
            context.loc[features.index],
            settings,
            float(settings.labels.baseline_weight),
            out_of_range=flags.to_numpy(dtype=bool),
            prior=model.prior,
        )
        return path["w_final"].to_numpy(dtype=float)

    return predict


def monotonic_sanity(
    models: Mapping[str, FoldModel],
    fold_datasets: Mapping[str, pd.DataFrame],
    features: Iterable[str],
    traded: Mapping[str, Callable[[pd.DataFrame], np.ndarray]] | None = None,
    settings_of: Mapping[str, Settings] | None = None,
) -> dict[str, float]:
    """Mean over folds of the change in the mean weight of a risk feature's own leg on the fold's
    test rows when the feature rises by one standard deviation (:func:`monotonic_response`), the
    leg's other risk inputs that the model reads moving with it by their slope on the feature.

    The features measured are those of ``features`` (``gates.monotonic_features``) and every
    :func:`risk_features` input that the fold's model reads (a feature it does not read cannot
    move its weight, so it is not measured: the gate lists it as not used). The weight is
    the leg's own: ``w_qqq`` for a ``qqq_*`` feature, ``1 - w_qqq`` for a ``spy_*`` one, so a
    sane value is ``<= 0`` for every key; other configured features read ``w_qqq``. At the raw
    choice (:func:`policy_weight`) under the feature's name and, with ``traded`` (fold -> a
    :func:`traded_weight` predictor), at the traded weight under ``name + TRADED_SUFFIX``.
    ``settings_of``: fold -> the settings it trades (the sizing of its raw choice; None: argmax).
    """
    configured = list(features)
    changes: dict[str, list[float]] = {}
    for fold, frame in sorted(fold_datasets.items()):
        model = models[fold]
        test = frame[frame["split"] == "test"][feature_columns(frame)]
        used = [f for f in model.feature_names if f in test.columns]
        # a feature the model does not read cannot move its weight: measuring it would pass by construction
        measured = [f for f in dict.fromkeys([*configured, *risk_features(used)]) if f in used]
        predictors = {"": policy_weight(model, None if settings_of is None else settings_of[fold])}
        if traded is not None and fold in traded:
            predictors[TRADED_SUFFIX] = traded[fold]
        for feature in measured:
            # the leg's other risk inputs the model reads move with it (a leg's 5-session volatility
            # and downside volatility rise together; one alone is a session the data never show)
            leg = [g for g in risk_features(used) if g != feature and leg_of(g) == leg_of(feature)]
            comoving = leg if RISK_FEATURE.match(feature) else []
            for suffix, predict in predictors.items():
                change = monotonic_response(predict, test, feature, comoving=comoving) * leg_sign(feature)
                changes.setdefault(feature + suffix, []).append(change)
    return {f: float(np.mean(v)) for f, v in changes.items() if v}
