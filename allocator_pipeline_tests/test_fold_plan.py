"""The fold plan (core/folds/plan.py) on a small calendar, by hand: five years of business days
(2010-01-04 .. 2014-12-31, 1,303 sessions), H = purge = 20, a validation tail of 100 sessions.

Positions by hand: 2010 has 260 sessions, 2011 260, 2012 261, so 2013 starts at position 781.
The outer 2013 fold's train-proper is every session before ``781 - 20 - 100 - 20 = 641``: 641
sessions; an inner block of 252 ends its region, preceded by a purge, 100 validation sessions and
a purge, leaving 641 - 252 - 140 = 249 training sessions (the module's doctest shows the same).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from allocator_pipeline.core.common.sessions import decision_ts_from_dates
from allocator_pipeline.core.folds.plan import FINAL_FOLD, FoldPlanError, check_sessions, plan_final, plan_folds
from allocator_pipeline.settings import FoldSettings, Settings

SESSIONS = decision_ts_from_dates(pd.bdate_range("2010-01-04", "2014-12-31"))
N = len(SESSIONS)
ALL = pd.Series(True, index=SESSIONS)


def _settings(**folds) -> Settings:
    base = {"min_train_years": 2, "required_oos_years": (), "n_inner_folds": 1, "validation_sessions": 100}
    return Settings(folds=FoldSettings(**{**base, **folds}))


def _raises(message: str):
    return pytest.raises(FoldPlanError, match=f"^{re.escape(message)}$")


def test_the_calendar_this_file_counts_on():
    years = pd.DatetimeIndex(SESSIONS.tz_convert("America/New_York").date).year
    assert N == 1303 and [int((years == y).sum()) for y in range(2010, 2015)] == [260, 260, 261, 261, 261]


def test_the_plan_by_hand():
    plan = plan_folds(SESSIONS, ALL, _settings())
    outer = plan[plan["inner"] == -1].set_index("fold")
    assert outer.index.tolist() == ["2013", "2014"] and (outer["scheme"] == "expanding").all()
    o = outer.loc["2013"]
    assert (o["n_train"], o["n_val"], o["n_test"], o["purge"], o["embargo"]) == (641, 100, 261, 20, 0)
    assert o["train_start"] == SESSIONS[0] and o["train_end"] == SESSIONS[640]
    assert o["val_start"] == SESSIONS[661] and o["val_end"] == SESSIONS[760]
    assert o["test_start"] == SESSIONS[781] and o["test_end"] == SESSIONS[1041] and pd.isna(o["train2_start"])
    inner = plan[(plan["fold"] == "2013") & (plan["inner"] == 0)].iloc[0]
    assert inner["scheme"] == "walk_forward" and inner["train_start"] == SESSIONS[0]
    assert (inner["n_train"], inner["n_val"], inner["n_test"]) == (249, 100, 252)
    assert inner["test_start"] == SESSIONS[389] and inner["test_end"] == SESSIONS[640]
    # before the block: a purge (369..388), validation 269..368, a purge (249..268), train 0..248
    assert inner["val_start"] == SESSIONS[269] and inner["val_end"] == SESSIONS[368]
    assert inner["train_end"] == SESSIONS[248]
    assert outer.loc["2014", "n_train"] == 641 + 261


def test_an_expanding_window_ignores_rolling_years_and_a_rolling_one_keeps_them():
    expanding = plan_folds(SESSIONS, ALL, _settings(rolling_years=2))
    assert expanding.loc[(expanding["fold"] == "2014") & (expanding["inner"] == -1), "n_train"].item() == 902
    rolling = plan_folds(SESSIONS, ALL, _settings(window="rolling", rolling_years=2))
    outer = rolling[(rolling["fold"] == "2014") & (rolling["inner"] == -1)].iloc[0]
    assert outer["scheme"] == "rolling" and outer["n_train"] == 504 and outer["train_start"] == SESSIONS[901 - 503]


def test_sessions_missing_from_usable_or_undefined_there_are_unusable():
    """The first 100 sessions not usable, given as absent or as None: 100 fewer training sessions."""
    absent = pd.Series(True, index=SESSIONS[100:])
    undefined = pd.Series([None] * 100 + [True] * (N - 100), index=SESSIONS, dtype=object)
    for usable in (absent, undefined):
        plan = plan_folds(SESSIONS, usable, _settings())
        outer = plan[(plan["fold"] == "2013") & (plan["inner"] == -1)].iloc[0]
        assert outer["n_train"] == 541 and outer["train_start"] == SESSIONS[100]


def test_first_test_year_at_its_bounds():
    """2013 is the earliest year with two years of training (2012 has only 380 sessions before its
    validation tail); 2014 the last with data: both are allowed, 2012 and 2015 are not."""
    assert plan_folds(SESSIONS, ALL, _settings(first_test_year=2013))["fold"].iloc[0] == "2013"
    assert plan_folds(SESSIONS, ALL, _settings(first_test_year=2014))["fold"].unique().tolist() == ["2014"]
    with _raises(
        "folds.first_test_year=2012 is not allowed: the earliest test year with 2 years of usable training data is 2013"
    ):
        plan_folds(SESSIONS, ALL, _settings(first_test_year=2012))
    with _raises("folds.first_test_year=2015 is after the last year with data (2014)"):
        plan_folds(SESSIONS, ALL, _settings(first_test_year=2015))


def test_the_plans_errors_say_what_to_change():
    with _raises("sessions must be tz-aware UTC decision timestamps"):
        check_sessions(SESSIONS.tz_localize(None))
    with _raises("sessions must be strictly increasing (no duplicates)"):
        check_sessions(SESSIONS[[0, 1, 1, 2]])
    with _raises("sessions must be strictly increasing (no duplicates)"):
        check_sessions(SESSIONS[[0, 0]])
    with _raises("usable must be a boolean Series indexed by decision_ts"):
        plan_folds(SESSIONS, pd.Series(True, index=range(N)), _settings())
    with _raises(
        "folds.rolling_years=2 gives 504 training sessions, fewer than folds.min_train_years=3 (756 sessions): "
        "no fold could start"
    ):
        plan_folds(SESSIONS, ALL, _settings(window="rolling", rolling_years=2, min_train_years=3))
    with _raises(
        "not enough usable history for a first fold: need 1260 usable train-proper sessions "
        "(folds.min_train_years=5) plus a validation tail of 100 and purges of 20; the data has 1303 usable "
        "sessions in total"
    ):
        plan_folds(SESSIONS, ALL, _settings(min_train_years=5))
    # one year of training: the folds are 2012 .. 2014 (2012 has 380 training sessions)
    with _raises(
        "folds.required_oos_years [2010, 2011]: [2010, 2011] not covered by the out-of-sample folds 2012..2014; "
        "provide more history, lower folds.min_train_years, or change folds.required_oos_years"
    ):
        plan_folds(SESSIONS, ALL, _settings(min_train_years=1, required_oos_years=(2010, 2011)))
    with _raises(
        f"fold 2013 inner split 0: the outer training region ({SESSIONS[0].date()} .. {SESSIONS[640].date()}, "
        "641 sessions) is too short for 1 held-out blocks of 600 sessions, each preceded by a validation tail of "
        "100 usable sessions, purges of 20 and some training; raise folds.min_train_years or folds.first_test_year, "
        "or lower folds.n_inner_folds / inner_test_sessions / validation_sessions"
    ):
        plan_folds(SESSIONS, ALL, _settings(inner_test_sessions=600))


def test_the_final_plan_by_hand():
    """All sessions labelled: the final validation tail is the last 100 sessions, so the region
    ends 120 sessions before the end (position 1182); its held-out block is positions 931..1182,
    after a purge, 100 validation sessions (811..910) and a purge: training is positions 0..790.
    A rolling window of 2 years keeps the last 504 of them (287..790)."""
    final = plan_final(SESSIONS, ALL, _settings())
    assert len(final) == 1
    row = final.iloc[0]
    assert row["fold"] == FINAL_FOLD and row["inner"] == 0 and row["scheme"] == "walk_forward"
    assert row["train_start"] == SESSIONS[0] and row["train_end"] == SESSIONS[790] and row["n_train"] == 791
    assert row["val_start"] == SESSIONS[811] and row["val_end"] == SESSIONS[910] and row["n_val"] == 100
    assert row["test_start"] == SESSIONS[931] and row["test_end"] == SESSIONS[1182] and row["n_test"] == 252
    rolling = plan_final(SESSIONS, ALL, _settings(window="rolling", rolling_years=2)).iloc[0]
    assert rolling["n_train"] == 504 and rolling["train_start"] == SESSIONS[287]
    two = plan_final(SESSIONS, ALL, _settings(n_inner_folds=2))
    assert two["inner"].tolist() == [0, 1] and two["test_end"].tolist() == [SESSIONS[930], SESSIONS[1182]]


def test_the_final_plan_refuses_too_little_data():
    one = pd.Series(np.arange(N) == 5, index=SESSIONS)
    with _raises("not enough usable sessions for the promoted allocator's validation tail"):
        plan_final(SESSIONS, one, _settings())
    with _raises("no usable session: nothing to tune the promoted allocator on"):
        plan_final(SESSIONS, pd.Series(False, index=SESSIONS), _settings())


def test_as_many_inner_blocks_as_fit_and_purged_kfold_trains_after_the_block():
    """Three blocks of 200 need 600 + 141 sessions: the 2013 region (641) holds two, 2014's (902)
    three. Purged k-fold: the first of two blocks (241..440) trains again from 440 + 1 + 20 + 10
    (purge, embargo) to the region's end (640); the last block has nothing after it."""
    plan = plan_folds(SESSIONS, ALL, _settings(n_inner_folds=3, inner_test_sessions=200))
    inner = plan[plan["inner"] >= 0]
    assert inner.groupby("fold")["inner"].count().to_dict() == {"2013": 2, "2014": 3}
    kfold = plan_folds(
        SESSIONS,
        ALL,
        _settings(n_inner_folds=2, inner_test_sessions=200, inner_scheme="purged_kfold", embargo_sessions=10),
    )
    rows = kfold[(kfold["fold"] == "2013") & (kfold["inner"] >= 0)].set_index("inner")
    first, last = rows.loc[0], rows.loc[1]
    assert first["test_start"] == SESSIONS[241] and first["test_end"] == SESSIONS[440] and first["embargo"] == 10
    assert first["train2_start"] == SESSIONS[471] and first["train2_end"] == SESSIONS[640]
    assert first["n_train"] == 101 + 170  # 0..100 before the block, 471..640 after it
    assert pd.isna(last["train2_start"]) and last["n_train"] == 301  # 0..300 before 441, nothing after


