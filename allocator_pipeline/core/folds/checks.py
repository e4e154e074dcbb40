"""Fold plan rows as per-session splits, fold datasets, and the plan's leakage checks.

Conventions as in ``core/folds/plan.py``: ranges are inclusive decision_ts ranges on the session
calendar; a label at session ``t`` reads sessions ``t + 1 .. t + H``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError

SPLITS = ("train", "val", "test", "purge", "embargo", "")
_RANGES = (
    ("train", "train_start", "train_end"),
    ("train2", "train2_start", "train2_end"),
    ("val", "val_start", "val_end"),
    ("test", "test_start", "test_end"),
)

PlanRule = Literal[
    "range",
    "declared_purge",
    "overlap",
    "label_window",
    "purge_gap",
    "after_test",
    "outer_train2",
    "embargo",
    "no_outer_row",
    "inner_in_outer",
    "duplicate",
    "test_overlap",
]
"""The rules of a sound fold plan (see :func:`validate_plan`)."""

PURGE_RULES: frozenset[str] = frozenset({"declared_purge", "label_window", "purge_gap", "inner_in_outer"})
"""Rules about purges: no training label window reaches a later validation or test decision."""
OVERLAP_RULES: frozenset[str] = frozenset({"overlap", "test_overlap"})
"""Rules about splits that share sessions."""
EMBARGO_RULES: frozenset[str] = frozenset({"embargo"})
"""Rules about the embargo after a held-out block."""


@dataclass(frozen=True)
class PlanViolation:
    """One broken rule of the fold plan: which ``rule``, where (``fold``, ``inner``; None for a
    rule across folds) and a message that names the sessions involved."""

    rule: PlanRule
    fold: str | None
    inner: int | None
    message: str

    def __str__(self) -> str:
        return self.message


def _get(row: Mapping[str, Any] | pd.Series, key: str) -> Any:
    value = row.get(key, pd.NaT) if hasattr(row, "get") else row[key]
    return pd.NaT if value is None else value


def usable_sessions(features: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """True where a session can train or validate: labelled and every feature finite."""
    complete = np.isfinite(features.to_numpy(dtype=np.float64)).all(axis=1)
    labelled = labels["label_class"].reindex(features.index).notna().to_numpy(dtype=bool)
    return pd.Series(complete & labelled, index=features.index, name="usable")


def split_labels(plan_row: Mapping[str, Any] | pd.Series, sessions: pd.DatetimeIndex) -> pd.Series:
    """Per-session split of one plan row: "train", "val", "test", "purge", "embargo" or "".

    "train" covers both training ranges (``train_*`` and ``train2_*``); "purge" the sessions
    strictly between train-proper and validation and between validation and the test window;
    "embargo" the sessions strictly between the test window and ``train2_start``. Unusable
    sessions inside a training range are still labelled "train" here; ``fold_dataset`` drops them.
    """
    idx = pd.DatetimeIndex(sessions)
    out = np.full(len(idx), "", dtype=object)

    def between(start: Any, end: Any, inclusive: bool) -> np.ndarray:
        if pd.isna(start) or pd.isna(end):
            return np.zeros(len(idx), dtype=bool)
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        if inclusive:
            return np.asarray((idx >= start) & (idx <= end))
        return np.asarray((idx > start) & (idx < end))

    out[between(_get(plan_row, "train_end"), _get(plan_row, "val_start"), False)] = "purge"
    out[between(_get(plan_row, "val_end"), _get(plan_row, "test_start"), False)] = "purge"
    out[between(_get(plan_row, "test_end"), _get(plan_row, "train2_start"), False)] = "embargo"
    for name, start, end in _RANGES:
        out[between(_get(plan_row, start), _get(plan_row, end), True)] = "train" if name == "train2" else name
    return pd.Series(out, index=idx, name="split", dtype="str")


def fold_dataset(
    features: pd.DataFrame, labels: pd.DataFrame, plan: pd.DataFrame, fold: str, inner: int = -1
) -> pd.DataFrame:
    """The rows of one fold (or inner split) with their split, features and labels.

    Returns
    -------
    pandas.DataFrame
        Index decision_ts; ``split`` ("train"/"val"/"test"), the feature columns, ``label_class``
        (Int64), ``best_weight``. Train and validation rows are the usable sessions of their ranges
        (labelled, every feature finite); test rows are every session of the test window (the
        last H sessions of the data have no label).

    Raises
    ------
    ValueError
        ``(fold, inner)`` is not in the plan.
    InputDataError
        Features and labels do not share their index, or a test row has a non-finite feature.
    """
    match = plan[(plan["fold"].astype(str) == str(fold)) & (plan["inner"] == inner)]
    if len(match) != 1:
        known = sorted(plan.loc[plan["inner"] == -1, "fold"].astype(str).unique())
        raise ValueError(f"fold {fold!r} inner split {inner} is not in the plan (folds: {known})")
    if not features.index.equals(labels.index):
        raise InputDataError("features and labels must share the same decision_ts index", column="decision_ts")
    split = split_labels(match.iloc[0], features.index).to_numpy(dtype=object)
    usable = usable_sessions(features, labels).to_numpy()
    fit = np.isin(split, ["train", "val"]) & usable
    test = split == "test"
    values = features.to_numpy(dtype=np.float64)
    bad = test[:, None] & ~np.isfinite(values)
    if bad.any():
        i, j = (int(a[0]) for a in np.nonzero(bad))
        raise InputDataError(
            f"fold {fold} has a test session with a non-finite feature; features must be complete after "
            "warm-up (switch off the block, or end the data where its inputs end)",
            column=str(features.columns[j]),
            row=str(features.index[i]),
            value=float(values[i, j]),
        )
    keep = fit | test
    out = features.loc[keep].copy()
    out.insert(0, "split", pd.Series(split[keep], index=out.index, dtype="str"))
    out["label_class"] = labels["label_class"].loc[keep].astype("Int64")
    out["best_weight"] = labels["best_weight"].loc[keep].astype(np.float64)
    return out


def _ranges(row: pd.Series, idx: pd.DatetimeIndex, where: str, problems: list[str]) -> dict[str, tuple[int, int]]:
    """The row's ranges as session positions; a range that is not sound is reported, not returned."""
    found: dict[str, tuple[int, int]] = {}
    for name, start_col, end_col in _RANGES:
        start, end = _get(row, start_col), _get(row, end_col)
        if pd.isna(start) and pd.isna(end):
            if name != "train2":
                problems.append(f"{where}: the {name} range is missing")
            continue
        if pd.isna(start) or pd.isna(end):
            problems.append(f"{where}: the {name} range has only one end ({start} .. {end})")
            continue
        pos = idx.get_indexer([pd.Timestamp(start), pd.Timestamp(end)])
        if (pos < 0).any():
            problems.append(f"{where}: the {name} range {start} .. {end} does not start and end on sessions")
            continue
        if pos[0] > pos[1]:
            problems.append(f"{where}: the {name} range starts ({start}) after it ends ({end})")
            continue
        found[name] = (int(pos[0]), int(pos[1]))
    return found


