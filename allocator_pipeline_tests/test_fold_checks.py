"""Fold datasets and their blocking checks (core/folds/checks.py) on the five-year calendar of
``test_fold_plan.py``: the splits of a plan row by hand, the fold dataset's errors, each check of
``fold_dataset_problems`` fired on its own, and the class balance."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.folds.checks import (
    FOLD_DATASET_CHECKS,
    class_balance,
    fold_dataset,
    fold_dataset_problems,
    split_labels,
)
from allocator_pipeline.core.folds.plan import plan_folds
from allocator_pipeline_tests.test_fold_plan import ALL, SESSIONS, N, _settings

H = 20


def _inputs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One feature, labels on every session but the last H (their label window is incomplete)."""
    pos = np.arange(N)
    features = pd.DataFrame({"x": np.sin(pos / 7.0)}, index=SESSIONS)
    labelled = pos < N - H
    labels = pd.DataFrame(
        {
            "label_class": pd.array(np.where(labelled, pos % 11, 0), dtype="Int64"),
            "best_weight": np.where(labelled, (pos % 11) / 10, np.nan),
        },
        index=SESSIONS,
    )
    labels.loc[~labelled, "label_class"] = pd.NA
    plan = plan_folds(SESSIONS, pd.Series(labelled, index=SESSIONS), _settings())
    return features, labels, plan


def test_split_labels_by_hand():
    """Train 0..2, purge 3, validation 4..5, purge 6, test 7..8, embargo 9, train again 10..11."""
    s = SESSIONS[:12]
    row = {
        "train_start": s[0],
        "train_end": s[2],
        "val_start": s[4],
        "val_end": s[5],
        "test_start": s[7],
        "test_end": s[8],
        "train2_start": s[10],
        "train2_end": s[11],
    }
    expected = ["train"] * 3 + ["purge", "val", "val", "purge", "test", "test", "embargo", "train", "train"]
    assert split_labels(row, s).tolist() == expected
    no_train2 = {**row, "train2_start": None, "train2_end": pd.NaT}  # no second range: no embargo either
    assert split_labels(no_train2, s).tolist() == expected[:9] + ["", "", ""]


def test_a_clean_fold_passes_every_check_in_order():
    features, labels, plan = _inputs()
    data = fold_dataset(features, labels, plan, "2013")
    assert set(data["split"]) == {"train", "val", "test"} and data["label_class"].dtype == "Int64"
    rows = plan[plan["fold"] == "2013"]
    problems = fold_dataset_problems(data, features, labels, rows, H)
    assert tuple(problems) == FOLD_DATASET_CHECKS and all(v == [] for v in problems.values())


def test_each_dataset_check_fires_on_its_own_problem():
    features, labels, plan = _inputs()
    rows = plan[plan["fold"] == "2013"]
    data = fold_dataset(features, labels, plan, "2013")
    train = data.index[data["split"] == "train"]
    holed = data.copy()
    holed.loc[train[[3, 7]], "x"] = np.nan
    out = fold_dataset_problems(holed, features, labels, rows, H)
    assert out["no_nan_features"] == [f"2 train/validation rows with NaN features, first {train[3]}"]
    unlabelled = data.copy()
    unlabelled.loc[train[5], "label_class"] = pd.NA
    assert fold_dataset_problems(unlabelled, features, labels, rows, H)["no_label_in_last_h"] == [
        "1 train/validation rows without a label"
    ]
    tail = labels.copy()
    tail.loc[SESSIONS[-3:], "label_class"] = 4
    assert fold_dataset_problems(data, features, tail, rows, H)["no_label_in_last_h"] == [
        "3 of the last 20 sessions carry a label"
    ]
    # a validation tail moved up to the last training session: no purge between them
    broken = rows.copy()
    broken.loc[broken["inner"] == -1, "val_start"] = broken.loc[broken["inner"] == -1, "train_end"].map(
        lambda t: SESSIONS[SESSIONS.get_loc(t) + 1]
    )
    out = fold_dataset_problems(data, features, labels, broken, H)
    assert out["purge_holds"] and out["no_nan_features"] == [] and out["embargo_respected"] == []
    assert all("fold 2013" in m for m in out["purge_holds"])


def test_fold_dataset_refuses_an_unknown_fold_a_misaligned_label_index_and_an_incomplete_test_row():
    features, labels, plan = _inputs()
    with pytest.raises(
        ValueError, match=re.escape("fold '2099' inner split -1 is not in the plan (folds: ['2013', '2014'])")
    ):
        fold_dataset(features, labels, plan, "2099")
    with pytest.raises(ValueError, match=re.escape("fold '2013' inner split 5 is not in the plan")):
        fold_dataset(features, labels, plan, "2013", inner=5)
    with pytest.raises(
        InputDataError, match=r"^column 'decision_ts': features and labels must share the same decision_ts index$"
    ):
        fold_dataset(features, labels.iloc[1:], plan, "2013")
    broken = features.copy()
    test_row = SESSIONS[800]  # inside the 2013 test window (781 .. 1041)
    broken.loc[test_row, "x"] = np.inf
    message = (
        f"column 'x', row {test_row}, value inf: fold 2013 has a test session with a non-finite feature; features "
        "must be complete after warm-up (switch off the block, or end the data where its inputs end)"
    )
    with pytest.raises(InputDataError, match=f"^{re.escape(message)}$"):
        fold_dataset(broken, labels, plan, "2013")


def test_class_balance_counts_every_bucket():
    counts = class_balance(pd.Series([0, 0, 10, pd.NA, 5], dtype="Int64"))
    assert list(counts) == [f"{k / 10:.1f}" for k in range(11)]
    assert counts == {**{f"{k / 10:.1f}": 0 for k in range(11)}, "0.0": 2, "0.5": 1, "1.0": 1}


def test_the_plan_of_this_file_is_the_hand_checked_one():
    """The usable mask here drops only the last H sessions, which the 2013 fold never trains on:
    its outer row is the one ``test_fold_plan.py`` checks by hand."""
    _, _, plan = _inputs()
    by_hand = plan_folds(SESSIONS, ALL, _settings())
    pd.testing.assert_frame_equal(plan[plan["fold"] == "2013"], by_hand[by_hand["fold"] == "2013"])