def test_a_final_plan_with_a_single_training_session_fails_on_its_inner_split():
    """Usable: session 0, then 21..120 (a purge's gap): the final validation tail (21..120) leaves
    exactly one training session, enough for the tail; the inner block then has no room."""
    pos = np.arange(N)
    usable = pd.Series((pos == 0) | ((pos >= 21) & (pos <= 120)), index=SESSIONS)
    with pytest.raises(FoldPlanError, match=r"^fold final inner split 0: the outer training region .* is too short"):
        plan_final(SESSIONS, usable, _settings())


def test_a_usable_mask_with_gaps_nan_or_another_index_counts_only_true_sessions():
    """The first 100 sessions not usable, given as NaN (undefined, not None) or left out of the mask:
    the final plan trains from position 100 (691 of positions 0..790) and the 2013 fold from 100."""
    nan_mask = pd.Series([np.nan] * 100 + [True] * (N - 100), index=SESSIONS, dtype=object)
    absent = pd.Series(True, index=SESSIONS[100:])
    for usable in (nan_mask, absent):
        final = plan_final(SESSIONS, usable, _settings()).iloc[0]
        assert final["train_start"] == SESSIONS[100] and final["n_train"] == 691
    outer = plan_folds(SESSIONS, nan_mask, _settings())
    outer = outer[(outer["fold"] == "2013") & (outer["inner"] == -1)].iloc[0]
    assert outer["train_start"] == SESSIONS[100] and outer["n_train"] == 541


