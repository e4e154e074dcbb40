"""The walk-forward fold plan (purge, embargo, inner splits), its checks and the fold datasets.

Asset group ``folds``: ``fold_plan``, ``fold_dataset``.
"""

from allocator_pipeline.core.folds.checks import (
    FOLD_DATASET_CHECKS,
    class_balance,
    fold_dataset,
    fold_dataset_problems,
    split_labels,
    usable_sessions,
    validate_plan,
)
from allocator_pipeline.core.folds.feasibility import data_range, plan_for_data, plan_for_legs
from allocator_pipeline.core.folds.plan import FINAL_FOLD, PLAN_COLUMNS, FoldPlanError, plan_final, plan_folds

__all__ = [
    "FINAL_FOLD",
    "FOLD_DATASET_CHECKS",
    "PLAN_COLUMNS",
    "FoldPlanError",
    "class_balance",
    "data_range",
    "fold_dataset",
    "fold_dataset_problems",
    "plan_final",
    "plan_folds",
    "plan_for_data",
    "plan_for_legs",
    "split_labels",
    "usable_sessions",
    "validate_plan",
]
