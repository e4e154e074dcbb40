"""The ensemble members (LightGBM, elastic-net logistic, CatBoost): fit, save as text/JSON, load.

Asset group ``models``: ``fold_models``.
"""

from allocator_pipeline.core.models.base import PROBABILITY_FLOOR, Member
from allocator_pipeline.core.models.linear_member import LinearMember
from allocator_pipeline.core.models.members import (
    check_reload_exact,
    fit_member,
    fit_members,
    lightgbm_gain_importance,
    load_members,
    member_files,
    save_members,
)
from allocator_pipeline.core.models.training import screen_features, training_weights, utility_gap

__all__ = [
    "PROBABILITY_FLOOR",
    "LinearMember",
    "Member",
    "check_reload_exact",
    "fit_member",
    "fit_members",
    "lightgbm_gain_importance",
    "load_members",
    "member_files",
    "save_members",
    "screen_features",
    "training_weights",
    "utility_gap",
]