def _row_problems(row: pd.Series, idx: pd.DatetimeIndex, horizon: int, outer: pd.Series | None) -> list[PlanViolation]:
    where = f"fold {row['fold']} inner {int(row['inner'])}"
    found: list[PlanViolation] = []

    def report(rule: PlanRule, message: str) -> None:
        found.append(PlanViolation(rule, str(row["fold"]), int(row["inner"]), message))

    range_problems: list[str] = []
    r = _ranges(row, idx, where, range_problems)
    for message in range_problems:
        report("range", message)
    purge, embargo = int(row["purge"]), int(row["embargo"])
    if purge < horizon:
        report("declared_purge", f"{where}: declared purge {purge} is shorter than the label horizon H={horizon}")
    for a, b in combinations(r, 2):
        (s1, e1), (s2, e2) = r[a], r[b]
        if s1 <= e2 and s2 <= e1:
            report("overlap", f"{where}: the {a} and {b} ranges overlap ({idx[max(s1, s2)]} .. {idx[min(e1, e2)]})")
    for src, dst in (("train", "val"), ("train", "test"), ("train2", "val"), ("train2", "test"), ("val", "test")):
        if src in r and dst in r:
            # before the held-out range: a fitted row's label window reaches a held-out decision
            lo, hi = max(r[src][0], r[dst][0] - horizon), min(r[src][1], r[dst][0] - 1)
            if lo <= hi:
                report(
                    "label_window",
                    f"{where}: {src} decisions {idx[lo]} .. {idx[hi]} have label windows (t+1..t+{horizon}) "
                    f"reaching the {dst} decision {idx[r[dst][0]]}: the purge is too short",
                )
            # after it: a held-out label window (d+1..d+H) reaches a fitted decision, so the two
            # rows' label windows share sessions (Lopez de Prado's purging, both sides)
            lo, hi = max(r[src][0], r[dst][1] + 1), min(r[src][1], r[dst][1] + horizon)
            if lo <= hi:
                report(
                    "label_window",
                    f"{where}: {src} decisions {idx[lo]} .. {idx[hi]} lie inside the label windows "
                    f"(d+1..d+{horizon}) of the {dst} decisions ending {idx[r[dst][1]]}: "
                    f"the gap after the {dst} range is too short",
                )
    for a, b in (("train", "val"), ("val", "test")):
        if a in r and b in r and r[a][1] < r[b][0]:
            gap = r[b][0] - r[a][1] - 1
            if gap < purge:
                report(
                    "purge_gap",
                    f"{where}: the purge between {a} and {b} is {gap} sessions, "
                    f"shorter than the declared purge of {purge}",
                )
    if "test" in r:
        for name in ("train", "val"):
            if name in r and r[name][1] >= r["test"][0]:
                report(
                    "after_test",
                    f"{where}: the {name} range ends ({idx[r[name][1]]}) after the test window "
                    f"starts ({idx[r['test'][0]]})",
                )
        if "train2" in r:
            if int(row["inner"]) == -1:
                report("outer_train2", f"{where}: an outer fold must not train after its test window (train2 is set)")
            gap = r["train2"][0] - r["test"][1] - 1
            if gap < purge + embargo:
                report(
                    "embargo",
                    f"{where}: the gap after the held-out block is {gap} sessions, shorter than the "
                    f"declared purge of {purge} plus the declared embargo of {embargo}",
                )
    if int(row["inner"]) >= 0:
        if outer is None:
            report("no_outer_row", f"{where}: no outer fold row (inner = -1) for fold {row['fold']}")
        else:
            # inner splits end before the outer validation tail (early stopping, blend, calibration,
            # M) and its purge, hence before the outer test window too
            first = outer["val_start"] if pd.notna(outer.get("val_start")) else outer["test_start"]
            start = idx.get_indexer([pd.Timestamp(first)])[0]
            if start >= 0:
                limit = start - max(int(outer["purge"]), horizon)
                for name, (_, end) in r.items():
                    if end >= limit:
                        report(
                            "inner_in_outer",
                            f"{where}: the {name} range reaches {idx[end]}, inside the outer validation tail, "
                            f"test window or their purge (which starts {idx[max(limit, 0)]})",
                        )
    return found


