"""The ensemble members (LightGBM, elastic-net logistic, CatBoost): fit, save as text/JSON, load.

Asset group ``models``: ``fold_models``.
"""

from allocator_pipeline.core.models.members import (
    LinearMember,
    Member,
    PROBABILITY_FLOOR,
    fit_member,
    fit_members,
    lightgbm_gain_importance,
    load_members,
    member_files,
)

__all__ = [
    "LinearMember",
    "Member",
    "PROBABILITY_FLOOR",
    "fit_member",
    "fit_members",
    "lightgbm_gain_importance",
    "load_members",
    "member_files",
]
