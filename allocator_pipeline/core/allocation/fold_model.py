"""One fold, end to end: members, ensemble, policy matrix, test probabilities, allocator path.

These functions are shared by the per-fold Dagster assets, the inner splits of the tuner, the
promotion of the final allocator and the live daily decision, so that all of them run the same
code on the same kind of input: a *fold frame* (``core/folds.fold_dataset``) with a ``split``
column in {train, val, test}, the feature columns, ``label_class`` and ``best_weight``.

Conventions: the ``train`` rows fit the members; the ``val`` rows early-stop them, weight the
blend and fit the calibrator; the utility matrix ``M`` of the policy and the range of each model
input (``input_ranges``: outside it the policy holds the baseline weight) are taken from the
``train`` and ``val`` rows (all labelled, all before the purge that precedes the test window); the
``test`` rows are predicted; the walk-forward evaluation trades them on one continuous path
across the folds (``core/allocation/path.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.path import MODEL_COLUMN, Segment, continue_path
from allocator_pipeline.core.allocation.policy import class_prior, utility_matrix
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import N_CLASSES, OUT_OF_RANGE_COLUMN, PROBA_COLUMNS, UTILITY_COLUMNS
from allocator_pipeline.core.common.storage import read_json, write_json
from allocator_pipeline.core.ensemble.blend import Ensemble, fit_ensemble, load_ensemble, save_ensemble
from allocator_pipeline.core.features.risk import risk_features
from allocator_pipeline.core.models.members import Member, fit_members, lightgbm_gain_importance, load_members
from allocator_pipeline.core.models.training import screen_features, training_weights, utility_gap
from allocator_pipeline.settings import Settings

SPLIT_COLUMN = "split"
TARGET_COLUMNS = ("label_class", "best_weight")
POLICY_FILE = "policy.json"
ENSEMBLE_FILE = "ensemble.json"


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model inputs of a fold frame: every column but the split and the targets."""
    return [c for c in frame.columns if c not in (SPLIT_COLUMN, *TARGET_COLUMNS)]