def validate_plan(plan: pd.DataFrame, sessions: pd.DatetimeIndex, horizon: int) -> list[PlanViolation]:
    """Every violation of the fold plan's rules (empty list when the plan is sound).

    Checks, per row: ranges lie on sessions and are ordered; train / train2 / val / test do not
    overlap; no train or validation label window (t+1..t+H) reaches a validation or test decision,
    and no validation or test label window reaches a later training decision (so the two label
    windows never share a session, before the held-out range or after it); the gaps honour the
    declared purge (itself >= H) and, after a held-out block, the declared purge plus embargo; train and validation end before the test window; outer folds have no ``train2``;
    inner splits stay before the outer test window and its purge. Across folds: no two outer test
    windows overlap and no (fold, inner) pair repeats.

    Returns
    -------
    list of PlanViolation
        Each with its ``rule`` (checks select them by rule: :data:`PURGE_RULES`,
        :data:`OVERLAP_RULES`, :data:`EMBARGO_RULES`), fold, inner split and message.
    """
    idx = pd.DatetimeIndex(sessions)
    problems: list[PlanViolation] = []
    duplicated = plan.duplicated(subset=["fold", "inner"], keep=False)
    for fold, inner in plan.loc[duplicated, ["fold", "inner"]].drop_duplicates().itertuples(index=False):
        problems.append(
            PlanViolation(
                "duplicate", str(fold), int(inner), f"fold {fold} inner {inner}: the plan has this split more than once"
            )
        )
    outer_rows = plan[plan["inner"] == -1]
    outer_by_fold = {str(r["fold"]): r for _, r in outer_rows.iterrows()}
    for _, row in plan.iterrows():
        problems.extend(_row_problems(row, idx, horizon, outer_by_fold.get(str(row["fold"]))))
    ordered = [r for _, r in outer_rows.sort_values("test_start", kind="mergesort").iterrows()]
    # every pair, not only neighbours: a window inside another hides the next one's overlap with it
    for a, b in combinations(ordered, 2):
        if b["test_start"] <= a["test_end"]:
            problems.append(
                PlanViolation(
                    "test_overlap",
                    None,
                    None,
                    f"the test windows of folds {a['fold']} and {b['fold']} overlap "
                    f"({b['test_start']} .. {min(a['test_end'], b['test_end'])})",
                )
            )
    return problems


