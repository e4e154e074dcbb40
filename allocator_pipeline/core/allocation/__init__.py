"""From probabilities to the traded weight: the fold model, the expected-utility policy, the risk
envelope, the allocator path and the live daily decision.

Asset group ``allocation``: ``daily_allocation``.
"""

from allocator_pipeline.core.allocation.envelope import EnvelopeState, apply_envelope, envelope_end_state
from allocator_pipeline.core.allocation.fold_model import (
    ENSEMBLE_FILE,
    SPLIT_COLUMN,
    FoldModel,
    feature_columns,
    fit_fold,
    fit_fold_ensemble,
    fit_fold_members,
    fold_path,
    importance_of,
    policy_matrix,
    predict_split,
    probability_frame,
    promotion_frame,
    split_rows,
    xy,
)
from allocator_pipeline.core.allocation.live import (
    DecisionLog,
    NoDataForSession,
    decide_promoted_session,
    decide_with_fold_model,
    fold_test_window,
    truncate_to_session,
)
from allocator_pipeline.core.allocation.policy import (
    EU_COLUMNS,
    allocator_end_state,
    allocator_path,
    expected_utility,
    smooth_and_cap,
    utility_matrix,
)

__all__ = [
    "ENSEMBLE_FILE",
    "EU_COLUMNS",
    "SPLIT_COLUMN",
    "DecisionLog",
    "EnvelopeState",
    "FoldModel",
    "NoDataForSession",
    "allocator_end_state",
    "allocator_path",
    "apply_envelope",
    "decide_promoted_session",
    "decide_with_fold_model",
    "envelope_end_state",
    "expected_utility",
    "feature_columns",
    "fit_fold",
    "fit_fold_ensemble",
    "fit_fold_members",
    "fold_path",
    "fold_test_window",
    "importance_of",
    "policy_matrix",
    "predict_split",
    "probability_frame",
    "promotion_frame",
    "smooth_and_cap",
    "split_rows",
    "truncate_to_session",
    "utility_matrix",
    "xy",
]
