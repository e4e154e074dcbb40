"""Fold datasets and their blocking checks (core/folds/checks.py) on the five-year calendar of
``test_fold_plan.py``: the splits of a plan row by hand, the fold dataset's errors, each check of
``fold_dataset_problems`` fired on its own, and the class balance. Then, on a 60-session calendar
whose sessions are named by position, ``validate_plan`` on hand-built rows (every rule, at and one
session past its limit, with the full message, fold and inner split of each violation) and a fold
dataset, its usable sessions and its checks by hand."""

from __future__ import annotations

import re
import warnings
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.folds.checks import (
    FOLD_DATASET_CHECKS,
    class_balance,
    fold_dataset,
    fold_dataset_problems,
    split_labels,
    usable_sessions,
    validate_plan,
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


# -- validate_plan on hand-built rows: a 60-session calendar, sessions named by position ----------

S = decision_ts_from_dates(pd.bdate_range("2020-01-01", periods=60))
NAT = pd.NaT


def _row(fold, inner, train, val, test, train2=None, purge=2, embargo=1) -> dict:
    """A plan row from position ranges (None: the range is absent)."""

    def ends(r):
        return (NAT, NAT) if r is None else (S[r[0]], S[r[1]])

    (ts, te), (vs, ve), (xs, xe), (t2s, t2e) = ends(train), ends(val), ends(test), ends(train2)
    return {
        "fold": fold,
        "inner": inner,
        "train_start": ts,
        "train_end": te,
        "train2_start": t2s,
        "train2_end": t2e,
        "val_start": vs,
        "val_end": ve,
        "test_start": xs,
        "test_end": xe,
        "purge": purge,
        "embargo": embargo,
    }


def _sound_rows() -> list[dict]:
    """Every gap exactly at its limit for H = 2, purge 2, embargo 1.

    Outer A: train 0..19, purge 20..21, val 22..25, purge 26..27, test 28..31. Its inner splits
    end before 22 - max(purge, H) = 20. Inner 0: train 0..3, val 6..7, test 10..11, a gap of
    purge + embargo = 3 (12..14), train again 15..19. Inner 1: validation first (0..1), a gap of
    H = 2 after it (2..3), train 4..9, purge 10..11, test 12..13. Outer B: train 0..35, val
    38..41, test 44..47, after A's test window."""
    return [
        _row("A", -1, (0, 19), (22, 25), (28, 31)),
        _row("A", 0, (0, 3), (6, 7), (10, 11), train2=(15, 19)),
        _row("A", 1, (4, 9), (0, 1), (12, 13)),
        _row("B", -1, (0, 35), (38, 41), (44, 47)),
    ]


def _violations(rows: list[dict], horizon: int = 2) -> list[tuple]:
    found = validate_plan(pd.DataFrame(rows), S, horizon)
    assert all(str(v) == v.message for v in found)
    return [(v.rule, v.fold, v.inner, v.message) for v in found]


def _changed(position: int, **ranges) -> list[dict]:
    rows = _sound_rows()
    rows[position] = _row(**{**_row_args(rows[position]), **ranges})
    return rows


def _row_args(row: dict) -> dict:
    def pos(start, end):
        return None if pd.isna(start) else (S.get_loc(start), S.get_loc(end))

    return {
        "fold": row["fold"],
        "inner": row["inner"],
        "train": pos(row["train_start"], row["train_end"]),
        "val": pos(row["val_start"], row["val_end"]),
        "test": pos(row["test_start"], row["test_end"]),
        "train2": pos(row["train2_start"], row["train2_end"]),
        "purge": row["purge"],
        "embargo": row["embargo"],
    }


def test_a_plan_with_every_gap_at_its_limit_is_sound():
    assert _violations(_sound_rows()) == []


def test_one_session_short_before_a_held_out_range_breaks_the_label_window_and_the_purge():
    a = "fold A inner -1"
    assert _violations(_changed(0, train=(0, 20))) == [
        (
            "label_window",
            "A",
            -1,
            f"{a}: train decisions {S[20]} .. {S[20]} have label windows (t+1..t+2) reaching the val decision "
            f"{S[22]}: the purge is too short",
        ),
        (
            "purge_gap",
            "A",
            -1,
            f"{a}: the purge between train and val is 1 sessions, shorter than the declared purge of 2",
        ),
    ]
    assert _violations(_changed(0, val=(22, 26))) == [
        (
            "label_window",
            "A",
            -1,
            f"{a}: val decisions {S[26]} .. {S[26]} have label windows (t+1..t+2) reaching the test decision "
            f"{S[28]}: the purge is too short",
        ),
        (
            "purge_gap",
            "A",
            -1,
            f"{a}: the purge between val and test is 1 sessions, shorter than the declared purge of 2",
        ),
    ]
    # inner 1 trains right up to its test window: train -> test, not through a validation range
    assert _violations(_changed(2, test=(11, 13))) == [
        (
            "label_window",
            "A",
            1,
            f"fold A inner 1: train decisions {S[9]} .. {S[9]} have label windows (t+1..t+2) reaching the test "
            f"decision {S[11]}: the purge is too short",
        )
    ]
    # inner 1 trains one session after its validation range ends: inside that range's label windows
    assert _violations(_changed(2, train=(3, 9))) == [
        (
            "label_window",
            "A",
            1,
            f"fold A inner 1: train decisions {S[3]} .. {S[3]} lie inside the label windows (d+1..d+2) of the val "
            f"decisions ending {S[1]}: the gap after the val range is too short",
        )
    ]


def test_training_again_too_soon_after_the_test_window():
    i0 = "fold A inner 0"
    embargo = f"{i0}: the gap after the held-out block is {{}} sessions, shorter than the declared purge of 2 plus the declared embargo of 1"
    # 14: outside the test decisions' label windows (12..13), inside the embargo
    assert _violations(_changed(1, train2=(14, 19))) == [("embargo", "A", 0, embargo.format(2))]
    assert _violations(_changed(1, train2=(13, 19))) == [
        (
            "label_window",
            "A",
            0,
            f"{i0}: train2 decisions {S[13]} .. {S[13]} lie inside the label windows (d+1..d+2) of the test "
            f"decisions ending {S[11]}: the gap after the test range is too short",
        ),
        ("embargo", "A", 0, embargo.format(1)),
    ]


def test_a_row_with_every_range_jammed_together_reports_each_pair():
    """H = purge = 3, embargo 1: train 0..1, val 2..3, test 4..5, train2 6..7, by hand; no outer row."""
    z = "fold Z inner 0"
    row = _row("Z", 0, (0, 1), (2, 3), (4, 5), train2=(6, 7), purge=3, embargo=1)
    assert _violations([row], horizon=3) == [
        (
            "label_window",
            "Z",
            0,
            f"{z}: train decisions {S[0]} .. {S[1]} have label windows (t+1..t+3) reaching the val decision {S[2]}: "
            "the purge is too short",
        ),
        (
            "label_window",
            "Z",
            0,
            f"{z}: train decisions {S[1]} .. {S[1]} have label windows (t+1..t+3) reaching the test decision {S[4]}: "
            "the purge is too short",
        ),
        (
            "label_window",
            "Z",
            0,
            f"{z}: train2 decisions {S[6]} .. {S[6]} lie inside the label windows (d+1..d+3) of the val decisions "
            f"ending {S[3]}: the gap after the val range is too short",
        ),
        (
            "label_window",
            "Z",
            0,
            f"{z}: train2 decisions {S[6]} .. {S[7]} lie inside the label windows (d+1..d+3) of the test decisions "
            f"ending {S[5]}: the gap after the test range is too short",
        ),
        (
            "label_window",
            "Z",
            0,
            f"{z}: val decisions {S[2]} .. {S[3]} have label windows (t+1..t+3) reaching the test decision {S[4]}: "
            "the purge is too short",
        ),
        (
            "purge_gap",
            "Z",
            0,
            f"{z}: the purge between train and val is 0 sessions, shorter than the declared purge of 3",
        ),
        (
            "purge_gap",
            "Z",
            0,
            f"{z}: the purge between val and test is 0 sessions, shorter than the declared purge of 3",
        ),
        (
            "embargo",
            "Z",
            0,
            f"{z}: the gap after the held-out block is 0 sessions, shorter than the declared purge of 3 plus the "
            "declared embargo of 1",
        ),
        ("no_outer_row", "Z", 0, f"{z}: no outer fold row (inner = -1) for fold Z"),
    ]


def test_declared_purge_overlap_after_test_and_an_outer_train2():
    a = "fold A inner -1"
    rows = _sound_rows()
    rows[0]["purge"] = 1
    assert _violations(rows) == [
        ("declared_purge", "A", -1, f"{a}: declared purge 1 is shorter than the label horizon H=2")
    ]
    # validation from 17: overlaps train 17..19, its label windows reach back to 15, and the inner
    # limit moves to 17 - 2 = 15, which inner 0's second training range (to 19) reaches
    assert _violations(_changed(0, val=(17, 25))) == [
        ("overlap", "A", -1, f"{a}: the train and val ranges overlap ({S[17]} .. {S[19]})"),
        (
            "label_window",
            "A",
            -1,
            f"{a}: train decisions {S[15]} .. {S[16]} have label windows (t+1..t+2) reaching the val decision "
            f"{S[17]}: the purge is too short",
        ),
        (
            "inner_in_outer",
            "A",
            0,
            f"fold A inner 0: the train2 range reaches {S[19]}, inside the outer validation tail, test window or "
            f"their purge (which starts {S[15]})",
        ),
    ]
    assert _violations(_changed(0, val=(34, 35))) == [
        ("after_test", "A", -1, f"{a}: the val range ends ({S[35]}) after the test window starts ({S[28]})")
    ]
    test_first = _row("C", -1, (6, 9), (12, 13), (0, 3))
    assert _violations([test_first]) == [
        (
            "after_test",
            "C",
            -1,
            f"fold C inner -1: the train range ends ({S[9]}) after the test window starts ({S[0]})",
        ),
        ("after_test", "C", -1, f"fold C inner -1: the val range ends ({S[13]}) after the test window starts ({S[0]})"),
    ]
    # a second training range 35..38 after A's test window: a gap of exactly purge + embargo, but
    # an outer fold never trains after its test window
    assert _violations(_changed(0, train2=(35, 38))) == [
        ("outer_train2", "A", -1, f"{a}: an outer fold must not train after its test window (train2 is set)")
    ]


def test_inner_splits_stay_before_the_outer_tail_and_its_purge():
    # no outer validation tail: the limit is the outer test window's start 28 less the outer purge 9
    rows = _changed(0, val=None)
    rows[0]["purge"] = 9
    assert _violations(rows) == [
        ("range", "A", -1, "fold A inner -1: the val range is missing"),
        (
            "inner_in_outer",
            "A",
            0,
            f"fold A inner 0: the train2 range reaches {S[19]}, inside the outer validation tail, test window or "
            f"their purge (which starts {S[19]})",
        ),
    ]
    # an outer test window at the very start: every inner range reaches it, the limit shown is
    # the first session
    outer = _row("Y", -1, None, None, (0, 1))
    inner = _row("Y", 0, (4, 5), (8, 8), (11, 11))
    tail = ", inside the outer validation tail, test window or their purge (which starts {})"
    assert _violations([outer, inner]) == [
        ("range", "Y", -1, "fold Y inner -1: the train range is missing"),
        ("range", "Y", -1, "fold Y inner -1: the val range is missing"),
        ("inner_in_outer", "Y", 0, f"fold Y inner 0: the train range reaches {S[5]}" + tail.format(S[0])),
        ("inner_in_outer", "Y", 0, f"fold Y inner 0: the val range reaches {S[8]}" + tail.format(S[0])),
        ("inner_in_outer", "Y", 0, f"fold Y inner 0: the test range reaches {S[11]}" + tail.format(S[0])),
    ]
    # an outer test window that does not start on a session sets no limit
    off = {**outer, "test_start": S[0] + pd.Timedelta(hours=1)}
    assert _violations([off, inner]) == [
        ("range", "Y", -1, "fold Y inner -1: the train range is missing"),
        ("range", "Y", -1, "fold Y inner -1: the val range is missing"),
        (
            "range",
            "Y",
            -1,
            f"fold Y inner -1: the test range {off['test_start']} .. {S[1]} does not start and end on sessions",
        ),
    ]


def test_malformed_ranges_are_each_reported_and_left_out_of_the_other_rules():
    """Train with one end, validation backwards, test off the calendar: three messages, and no
    other rule fires for want of a sound range; train2 absent is no problem."""
    row = _row("A", -1, (0, 19), (25, 22), (28, 31))
    row["train_end"] = None
    row["test_end"] = S[31] + pd.Timedelta(days=1, hours=3)
    assert _violations([row]) == [
        ("range", "A", -1, f"fold A inner -1: the train range has only one end ({S[0]} .. NaT)"),
        ("range", "A", -1, f"fold A inner -1: the val range starts ({S[25]}) after it ends ({S[22]})"),
        (
            "range",
            "A",
            -1,
            f"fold A inner -1: the test range {S[28]} .. {row['test_end']} does not start and end on sessions",
        ),
    ]
    only_end = {**_row("A", -1, (0, 19), (22, 25), (28, 31)), "train2_end": S[40]}
    assert _violations([only_end]) == [
        ("range", "A", -1, f"fold A inner -1: the train2 range has only one end (NaT .. {S[40]})")
    ]


def test_duplicated_splits_and_overlapping_test_windows_across_folds():
    rows = _sound_rows()
    assert _violations([*rows, rows[1]]) == [
        ("duplicate", "A", 0, "fold A inner 0: the plan has this split more than once")
    ]
    # test windows P 8..12, Q 9..10 (inside P's), R 12..14 (starts on P's last session), given
    # out of order; each row alone is sound (train 0..2, val 5..5). Q, between them by start,
    # does not hide R's overlap with P.
    p = _row("P", -1, (0, 2), (5, 5), (8, 12))
    q = _row("Q", -1, (0, 2), (5, 5), (9, 10))
    r = _row("R", -1, (0, 2), (5, 5), (12, 14))
    assert _violations([r, q, p]) == [
        ("test_overlap", None, None, f"the test windows of folds P and Q overlap ({S[9]} .. {S[10]})"),
        ("test_overlap", None, None, f"the test windows of folds P and R overlap ({S[12]} .. {S[12]})"),
    ]


# -- fold datasets, usable sessions and the dataset checks on the 60-session calendar ------------


def _small_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features a = position, b = 100 + position; labels class = position mod 11, best weight =
    class / 10, on every session but the last two (H = 2). Session 3 has a NaN feature, session
    23 (validation of outer A) no label, session 30 (test of outer A) no label either."""
    pos = np.arange(len(S), dtype=float)
    features = pd.DataFrame({"a": pos, "b": 100.0 + pos}, index=S)
    features.iloc[3, 1] = np.nan
    classes = pd.array(np.arange(len(S)) % 11, dtype="Int64")
    labels = pd.DataFrame({"label_class": classes, "best_weight": (np.arange(len(S)) % 11) / 10}, index=S)
    for k in (23, 30, len(S) - 2, len(S) - 1):
        labels.iloc[k, 0] = pd.NA
        labels.iloc[k, 1] = np.nan
    return features, labels


def test_usable_sessions_by_hand_with_labels_in_another_order():
    features, labels = _small_inputs()
    shuffled = labels.iloc[::-1]  # aligned by decision_ts, not by position
    extra = pd.DataFrame({"label_class": pd.array([1], dtype="Int64")}, index=[S[-1] + pd.Timedelta(days=1)])
    usable = usable_sessions(features, pd.concat([shuffled, extra]))
    assert usable.name == "usable" and usable.index.equals(S) and usable.dtype == bool
    assert [k for k in range(len(S)) if not usable.iloc[k]] == [3, 23, 30, len(S) - 2, len(S) - 1]
    # complete but unlabelled, or labelled but incomplete: both unusable
    assert not usable.iloc[23] and not usable.iloc[3]


def test_a_fold_dataset_by_hand():
    """Outer A: train 0..19 without session 3 (NaN), validation 22..25 without 23 (no label), the
    whole test window 28..31 (30 unlabelled), in time order, split first."""
    features, labels = _small_inputs()
    plan = pd.DataFrame(_sound_rows())
    data = fold_dataset(features, labels, plan, "A")
    rows = [k for k in range(20) if k != 3] + [22, 24, 25] + [28, 29, 30, 31]
    assert data.index.equals(S[rows])
    assert list(data.columns) == ["split", "a", "b", "label_class", "best_weight"]
    assert data["split"].tolist() == ["train"] * 19 + ["val"] * 3 + ["test"] * 4
    assert data["a"].tolist() == [float(k) for k in rows] and data["b"].tolist() == [100.0 + k for k in rows]
    assert str(data["label_class"].dtype) == "Int64" and data["best_weight"].dtype == np.float64
    expected_class = [k % 11 for k in rows]
    assert data["label_class"].tolist() == [pd.NA if k == 30 else c for k, c in zip(rows, expected_class)]
    weights = data["best_weight"].to_numpy()
    np.testing.assert_array_equal(weights, [np.nan if k == 30 else (k % 11) / 10 for k in rows])
    inner = fold_dataset(features, labels, plan, "A", inner=0)  # both training ranges are "train"
    assert inner["split"].tolist() == ["train"] * 3 + ["val"] * 2 + ["test"] * 2 + ["train"] * 5
    assert inner.index.equals(S[[0, 1, 2, 6, 7, 10, 11, 15, 16, 17, 18, 19]])


def test_fold_dataset_names_the_outer_folds_and_the_first_non_finite_test_cell():
    features, labels = _small_inputs()
    rows = _sound_rows()
    plan = pd.DataFrame([rows[3], *rows[:3], _row("Z", 0, (0, 1), (4, 4), (7, 8))])  # Z: inner only
    with pytest.raises(ValueError, match=re.escape("fold 'Z' inner split -1 is not in the plan (folds: ['A', 'B'])")):
        fold_dataset(features, labels, plan, "Z")
    broken = features.copy()
    broken.loc[S[30], "a"] = -np.inf
    broken.loc[S[29], "b"] = np.nan  # the first in time order, though in the second column
    message = (
        f"column 'b', row {S[29]}, value nan: fold A has a test session with a non-finite feature; features must "
        "be complete after warm-up (switch off the block, or end the data where its inputs end)"
    )
    with pytest.raises(InputDataError, match=f"^{re.escape(message)}$"):
        fold_dataset(broken, labels, plan, "A")


def test_the_dataset_checks_read_validation_rows_too_and_not_test_rows():
    features, labels = _small_inputs()
    plan = pd.DataFrame(_sound_rows())
    rows = plan[plan["fold"] == "A"]
    data = fold_dataset(features, labels, plan, "A")
    assert all(v == [] for v in fold_dataset_problems(data, features, labels, rows, 2).values())
    holed = data.copy()
    holed.loc[S[24], "a"] = np.nan  # validation
    holed.loc[S[29], "b"] = np.nan  # test: not a fitted row
    holed.loc[S[25], "label_class"] = pd.NA  # validation
    holed.loc[S[31], "label_class"] = pd.NA  # test
    out = fold_dataset_problems(holed, features, labels, rows, 2)
    assert out["no_nan_features"] == [f"1 train/validation rows with NaN features, first {S[24]}"]
    assert out["no_label_in_last_h"] == ["1 train/validation rows without a label"]
    tail = labels.copy()
    tail.iloc[-1, 0] = 3
    assert fold_dataset_problems(data, features, tail, rows, 2)["no_label_in_last_h"] == [
        "1 of the last 2 sessions carry a label"
    ]
    # the embargo and overlap checks take their own rules only
    embargo = rows.copy()
    embargo.loc[embargo["inner"] == 0, "train2_start"] = S[14]
    out = fold_dataset_problems(data, features, labels, embargo, 2)
    assert out["embargo_respected"] == [
        "fold A inner 0: the gap after the held-out block is 2 sessions, shorter than the declared purge of 2 "
        "plus the declared embargo of 1"
    ]
    assert out["purge_holds"] == [] and out["no_split_overlap"] == []
    overlap = rows.copy()
    overlap.loc[overlap["inner"] == -1, "val_end"] = S[28]
    out = fold_dataset_problems(data, features, labels, overlap, 2)
    assert out["no_split_overlap"] == [f"fold A inner -1: the val and test ranges overlap ({S[28]} .. {S[28]})"]
    assert out["embargo_respected"] == []


def test_a_range_with_one_end_marks_nothing_and_a_purge_is_strictly_between():
    s = S[:6]
    assert split_labels({"train_end": s[1], "val_start": s[3]}, s).tolist() == ["", "", "purge", "", "", ""]
    assert split_labels({"val_end": s[1], "test_start": s[3]}, s).tolist() == ["", "", "purge", "", "", ""]
    marks = split_labels(pd.Series({"test_end": s[1], "train2_start": s[3]}), s)
    assert marks.tolist() == ["", "", "embargo", "", "", ""]
    assert marks.name == "split" and marks.index.equals(s)


def test_class_balance_keeps_every_bucket_key_when_the_top_ones_are_absent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # integer input to bincount, no cast from float
        counts = class_balance(pd.Series([0, 3, 3, pd.NA], dtype="Int64"))
    assert counts == {**{f"{k / 10:.1f}": 0 for k in range(11)}, "0.0": 1, "0.3": 2}
    assert list(counts) == ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0"]


def test_ranges_that_touch_at_one_session():
    """A range that starts on another's last session overlaps it; a validation range ending on the
    test window's first session overlaps it and ends after it starts."""
    assert _violations(_changed(2, train=(1, 9))) == [
        ("overlap", "A", 1, f"fold A inner 1: the train and val ranges overlap ({S[1]} .. {S[1]})"),
        (
            "label_window",
            "A",
            1,
            f"fold A inner 1: train decisions {S[2]} .. {S[3]} lie inside the label windows (d+1..d+2) of the val "
            f"decisions ending {S[1]}: the gap after the val range is too short",
        ),
    ]
    a = "fold A inner -1"
    assert _violations(_changed(0, val=(22, 28))) == [
        ("overlap", "A", -1, f"{a}: the val and test ranges overlap ({S[28]} .. {S[28]})"),
        (
            "label_window",
            "A",
            -1,
            f"{a}: val decisions {S[26]} .. {S[27]} have label windows (t+1..t+2) reaching the test decision "
            f"{S[28]}: the purge is too short",
        ),
        ("after_test", "A", -1, f"{a}: the val range ends ({S[28]}) after the test window starts ({S[28]})"),
    ]


def test_a_range_off_the_calendar_does_not_stop_the_next_ones_being_checked():
    row = {**_row("A", -1, (0, 19), (25, 22), (28, 31)), "train_start": S[0] + pd.Timedelta(hours=1)}
    assert _violations([row]) == [
        (
            "range",
            "A",
            -1,
            f"fold A inner -1: the train range {row['train_start']} .. {S[19]} does not start and end on sessions",
        ),
        ("range", "A", -1, f"fold A inner -1: the val range starts ({S[25]}) after it ends ({S[22]})"),
    ]


def test_a_split_repeated_with_other_ranges_is_still_a_duplicate():
    rows = _sound_rows()
    again = {**rows[1], "test_end": S[10]}  # the same (fold, inner), a shorter (still sound) block
    assert _violations([*rows, again]) == [
        ("duplicate", "A", 0, "fold A inner 0: the plan has this split more than once")
    ]
    # reported in the order of their first rows, whatever the order of the copies; the copied
    # outer row of B also repeats its test window
    assert _violations([*rows, rows[3], rows[1]]) == [
        ("duplicate", "A", 0, "fold A inner 0: the plan has this split more than once"),
        ("duplicate", "B", -1, "fold B inner -1: the plan has this split more than once"),
        ("test_overlap", None, None, f"the test windows of folds B and B overlap ({S[44]} .. {S[47]})"),
    ]


def test_tied_test_windows_are_reported_in_plan_order():
    """17 outer folds with the same test window (8..9): every pair, in the plan's order (a stable
    sort: numpy's default sort is not stable from 17 rows)."""
    names = [f"f{k:02d}" for k in range(17)]
    rows = [_row(name, -1, (0, 2), (5, 5), (8, 9)) for name in names]
    assert _violations(rows) == [
        ("test_overlap", None, None, f"the test windows of folds {a} and {b} overlap ({S[8]} .. {S[9]})")
        for a, b in combinations(names, 2)
    ]
