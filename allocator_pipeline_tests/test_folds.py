"""Walk-forward fold plan: properties (hypothesis), the real calendar, validate_plan, fold datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.sessions import decision_ts_from_dates, session_dates
from allocator_pipeline.core.folds.checks import fold_dataset, split_labels, usable_sessions, validate_plan
from allocator_pipeline.core.folds.plan import FINAL_FOLD, PLAN_COLUMNS, FoldPlanError, plan_final, plan_folds
from allocator_pipeline.core.inputs.market import load_embedded
from allocator_pipeline.settings import FoldSettings, LabelSettings, Settings
from allocator_pipeline_tests.support.leakage import compare_up_to


def make_settings(horizon: int = 20, **folds) -> Settings:
    folds.setdefault("required_oos_years", ())
    purge = folds.pop("purge", None)
    return Settings(labels=LabelSettings(horizon=horizon), folds=FoldSettings(purge_sessions=purge, **folds))


def calendar(start: str, years: int) -> pd.DatetimeIndex:
    end = pd.Timestamp(start) + pd.DateOffset(years=years) - pd.Timedelta(days=1)
    return decision_ts_from_dates(pd.bdate_range(start, end))


def usable_mask(sessions: pd.DatetimeIndex, warm_up: int, horizon: int) -> pd.Series:
    pos = np.arange(len(sessions))
    return pd.Series((pos >= warm_up) & (pos < len(sessions) - horizon), index=sessions)


@pytest.fixture(scope="module")
def real_sessions() -> pd.DatetimeIndex:
    spy = load_embedded().query("symbol == 'SPY'")["session"]
    return decision_ts_from_dates(spy.sort_values())


def real_usable(sessions: pd.DatetimeIndex, horizon: int = 20) -> pd.Series:
    pos = np.arange(len(sessions))
    return pd.Series(
        (sessions >= pd.Timestamp("2002-01-01", tz="UTC")) & (pos < len(sessions) - horizon), index=sessions
    )


def brute_force_violations(
    plan: pd.DataFrame, sessions: pd.DatetimeIndex, usable: pd.Series, horizon: int, purge: int
) -> list[str]:
    """An independent check of the plan, position by position, from split_labels."""
    found = []
    n = len(sessions)
    outer_test = {}
    for _, row in plan.iterrows():
        split = split_labels(row, sessions).to_numpy()
        pos = {name: np.flatnonzero(split == name) for name in ("train", "val", "test", "embargo")}
        where = f"{row['fold']}/{row['inner']}"
        for name, evaluated in (("train", ("val", "test")), ("val", ("test",))):
            reach = np.zeros(n, dtype=bool)  # sessions some label window of `name` reads
            for t in pos[name]:
                reach[t + 1 : t + horizon + 1] = True
            for target in evaluated:
                if reach[pos[target]].any():
                    found.append(f"{where}: a {name} label reaches {target}")
        if row["inner"] == -1:
            outer_test[row["fold"]] = pos["test"]
            if (
                len(pos["test"]) != row["n_test"]
                or not (session_dates(sessions[pos["test"]]).year == int(row["fold"])).all()
            ):
                found.append(f"{where}: test window is not the calendar year")
        else:
            first_test = outer_test[row["fold"]][0]
            used = np.concatenate([pos["train"], pos["val"], pos["test"]])
            if (used >= first_test - purge).any():
                found.append(f"{where}: inner split touches the outer test window or its purge")
            if row["scheme"] == "purged_kfold":
                after = pos["train"][pos["train"] > pos["test"][-1]]
                if len(after) and after[0] - pos["test"][-1] - 1 < row["embargo"]:
                    found.append(f"{where}: embargo not respected")
        fit = usable.to_numpy()
        if fit[pos["train"]].sum() != row["n_train"] or fit[pos["val"]].sum() != row["n_val"]:
            found.append(f"{where}: counts do not match the usable sessions")
        if len(pos["val"]) != row["n_val"] or not fit[pos["val"]].all():
            found.append(f"{where}: validation tail has unusable sessions")
    windows = np.concatenate(list(outer_test.values()))
    if len(np.unique(windows)) != len(windows):
        found.append("outer test windows overlap")
    if len(windows) and windows[-1] != n - 1:
        found.append("the last fold does not end at the last session")
    return found


@hsettings(max_examples=30, deadline=None)
@given(
    years=st.integers(6, 8),
    warm_up=st.integers(0, 300),
    horizon=st.integers(1, 25),
    extra_purge=st.integers(0, 8),
    validation=st.integers(63, 150),
    inner_len=st.integers(63, 130),
    n_inner=st.integers(1, 3),
    embargo=st.integers(0, 30),
    scheme=st.sampled_from(["walk_forward", "purged_kfold"]),
    window=st.sampled_from(["expanding", "rolling"]),
    rolling_years=st.integers(2, 3),
    start_day=st.integers(0, 200),
)
def test_plan_properties(
    years,
    warm_up,
    horizon,
    extra_purge,
    validation,
    inner_len,
    n_inner,
    embargo,
    scheme,
    window,
    rolling_years,
    start_day,
):
    start = (pd.Timestamp("2003-01-01") + pd.Timedelta(days=start_day)).strftime("%Y-%m-%d")
    sessions = calendar(start, years)
    usable = usable_mask(sessions, warm_up, horizon)
    s = make_settings(
        horizon,
        purge=horizon + extra_purge,
        min_train_years=2,
        validation_sessions=validation,
        inner_test_sessions=inner_len,
        n_inner_folds=n_inner,
        embargo_sessions=embargo,
        inner_scheme=scheme,
        window=window,
        rolling_years=rolling_years,
    )
    plan = plan_folds(sessions, usable, s)
    assert list(plan.columns) == PLAN_COLUMNS
    assert validate_plan(plan, sessions, horizon) == []
    assert brute_force_violations(plan, sessions, usable, horizon, s.purge) == []
    assert label_window_overlaps(plan, sessions, horizon) == []
    outer = plan[plan["inner"] == -1]
    assert outer["n_train"].iloc[0] >= 2 * 252
    inner_counts = plan.groupby("fold")["inner"].count() - 1  # an early or rolling fold may fit fewer splits
    assert ((inner_counts >= 1) & (inner_counts <= n_inner)).all()
    if window == "rolling":
        assert (outer["n_train"] <= rolling_years * 252).all()
    if scheme == "walk_forward":
        assert plan["train2_start"].isna().all() and (plan["embargo"] == 0).all()
    else:
        inner = plan[plan["inner"] >= 0]
        assert (inner["embargo"] == embargo).all()
        last = inner.groupby("fold")["inner"].transform("max")  # every block but a fold's last trains after it
        assert inner.loc[inner["inner"] < last, "train2_start"].notna().all()


def test_real_calendar_covers_the_required_years(real_sessions):
    usable = real_usable(real_sessions)
    # required_oos_years (2008, 2020, 2022) as by default; 4 years of train-proper data
    s = Settings(folds=FoldSettings(min_train_years=4))
    plan = plan_folds(real_sessions, usable, s)
    folds = plan.loc[plan["inner"] == -1, "fold"].tolist()
    assert folds[0] == "2008" and {"2008", "2020", "2022"} <= set(folds)
    assert folds[-1] == str(session_dates(real_sessions[-1:]).year[0])
    assert plan.loc[plan["inner"] == -1, "test_end"].iloc[-1] == real_sessions[-1]
    assert validate_plan(plan, real_sessions, s.labels.horizon) == []
    assert brute_force_violations(plan, real_sessions, usable, 20, 20) == []
    first = plan.iloc[0]
    split = split_labels(first, real_sessions)
    assert (split == "purge").sum() == 2 * s.purge and (split == "val").sum() == 252
    assert split[real_sessions[real_sessions.get_loc(first["test_start"]) - 1]] == "purge"


def test_a_new_year_of_sessions_adds_a_fold(real_sessions):
    s = Settings(folds=FoldSettings(min_train_years=4))
    plan = plan_folds(real_sessions, real_usable(real_sessions), s)
    last = session_dates(real_sessions[-1:])[0]
    extra = decision_ts_from_dates(pd.bdate_range(last + pd.Timedelta(days=1), f"{last.year + 1}-12-31"))
    longer = real_sessions.append(extra)
    plan2 = plan_folds(longer, real_usable(longer), s)
    outer2 = plan2.loc[plan2["inner"] == -1, "fold"].tolist()
    assert outer2 == plan.loc[plan["inner"] == -1, "fold"].tolist() + [str(last.year + 1)]
    assert validate_plan(plan2, longer, 20) == []
    earlier = plan2[plan2["fold"] < str(last.year)].reset_index(drop=True)
    assert compare_up_to(plan[plan["fold"] < str(last.year)].reset_index(drop=True), earlier, None) == []


def test_required_years_and_first_test_year_are_checked(real_sessions):
    late = pd.Series(real_sessions >= pd.Timestamp("2005-01-01", tz="UTC"), index=real_sessions)
    with pytest.raises(FoldPlanError, match=r"required_oos_years.*\[2008\]"):
        plan_folds(real_sessions, late, Settings(folds=FoldSettings(min_train_years=4)))
    usable = real_usable(real_sessions)
    with pytest.raises(FoldPlanError, match="first_test_year=2006 is not allowed.*2008"):
        plan_folds(real_sessions, usable, make_settings(first_test_year=2006, min_train_years=4))
    plan = plan_folds(real_sessions, usable, make_settings(first_test_year=2010, min_train_years=4))
    assert plan["fold"].iloc[0] == "2010"
    with pytest.raises(FoldPlanError, match="rolling_years=3"):
        plan_folds(real_sessions, usable, make_settings(window="rolling", rolling_years=3, min_train_years=4))
    with pytest.raises(FoldPlanError, match="not enough usable history"):
        plan_folds(real_sessions[:900], usable.iloc[:900], make_settings(min_train_years=4))
    with pytest.raises(FoldPlanError, match="too short"):
        plan_folds(real_sessions, usable, make_settings(min_train_years=1, n_inner_folds=6, inner_test_sessions=400))


@pytest.fixture(scope="module")
def real_plan(real_sessions):
    return plan_folds(
        real_sessions, real_usable(real_sessions), make_settings(inner_scheme="purged_kfold", embargo_sessions=10)
    )


def moved(sessions: pd.DatetimeIndex, ts: pd.Timestamp, by: int) -> pd.Timestamp:
    return sessions[sessions.get_loc(ts) + by]


# the structured rule each broken plan must be reported under (checks select violations by rule)
RULES = {
    "train_purge": {"label_window"},
    "val_purge": {"purge_gap"},
    "inner_purge": {"label_window"},
    "embargo": {"embargo"},
    "outer_overlap": {"test_overlap"},
    "inner_in_outer": {"inner_in_outer"},
    "declared_purge": {"declared_purge"},
}


@pytest.mark.parametrize("what", sorted(RULES))
def test_validate_plan_catches_a_broken_plan(real_sessions, real_plan, what):
    plan = real_plan.copy()
    assert validate_plan(plan, real_sessions, 20) == []
    outer = plan.index[(plan["inner"] == -1) & (plan["fold"] == "2012")][0]
    inner0 = outer + 1
    if what == "train_purge":  # shorten the purge before validation by one session
        plan.loc[outer, "train_end"] = moved(real_sessions, plan.loc[outer, "train_end"], 1)
        expected = "label window"
    elif what == "val_purge":  # shorten the purge before the test window by one session
        plan.loc[outer, "val_end"] = moved(real_sessions, plan.loc[outer, "val_end"], 1)
        expected = "purge"
    elif what == "inner_purge":
        plan.loc[inner0, "val_end"] = moved(real_sessions, plan.loc[inner0, "val_end"], 1)
        expected = "label window"
    elif what == "embargo":
        plan.loc[inner0, "train2_start"] = moved(real_sessions, plan.loc[inner0, "train2_start"], -1)
        expected = "embargo"
    elif what == "outer_overlap":
        nxt = plan.index[(plan["inner"] == -1) & (plan["fold"] == "2013")][0]
        plan.loc[nxt, "test_start"] = plan.loc[outer, "test_end"]
        expected = "overlap"
    elif what == "inner_in_outer":
        last_inner = plan.index[(plan["fold"] == "2012") & (plan["inner"] == 2)][0]
        plan.loc[last_inner, "test_end"] = moved(real_sessions, plan.loc[outer, "test_start"], -5)
        expected = "inside the outer validation tail, test window or their purge"
    else:
        plan.loc[outer, "purge"] = 19
        expected = "shorter than the label horizon"
    problems = validate_plan(plan, real_sessions, 20)
    assert problems and any(expected in p.message for p in problems), problems
    assert {p.rule for p in problems} & RULES[what], problems


def synthetic_dataset(n: int = 1600, horizon: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    sessions = decision_ts_from_dates(pd.bdate_range("2010-01-04", periods=n))
    values = rng.normal(size=(n, 3))
    values[:40] = np.nan  # warm-up
    features = pd.DataFrame(values, index=sessions, columns=["f_a", "f_b", "f_c"])
    best = rng.integers(0, 21, n) * 0.05
    best[-horizon:] = np.nan
    labels = pd.DataFrame(
        {
            "best_weight": best,
            "label_class": pd.array(np.where(np.isnan(best), -1, np.floor(best * 10 + 0.5)), dtype="Int64"),
        },
        index=sessions,
    )
    labels.loc[labels["best_weight"].isna(), "label_class"] = pd.NA
    return features, labels


def test_fold_dataset_rows_and_columns():
    features, labels = synthetic_dataset()
    s = make_settings(horizon=10, min_train_years=1, validation_sessions=63, inner_test_sessions=63, n_inner_folds=2)
    usable = usable_sessions(features, labels)
    plan = plan_folds(features.index, usable, s)
    last_fold = plan["fold"].iloc[-1]
    for fold in plan.loc[plan["inner"] == -1, "fold"]:
        for inner in (-1, 0, 1):
            data = fold_dataset(features, labels, plan, fold, inner)
            row = plan[(plan["fold"] == fold) & (plan["inner"] == inner)].iloc[0]
            assert list(data.columns) == ["split", "f_a", "f_b", "f_c", "label_class", "best_weight"]
            fit = data[data["split"].isin(["train", "val"])]
            assert fit["label_class"].notna().all() and fit[["f_a", "f_b", "f_c"]].notna().all().all()
            assert (data["split"] == "train").sum() == row["n_train"] and (data["split"] == "val").sum() == row["n_val"]
            assert (data["split"] == "test").sum() == row["n_test"]
            assert data.index.is_monotonic_increasing
    tail = fold_dataset(features, labels, plan, last_fold)
    assert tail.loc[tail["split"] == "test", "label_class"].iloc[-10:].isna().all()  # decisions without labels
    with pytest.raises(ValueError, match="not in the plan"):
        fold_dataset(features, labels, plan, "1990")
    broken = features.copy()
    broken.iloc[-3, 1] = np.nan
    with pytest.raises(InputDataError, match="test session with a non-finite feature") as err:
        fold_dataset(broken, labels, plan, last_fold)
    assert err.value.column == "f_b"


def test_the_promoted_allocators_inner_splits_follow_the_folds_rule(real_sessions):
    """plan_final lays the folds' inner splits over all labelled data: the same number of held-out
    blocks of the same length, the last one ending where the promoted model's train-proper ends
    (before its validation tail and purge), each sound by the plan's own rules (its only
    'violation' is having no outer test window, by design)."""
    settings = make_settings()
    usable = real_usable(real_sessions)
    final = plan_final(real_sessions, usable, settings)
    fs = settings.folds
    assert list(final["fold"].unique()) == [FINAL_FOLD] and list(final["inner"]) == list(range(fs.n_inner_folds))
    assert (final["n_test"] == fs.inner_test_sessions).all() and (final["n_val"] == fs.validation_sessions).all()
    # the region ends where the promoted model's own train-proper ends: before the purge that
    # precedes its validation tail (the last validation_sessions usable sessions)
    pos = np.flatnonzero(usable.reindex(real_sessions, fill_value=False).to_numpy())
    train_end = pos[pos < pos[-fs.validation_sessions] - settings.purge][-1]
    assert final["test_end"].iloc[-1] == real_sessions[train_end]
    violations = validate_plan(final, real_sessions, settings.labels.horizon)
    assert {v.rule for v in violations} == {"no_outer_row"}


def label_window_overlaps(plan: pd.DataFrame, sessions: pd.DatetimeIndex, horizon: int) -> list[str]:
    """From first principles, without ``split_labels`` or ``validate_plan``: every fitted decision
    ``t`` of a plan row whose information overlaps a held-out decision of the same row.

    A decision ``x`` carries the label window ``{x+1, ..., x+H}`` (session positions). A fitted row
    (train and train2 against validation and test; validation against test) and a held-out row must
    not share a label session, and neither's label window may contain the other's decision. The
    sessions each held-out range's decisions and label windows cover are marked one by one, then
    every fitted decision's own session and label window are looked up in those marks.
    """
    position = {ts: i for i, ts in enumerate(sessions)}
    n = len(sessions) + horizon + 1
    found = []
    for _, row in plan.iterrows():

        def members(name: str, row: pd.Series = row) -> list[int]:
            start, end = row[f"{name}_start"], row[f"{name}_end"]
            if pd.isna(start) or pd.isna(end):
                return []
            return list(range(position[start], position[end] + 1))

        fitted = {"train": members("train") + members("train2"), "val": members("val")}
        for fit_name, held_name in (("train", "val"), ("train", "test"), ("val", "test")):
            decision = np.zeros(n, dtype=bool)  # sessions that are a held-out decision
            label = np.zeros(n, dtype=bool)  # sessions inside some held-out label window
            for d in members(held_name):
                decision[d] = True
                label[d + 1 : d + horizon + 1] = True
            bad = [
                t
                for t in fitted[fit_name]
                if label[t + 1 : t + horizon + 1].any()  # the two label windows share a session
                or decision[t + 1 : t + horizon + 1].any()  # t's label window reads a held-out decision
                or label[t]  # a held-out label window reads t's session
            ]
            if bad:
                found.append(
                    f"{row['fold']}/{row['inner']}: {len(bad)} {fit_name} rows overlap {held_name}, first {bad[0]}"
                )
    return found


@pytest.mark.parametrize("scheme", ["walk_forward", "purged_kfold"])
@pytest.mark.parametrize("embargo", [0, 10, 30])
def test_no_label_window_overlaps_a_held_out_block_in_any_scheme(scheme, embargo):
    sessions = calendar("2003-01-01", 7)
    usable = usable_mask(sessions, 60, 20)
    s = make_settings(
        20, min_train_years=2, validation_sessions=100, inner_test_sessions=126, n_inner_folds=3,
        embargo_sessions=embargo, inner_scheme=scheme,
    )  # fmt: skip
    plan = plan_folds(sessions, usable, s)
    assert label_window_overlaps(plan, sessions, 20) == []
    assert validate_plan(plan, sessions, 20) == []
    if scheme == "purged_kfold":
        inner = plan[(plan["inner"] >= 0) & plan["train2_start"].notna()]
        assert len(inner) > 0
        gaps = [sessions.get_loc(r.train2_start) - sessions.get_loc(r.test_end) - 1 for r in inner.itertuples()]
        assert min(gaps) == 20 + embargo  # purge (H) then embargo after the block


def test_the_old_purged_kfold_gap_is_caught_by_both_checks(real_sessions, real_plan):
    """The plan before issue 21 started train2 ``embargo`` (10) sessions after the block, while the
    block's labels read 20 sessions ahead: 9 label sessions shared. Both checks must say so."""
    plan = real_plan.copy()
    assert label_window_overlaps(plan, real_sessions, 20) == []
    i = plan.index[(plan["fold"] == "2012") & (plan["inner"] == 0)][0]
    old_start = moved(real_sessions, plan.loc[i, "test_end"], 1 + 10)
    plan.loc[i, "train2_start"] = old_start
    overlaps = label_window_overlaps(plan, real_sessions, 20)
    # train2 decisions block_end + 11 .. block_end + 20 share label sessions with the block's
    assert overlaps == [f"2012/0: 10 train rows overlap test, first {real_sessions.get_loc(old_start)}"]
    rules = {p.rule for p in validate_plan(plan, real_sessions, 20)}
    assert {"label_window", "embargo"} <= rules
    # one session short of H is still a shared label session; exactly H after is clean
    for gap, leaks in ((19, True), (20, False)):
        plan.loc[i, "train2_start"] = moved(real_sessions, plan.loc[i, "test_end"], 1 + gap)
        found = [p for p in validate_plan(plan, real_sessions, 20) if p.rule == "label_window"]
        assert bool(found) is leaks, (gap, found)
        assert bool(label_window_overlaps(plan, real_sessions, 20)) is leaks