def split_rows(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    rows = frame[frame[SPLIT_COLUMN] == split]
    if rows.empty:
        raise InputDataError(f"the fold has no {split!r} rows", column=SPLIT_COLUMN, value=split)
    return rows


def xy(frame: pd.DataFrame, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and integer bucket classes of one split (train/val rows are all labelled)."""
    rows = split_rows(frame, split)
    y = rows["label_class"]
    if y.isna().any():
        raise InputDataError(f"{split} row without a label", column="label_class", row=y.index[y.isna()][0])
    return rows[feature_columns(frame)], y.to_numpy(dtype=np.int64)


def input_ranges(frame: pd.DataFrame, names: list[str]) -> dict[str, tuple[float, float]]:
    """``{feature: (min, max)}`` of the model inputs ``names`` over the frame's train and validation rows."""
    rows = frame.loc[frame[SPLIT_COLUMN].isin(["train", "val"]), names]
    return {name: (float(rows[name].min()), float(rows[name].max())) for name in names}


def out_of_range(features: pd.DataFrame, ranges: dict[str, tuple[float, float]]) -> np.ndarray:
    """True on the rows where at least one feature of ``ranges`` lies outside its ``(min, max)``."""
    if not ranges:
        return np.zeros(len(features), dtype=bool)
    names = list(ranges)
    values = features[names].to_numpy(dtype=float)
    low = np.array([ranges[n][0] for n in names])
    high = np.array([ranges[n][1] for n in names])
    return ((values < low) | (values > high)).any(axis=1)


@dataclass(frozen=True)
class FoldModel:
    """A fitted fold: members, calibrated ensemble, the policy's utility matrix ``M``, the range
    each model input took on the fold's train and validation rows (empty: never out of range) and
    the class prior of those rows (the sizing's centre; None in a model stored before it)."""

    members: dict[str, Member]
    ensemble: Ensemble
    m: np.ndarray
    input_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    prior: np.ndarray | None = None

    @property
    def feature_names(self) -> list[str]:
        """The model inputs, in the order the members were trained on."""
        return list(next(iter(self.members.values())).feature_names)

    def member_probabilities(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        return {name: member.predict_proba(features) for name, member in self.members.items()}

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated ensemble probabilities, ``(n, 11)`` in bucket order."""
        return self.ensemble.predict(self.member_probabilities(features))

    def decision_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """What the policy reads: ``p_00 .. p_10`` and ``out_of_range`` (an input outside its
        training range), indexed like ``features``."""
        frame = probability_frame(self.predict_proba(features), features.index)
        frame[OUT_OF_RANGE_COLUMN] = out_of_range(features, self.input_ranges)
        return frame

    def segment(self, model_id: str, probabilities: pd.DataFrame, settings: Settings) -> Segment:
        """This model deciding the sessions of ``probabilities`` (a :meth:`decision_frame`) with
        ``settings``: the path's unit of work (``core/allocation/path.py``)."""
        return Segment(model_id, probabilities, self.m, settings, self.prior)

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write members (LightGBM text, CatBoost JSON, linear JSON), ``ensemble.json`` and
        ``policy.json``; returns the manifest."""
        directory = Path(directory)
        files = {name: str(member.save(directory).name) for name, member in self.members.items()}
        save_ensemble(self.ensemble, directory / ENSEMBLE_FILE)
        ranges = {name: list(bounds) for name, bounds in self.input_ranges.items()}
        prior = {} if self.prior is None else {"class_prior": self.prior.tolist()}
        save_policy(self.m, directory, {"input_ranges": ranges, **prior, **(extra or {})})
        return {"directory": str(directory), "members": files, "ensemble": ENSEMBLE_FILE, "policy": POLICY_FILE}

    @classmethod
    def load(cls, directory: str | Path) -> FoldModel:
        directory = Path(directory)
        ensemble = load_ensemble(directory / ENSEMBLE_FILE)
        members = load_members(directory, ensemble.member_names)
        policy = read_json(directory / POLICY_FILE)
        ranges = {name: (float(lo), float(hi)) for name, (lo, hi) in policy.get("input_ranges", {}).items()}
        return cls(
            members=members,
            ensemble=ensemble,
            m=np.asarray(policy["utility_matrix"], dtype=float),
            input_ranges=ranges,
            prior=policy_prior_of(policy),
        )


def save_policy(m: np.ndarray, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the utility matrix ``M`` as ``policy.json`` in a model directory (atomic)."""
    return write_json(
        {"utility_matrix": m.tolist(), "rows": "bucket j (weight j/10)", "columns": "best bucket k", **(extra or {})},
        Path(directory) / POLICY_FILE,
    )


def policy_prior_of(policy: dict[str, Any]) -> np.ndarray | None:
    """The ``class_prior`` of a ``policy.json`` (None in a file written before it)."""
    return None if "class_prior" not in policy else np.asarray(policy["class_prior"], dtype=float)


def policy_matrix(frame: pd.DataFrame, utilities: pd.DataFrame) -> np.ndarray:
    """``M[j, k]`` from the fold's labelled train and validation rows."""
    rows = frame[frame[SPLIT_COLUMN].isin(["train", "val"])]
    return utility_matrix(utilities.loc[rows.index, UTILITY_COLUMNS], rows["label_class"])


def policy_prior(frame: pd.DataFrame) -> np.ndarray:
    """The class prior ``pi`` (:func:`~allocator_pipeline.core.allocation.policy.class_prior`) of the
    fold's train and validation rows, the rows ``M`` comes from."""
    return class_prior(frame.loc[frame[SPLIT_COLUMN].isin(["train", "val"]), "label_class"])


def fit_fold_members(frame: pd.DataFrame, settings: Settings, utilities: pd.DataFrame) -> dict[str, Member]:
    """The fold's members, fitted on ``train`` and early-stopped on ``val``.

    ``models.feature_screen`` chooses the features and ``models.sample_weight`` weights the rows
    (``core/models/training.py``), both from the ``train`` rows and the ``utilities`` table only.
    """
    x_train, y_train = xy(frame, "train")
    x_val, y_val = xy(frame, "val")
    ms = settings.models
    need_gap = ms.feature_screen != "none" or ms.sample_weight in ("utility_gap", "side_balanced_gap")
    gap = utility_gap(utilities, x_train.index) if need_gap else None
    if ms.feature_screen == "block_stability":
        assert gap is not None
        signed = [*risk_features(x_train.columns), *settings.gates.monotonic_features]
        kept = screen_features(x_train, gap, ms.screen_blocks, ms.screen_min_t, ms.screen_min_features, signed)
        x_train, x_val = x_train[kept], x_val[kept]
    return fit_members(x_train, y_train, x_val, y_val, ms, training_weights(y_train, gap, ms.sample_weight))


def fit_fold_ensemble(frame: pd.DataFrame, members: dict[str, Member], settings: Settings) -> Ensemble:
    x_val, y_val = xy(frame, "val")
    val_probs = {name: member.predict_proba(x_val) for name, member in members.items()}
    return fit_ensemble(val_probs, y_val, settings.ensemble)


def fit_fold(frame: pd.DataFrame, utilities: pd.DataFrame, settings: Settings) -> FoldModel:
    """Members, ensemble and utility matrix of one fold frame."""
    members = fit_fold_members(frame, settings, utilities)
    return assemble_fold(frame, members, fit_fold_ensemble(frame, members, settings), utilities)


def assemble_fold(
    frame: pd.DataFrame, members: dict[str, Member], ensemble: Ensemble, utilities: pd.DataFrame
) -> FoldModel:
    """The fold model of fitted members and ensemble: ``M`` and the input ranges from the frame's
    train and validation rows."""
    names = list(next(iter(members.values())).feature_names)
    return FoldModel(
        members, ensemble, policy_matrix(frame, utilities), input_ranges(frame, names), policy_prior(frame)
    )


def probability_frame(proba: np.ndarray, index: pd.Index) -> pd.DataFrame:
    if proba.shape[1] != N_CLASSES:
        raise ValueError(f"expected {N_CLASSES} probability columns, got {proba.shape[1]}")
    return pd.DataFrame(proba, index=index, columns=PROBA_COLUMNS)


def predict_split(model: FoldModel, frame: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """The decision frame (``p_00..p_10``, ``out_of_range``) of a split's rows."""
    rows = split_rows(frame, split)
    return model.decision_frame(rows[feature_columns(frame)])


def fold_path(
    probabilities: pd.DataFrame, m: np.ndarray, context: pd.DataFrame, settings: Settings, prior: np.ndarray | None
) -> pd.DataFrame:
    """The allocator path (policy + envelope) of one block of consecutive sessions, started fresh
    (:func:`~allocator_pipeline.core.allocation.path.fresh_start`): the tuner's inner held-out
    blocks. ``context`` is the leg panel; row ``d`` of the path uses context rows ``<= d`` only."""
    path, _ = continue_path(Segment("block", probabilities, m, settings, prior), context, None)
    return path.drop(columns=MODEL_COLUMN)


def promotion_frame(
    features: pd.DataFrame, labels: pd.DataFrame, usable: pd.Series, settings: Settings
) -> pd.DataFrame:
    """The final allocator's training frame: every usable session, laid out like a fold.

    The last ``folds.validation_sessions`` usable sessions are ``val``; the ``purge`` sessions
    (calendar sessions, not only usable ones) before them are dropped; every earlier usable
    session is ``train``. There is no test split: the promoted model decides live sessions.
    """
    sessions = features.index
    usable_pos = np.flatnonzero(usable.reindex(sessions, fill_value=False).to_numpy())
    n_val = settings.folds.validation_sessions
    if len(usable_pos) <= n_val + settings.purge:
        raise InputDataError(f"only {len(usable_pos)} usable sessions: too few to train the final allocator")
    val_pos = usable_pos[-n_val:]
    train_pos = usable_pos[usable_pos < val_pos[0] - settings.purge]
    split = pd.Series("", index=sessions, dtype=object)
    split.iloc[train_pos] = "train"
    split.iloc[val_pos] = "val"
    rows = split[split != ""].index
    frame = features.loc[rows].copy()
    frame.insert(0, SPLIT_COLUMN, split.loc[rows].astype(str).to_numpy())
    frame["label_class"] = labels.loc[rows, "label_class"]
    frame["best_weight"] = labels.loc[rows, "best_weight"]
    return frame


def importance_of(members: dict[str, Member]) -> dict[str, float]:
    """Normalised LightGBM gain importance (empty when LightGBM is not a member)."""
    member = members.get("lightgbm")
    return {} if member is None else {k: float(v) for k, v in lightgbm_gain_importance(member).items()}


__all__ = [
    "FoldModel",
    "assemble_fold",
    "feature_columns",
    "fit_fold",
    "fit_fold_ensemble",
    "fit_fold_members",
    "fold_path",
    "importance_of",
    "input_ranges",
    "out_of_range",
    "policy_matrix",
    "policy_prior",
    "policy_prior_of",
    "predict_split",
    "probability_frame",
    "promotion_frame",
    "xy",
]