FOLD_DATASET_CHECKS = ("purge_holds", "no_split_overlap", "embargo_respected", "no_nan_features", "no_label_in_last_h")
"""The blocking checks of a fold dataset, in the order they are reported."""


def fold_dataset_problems(
    data: pd.DataFrame, features: pd.DataFrame, labels: pd.DataFrame, plan_rows: pd.DataFrame, horizon: int
) -> dict[str, list[str]]:
    """The problems of one fold's dataset, per check of :data:`FOLD_DATASET_CHECKS`.

    ``purge_holds``, ``no_split_overlap`` and ``embargo_respected`` select the fold's plan
    violations by rule; ``no_nan_features`` refuses a NaN feature in a train/validation row;
    ``no_label_in_last_h`` refuses a label on the last ``horizon`` sessions (their label window
    is incomplete) and an unlabelled train/validation row.
    """
    sessions = features.index
    violations = validate_plan(plan_rows, sessions, horizon)

    def by_rule(rules: frozenset[str]) -> list[str]:
        return [v.message for v in violations if v.rule in rules]

    used = data[data["split"].isin(["train", "val"])]
    nan_rows = used[list(features.columns)].isna().any(axis=1)
    nan_problems = (
        [f"{int(nan_rows.sum())} train/validation rows with NaN features, first {used.index[nan_rows][0]}"]
        if nan_rows.any()
        else []
    )
    labelled_tail = labels["label_class"].reindex(sessions[-horizon:]).notna()
    tail_problems = (
        [f"{int(labelled_tail.sum())} of the last {horizon} sessions carry a label"] if labelled_tail.any() else []
    )
    unlabelled_used = used["label_class"].isna()
    if unlabelled_used.any():
        tail_problems.append(f"{int(unlabelled_used.sum())} train/validation rows without a label")
    return {
        "purge_holds": by_rule(PURGE_RULES),
        "no_split_overlap": by_rule(OVERLAP_RULES),
        "embargo_respected": by_rule(EMBARGO_RULES),
        "no_nan_features": nan_problems,
        "no_label_in_last_h": tail_problems,
    }


def class_balance(labels: pd.Series) -> dict[str, int]:
    """Rows per bucket (keys are bucket weights ``"0.0"`` .. ``"1.0"``)."""
    counts = np.bincount(labels.dropna().astype(int), minlength=11)
    return {f"{k / 10:.1f}": int(c) for k, c in enumerate(counts)}
