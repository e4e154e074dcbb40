"""The fold plan of a data set, as the dataset run builds it: checked before any run.

:func:`plan_for_legs` computes what the ``fold_plan`` asset reads (the features, the utility
labels, the usable sessions) from a leg panel and builds the plan with
:func:`~allocator_pipeline.core.folds.plan.plan_folds` itself, so a plan the data cannot give (too
little history for ``folds.required_oos_years`` or ``folds.first_test_year``) is refused before a
run starts, naming the setting, its value and the data's range.
"""

from __future__ import annotations

import pandas as pd

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.sessions import session_dates
from allocator_pipeline.core.features.table import build_features
from allocator_pipeline.core.folds.checks import usable_sessions
from allocator_pipeline.core.folds.plan import FoldPlanError, plan_folds
from allocator_pipeline.core.labels.utility import utility_labels
from allocator_pipeline.settings import Settings


def data_range(features: pd.DataFrame, usable: pd.Series) -> str:
    """The sessions of the data and of its usable (labelled, complete) part, as a person reads them."""

    def span(index: pd.DatetimeIndex) -> str:
        dates = session_dates(index)
        return f"{dates[0].date()} .. {dates[-1].date()}" if len(dates) else "none"

    return (
        f"the data: {len(features)} sessions {span(features.index)}, usable for training "
        f"{span(usable.index[usable.to_numpy(dtype=bool)])}"
    )


def plan_for_data(features: pd.DataFrame, labels: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """:func:`~allocator_pipeline.core.folds.plan.plan_folds` on the usable sessions of ``features``
    and ``labels``; its :class:`~allocator_pipeline.core.folds.plan.FoldPlanError` also names the
    data's range."""
    usable = usable_sessions(features, labels)
    try:
        return plan_folds(features.index, usable, settings)
    except FoldPlanError as exc:
        raise FoldPlanError(f"{exc} ({data_range(features, usable)})") from None


def plan_for_legs(leg_panel: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The fold plan the dataset run builds from ``leg_panel``: the features and utility labels of
    ``settings`` (``core/features``, ``core/labels``), then :func:`plan_for_data`.

    Raises
    ------
    FoldPlanError
        The settings ask for a plan these legs cannot give; the message names the setting, its
        value and the data's range.
    """
    features = build_features(leg_panel, settings.features)
    labels, _ = utility_labels(leg_panel, settings.labels, CostModel.from_settings(settings.costs))
    return plan_for_data(features, labels, settings)
