"""Nested walk-forward tuning with Optuna: the search space, the robust objective, the per-fold study.

Asset group ``tuning``: ``fold_tuning``.
"""

from allocator_pipeline.core.tuning.fit_cache import FitStore, fit_key, fit_store
from allocator_pipeline.core.tuning.objective import (
    OBJECTIVE_FORMULA,
    InnerFitCache,
    evaluate_params,
    fold_training_inputs,
    objective_terms,
    robust_objective,
)
from allocator_pipeline.core.tuning.result import TRIAL_PREFIX, export_ledger, export_trial_returns
from allocator_pipeline.core.tuning.selection import TrialSelection, select_trial
from allocator_pipeline.core.tuning.space import (
    GROUPS,
    MODEL_GROUPS,
    SEARCH_PARAMETERS,
    default_params,
    search_space,
    tunes_labels,
)
from allocator_pipeline.core.tuning.study import inner_fold_frames, run_study

__all__ = [
    "GROUPS",
    "MODEL_GROUPS",
    "OBJECTIVE_FORMULA",
    "SEARCH_PARAMETERS",
    "TRIAL_PREFIX",
    "FitStore",
    "InnerFitCache",
    "TrialSelection",
    "default_params",
    "evaluate_params",
    "export_ledger",
    "export_trial_returns",
    "fit_key",
    "fit_store",
    "fold_training_inputs",
    "inner_fold_frames",
    "objective_terms",
    "robust_objective",
    "run_study",
    "search_space",
    "select_trial",
    "tunes_labels",
]
