"""Nested walk-forward tuning with Optuna: the search space, the robust objective, the per-fold study.

Asset group ``tuning``: ``fold_tuning``.
"""

from allocator_pipeline.core.tuning.objective import (
    InnerFitCache,
    evaluate_params,
    objective_terms,
    relabel_frame,
)
from allocator_pipeline.core.tuning.space import (
    GROUPS,
    MODEL_GROUPS,
    SEARCH_PARAMETERS,
    default_params,
    search_space,
    tuned_settings,
    tunes_labels,
)
from allocator_pipeline.core.tuning.study import (
    OBJECTIVE_FORMULA,
    export_ledger,
    inner_fold_frames,
    robust_objective,
    run_study,
    tuned_settings,
)

__all__ = [
    "GROUPS",
    "InnerFitCache",
    "MODEL_GROUPS",
    "OBJECTIVE_FORMULA",
    "SEARCH_PARAMETERS",
    "default_params",
    "evaluate_params",
    "export_ledger",
    "inner_fold_frames",
    "objective_terms",
    "relabel_frame",
    "robust_objective",
    "run_study",
    "search_space",
    "tuned_settings",
    "tunes_labels",
]