def test_the_final_plan_lays_out_as_many_blocks_as_fit_and_keeps_an_expanding_window():
    """Four blocks of 300 need 1200 + 141 sessions; the final region (0..1182) holds three, ending
    at 1182, 882 and 582; each is preceded by a purge, 100 validation sessions and a purge. An
    expanding window ignores rolling_years: training from position 0."""
    final = plan_final(SESSIONS, ALL, _settings(n_inner_folds=4, inner_test_sessions=300))
    got = [
        [SESSIONS.get_loc(r[c]) for c in ("train_end", "val_start", "test_start", "test_end")]
        for _, r in final.iterrows()
    ]
    assert final["inner"].tolist() == [0, 1, 2]
    assert got == [[142, 163, 283, 582], [442, 463, 583, 882], [742, 763, 883, 1182]]
    expanding = plan_final(SESSIONS, ALL, _settings(rolling_years=2)).iloc[0]
    assert expanding["train_start"] == SESSIONS[0] and expanding["n_train"] == 791


def test_the_plans_errors_name_the_region_and_the_fold_left_without_training():
    # the first usable session is position 100: the region in the message starts there
    with _raises(
        f"fold 2013 inner split 0: the outer training region ({SESSIONS[100].date()} .. {SESSIONS[640].date()}, "
        "541 sessions) is too short for 1 held-out blocks of 600 sessions, each preceded by a validation tail of "
        "100 usable sessions, purges of 20 and some training; raise folds.min_train_years or folds.first_test_year, "
        "or lower folds.n_inner_folds / inner_test_sessions / validation_sessions"
    ):
        plan_folds(SESSIONS, pd.Series(True, index=SESSIONS[100:]), _settings(inner_test_sessions=600))
    # usable 0..397 and 921..: 2014's validation tail is 922..1021, and its rolling two years before
    # the purge (398..901) fall in the hole
    pos = np.arange(N)
    holed = pd.Series((pos <= 397) | (pos >= 921), index=SESSIONS)
    with _raises("fold 2014: no usable train-proper sessions before its validation tail"):
        plan_folds(
            SESSIONS, holed, _settings(window="rolling", rolling_years=2, min_train_years=1, inner_test_sessions=63)
        )
