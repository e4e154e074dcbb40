"""The walk-forward fold plan (purge, embargo, inner splits), its checks and the fold datasets.

Asset group ``folds``: ``fold_plan``, ``fold_dataset``.
"""

from allocator_pipeline.core.folds.plan import (
    FoldPlanError,
    PLAN_COLUMNS,
    fold_dataset,
    plan_folds,
    split_labels,
    usable_sessions,
    validate_plan,
)

__all__ = [
    "FoldPlanError",
    "PLAN_COLUMNS",
    "fold_dataset",
    "plan_folds",
    "split_labels",
    "usable_sessions",
    "validate_plan",
]
