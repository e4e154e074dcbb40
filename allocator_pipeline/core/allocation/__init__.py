"""From probabilities to the traded weight: the fold model, the expected-utility policy, the risk
envelope, the allocator path and the live daily decision.

Asset group ``allocation``: ``allocator_path`` (the walk-forward path), ``daily_allocation``.
"""

from allocator_pipeline.core.allocation.envelope import EnvelopeState, apply_envelope
from allocator_pipeline.core.allocation.fold_model import (
    ENSEMBLE_FILE,
    SPLIT_COLUMN,
    FoldModel,
    assemble_fold,
    feature_columns,
    fit_fold,
    fit_fold_ensemble,
    fit_fold_members,
    fold_path,
    importance_of,
    input_ranges,
    out_of_range,
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
    decide,
    evaluated_path,
    max_abs_diff,
    replay,
)
from allocator_pipeline.core.allocation.path import (
    AllocatorState,
    Segment,
    continue_path,
    run_segments,
    start_state,
    state_after,
)
from allocator_pipeline.core.allocation.policy import (
    EU_COLUMNS,
    allocator_path,
    class_prior,
    expected_utility,
    sized_weight,
    smooth_and_cap,
    utility_matrix,
)
from allocator_pipeline.core.allocation.schedule import ModelSchedule, fold_of, fold_schedule, promoted_schedule

__all__ = [
    "ENSEMBLE_FILE",
    "EU_COLUMNS",
    "SPLIT_COLUMN",
    "AllocatorState",
    "DecisionLog",
    "EnvelopeState",
    "FoldModel",
    "ModelSchedule",
    "NoDataForSession",
    "Segment",
    "allocator_path",
    "apply_envelope",
    "assemble_fold",
    "class_prior",
    "continue_path",
    "decide",
    "evaluated_path",
    "expected_utility",
    "feature_columns",
    "fit_fold",
    "fit_fold_ensemble",
    "fit_fold_members",
    "fold_of",
    "fold_path",
    "fold_schedule",
    "importance_of",
    "input_ranges",
    "max_abs_diff",
    "out_of_range",
    "policy_matrix",
    "predict_split",
    "probability_frame",
    "promoted_schedule",
    "promotion_frame",
    "replay",
    "run_segments",
    "sized_weight",
    "smooth_and_cap",
    "split_rows",
    "start_state",
    "state_after",
    "utility_matrix",
    "xy",
]
