"""The walk-forward fold plan (docs/design.md section 3), as data.

Sessions are counted by position on the session calendar (``decision_ts``, UTC). A label at
session ``t`` reads the returns of sessions ``t + 1 .. t + H``. With ``purge >= H``:

* **Outer fold** ``"YYYY"``: the test window is every session of calendar year YYYY (session
  date in New York), labelled or not (the last H sessions of the data are decisions without a
  label). The training region is the usable sessions before the test window minus the ``purge``
  sessions right before it (so no training label window reaches a test decision). Its last
  ``validation_sessions`` usable sessions are the validation tail, separated from train-proper
  by another purge. ``window='expanding'`` keeps all earlier usable sessions in train-proper;
  ``'rolling'`` keeps the last ``rolling_years * 252`` sessions of it.
* **Inner splits** ``0 .. n_inner_folds - 1`` (tuning) live inside the outer fold's train-proper
  region, which ends before the outer purge and validation tail: the rows that early-stop, blend,
  calibrate and estimate ``M`` never serve as a tuning block, and the outer test window is never
  seen. The last ``n_inner_folds`` blocks of ``inner_test_sessions`` sessions of that region are
  the held-out blocks (the plan's ``test_*`` columns); an early fold whose region is too short for
  them all gets fewer (at least one).
  ``walk_forward``: train-proper, purge, validation tail, purge, block, with the same layout as
  the outer fold. ``purged_kfold``: the same, plus a second training range after the block
  (``train2_start .. train2_end``, up to the end of the region) that starts ``purge + embargo``
  sessions after the block ends: the purge (``>= H``) keeps every training label window
  (``t+1 .. t+H``) clear of the block's label windows and decisions, the embargo then drops
  ``embargo`` more sessions (serial correlation), as before the block.
* The first outer fold is the first year whose train-proper has at least
  ``min_train_years * 252`` usable sessions (or ``first_test_year`` if set and allowed); the last
  is the last calendar year with any session, so a new year of data adds a fold by itself.

Plan columns: ``fold`` (str), ``inner`` (int, -1 = outer), ``scheme`` (outer rows: the window
type ``expanding``/``rolling``; inner rows: ``walk_forward``/``purged_kfold``), ``train_start,
train_end, train2_start, train2_end, val_start, val_end, test_start, test_end`` (decision_ts,
UTC, inclusive; ``train2_*`` NaT when unused), ``purge`` and ``embargo`` (sessions; the embargo
is 0 where no training range follows a held-out block), ``n_train, n_val`` (usable sessions in
the ranges), ``n_test`` (sessions in the test window).

``split_labels``, ``fold_dataset`` and ``validate_plan`` (in ``core/folds/checks.py``)
turn a plan row into per-session splits, the fold's rows, and the list of violations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.sessions import SESSIONS_PER_YEAR, session_dates
from allocator_pipeline.settings import Settings

PLAN_COLUMNS = [
    "fold",
    "inner",
    "scheme",
    "train_start",
    "train_end",
    "train2_start",
    "train2_end",
    "val_start",
    "val_end",
    "test_start",
    "test_end",
    "purge",
    "embargo",
    "n_train",
    "n_val",
    "n_test",
]
TIMESTAMP_COLUMNS = [
    "train_start",
    "train_end",
    "train2_start",
    "train2_end",
    "val_start",
    "val_end",
    "test_start",
    "test_end",
]


class FoldPlanError(ValueError):
    """The data or the settings do not allow the requested fold plan; the message says why."""


@dataclass(frozen=True)
class _Layout:
    """Positions (on the session calendar) of one split's usable train-proper and validation rows."""

    train: np.ndarray
    val: np.ndarray
    train2: np.ndarray


def check_sessions(sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Validate a session calendar: tz-aware UTC, strictly increasing."""
    idx = pd.DatetimeIndex(sessions)
    if idx.tz is None:
        raise FoldPlanError("sessions must be tz-aware UTC decision timestamps")
    if len(idx) > 1 and not (np.diff(idx.asi8) > 0).all():
        raise FoldPlanError("sessions must be strictly increasing (no duplicates)")
    return idx


def _layout(
    usable_pos: np.ndarray, start: int, end: int, validation: int, purge: int, rolling: int | None
) -> _Layout | None:
    """Train-proper + purge + validation tail inside positions ``start .. end``; None if too short."""
    candidates = usable_pos[(usable_pos >= start) & (usable_pos <= end)]
    if len(candidates) < validation + 1:
        return None
    val = candidates[-validation:]
    train_end = val[0] - purge - 1
    train = candidates[candidates <= train_end]
    if rolling is not None:
        train = train[train > train_end - rolling]
    if len(train) == 0:
        return None
    return _Layout(train=train, val=val, train2=np.empty(0, dtype=np.int64))


def _row(
    sessions: pd.DatetimeIndex,
    fold: str,
    inner: int,
    scheme: str,
    layout: _Layout,
    test: tuple[int, int],
    purge: int,
    embargo: int,
) -> dict:
    def ts(pos: np.ndarray, which: int) -> pd.Timestamp:
        return sessions[int(pos[which])] if len(pos) else pd.NaT

    return {
        "fold": fold,
        "inner": inner,
        "scheme": scheme,
        "train_start": ts(layout.train, 0),
        "train_end": ts(layout.train, -1),
        "train2_start": ts(layout.train2, 0),
        "train2_end": ts(layout.train2, -1),
        "val_start": ts(layout.val, 0),
        "val_end": ts(layout.val, -1),
        "test_start": sessions[test[0]],
        "test_end": sessions[test[1]],
        "purge": purge,
        "embargo": embargo,
        "n_train": len(layout.train) + len(layout.train2),
        "n_val": len(layout.val),
        "n_test": test[1] - test[0] + 1,
    }


def _inner_rows(
    sessions: pd.DatetimeIndex,
    usable_pos: np.ndarray,
    fold: str,
    region: tuple[int, int],
    settings: Settings,
    rolling: int | None,
    n_inner: int | None = None,
) -> list[dict]:
    fs = settings.folds
    purge, length = settings.purge, fs.inner_test_sessions
    n_inner = fs.n_inner_folds if n_inner is None else n_inner
    start, end = region
    rows = []
    for k in range(n_inner):
        block_start = end - (n_inner - k) * length + 1
        block_end = block_start + length - 1
        layout = (
            _layout(usable_pos, start, block_start - purge - 1, fs.validation_sessions, purge, rolling)
            if block_start > start
            else None
        )
        if layout is None:
            raise FoldPlanError(
                f"fold {fold} inner split {k}: the outer training region ({sessions[start].date()} .. "
                f"{sessions[end].date()}, {end - start + 1} sessions) is too short for {n_inner} held-out blocks "
                f"of {length} sessions, each preceded by a validation tail of {fs.validation_sessions} usable "
                f"sessions, purges of {purge} and some training; raise folds.min_train_years or "
                f"folds.first_test_year, or lower folds.n_inner_folds / inner_test_sessions / validation_sessions"
            )
        embargo = 0
        if fs.inner_scheme == "purged_kfold":
            embargo = fs.embargo_sessions
            # purge, then embargo: a label window of a training row after the block must not
            # overlap the block's label windows (``block_end + 1 .. block_end + H``)
            after = usable_pos[(usable_pos >= block_end + 1 + purge + embargo) & (usable_pos <= end)]
            layout = _Layout(train=layout.train, val=layout.val, train2=after)
        rows.append(_row(sessions, fold, k, fs.inner_scheme, layout, (block_start, block_end), purge, embargo))
    return rows


def _inner_count(
    sessions: pd.DatetimeIndex,
    usable_pos: np.ndarray,
    fold: str,
    region: tuple[int, int],
    settings: Settings,
    rolling: int | None,
) -> int:
    """How many of the ``n_inner_folds`` held-out blocks fit in the region (at least one, else the
    error of a single block): an early fold with a short training region tunes on fewer splits."""
    for n in range(settings.folds.n_inner_folds, 1, -1):
        try:
            _inner_rows(sessions, usable_pos, fold, region, settings, rolling, n)
            return n
        except FoldPlanError:
            continue
    _inner_rows(sessions, usable_pos, fold, region, settings, rolling, 1)  # raises when not even one fits
    return 1


def plan_folds(sessions: pd.DatetimeIndex, usable: pd.Series, settings: Settings) -> pd.DataFrame:
    """The walk-forward plan: one row per outer fold and per inner split (see module docstring).

    Parameters
    ----------
    sessions : pandas.DatetimeIndex
        The session calendar (``decision_ts``, UTC), e.g. the feature table's index, including
        warm-up and unlabelled sessions: purges and embargoes are counted on it.
    usable : pandas.Series of bool
        Indexed by decision_ts: True where a session may train or validate (labelled and every
        feature present). Missing sessions count as unusable.
    settings : Settings
        ``settings.folds`` (FoldSettings) and ``settings.purge`` (sessions, default H).

    Returns
    -------
    pandas.DataFrame
        The plan (columns ``PLAN_COLUMNS``), outer rows in test-year order, each followed by its
        inner splits.

    Raises
    ------
    FoldPlanError
        Not enough usable history for the first fold, an inadmissible ``first_test_year``, a
        rolling window shorter than ``min_train_years``, an inner split without room, or a
        ``required_oos_years`` year not covered by the folds.

    Examples
    --------
    Five years of sessions, two test years, one inner split each; the purge (H = 20 sessions)
    separates the validation tail from the test window:

    >>> import pandas as pd
    >>> from allocator_pipeline.core.common.sessions import decision_ts_from_dates
    >>> from allocator_pipeline.settings import load_settings
    >>> sessions = decision_ts_from_dates(pd.bdate_range("2010-01-04", "2014-12-31"))
    >>> settings = load_settings(environ={}, overrides={"folds": {
    ...     "min_train_years": 2, "first_test_year": 2013, "required_oos_years": [],
    ...     "n_inner_folds": 1, "validation_sessions": 100}})
    >>> plan = plan_folds(sessions, pd.Series(True, index=sessions), settings)
    >>> print(plan[["fold", "inner", "n_train", "n_val", "n_test", "purge"]].to_string())
       fold  inner  n_train  n_val  n_test  purge
    0  2013     -1      641    100     261     20
    1  2013      0      249    100     252     20
    2  2014     -1      902    100     261     20
    3  2014      0      510    100     252     20
    >>> outer = plan.iloc[0]
    >>> sessions.get_loc(outer["test_start"]) - sessions.get_loc(outer["val_end"]) - 1
    20
    """
    sessions = check_sessions(sessions)
    fs = settings.folds
    purge = settings.purge
    if not isinstance(usable.index, pd.DatetimeIndex):
        raise FoldPlanError("usable must be a boolean Series indexed by decision_ts")
    usable_arr = usable.reindex(sessions, fill_value=False).fillna(False).to_numpy(dtype=bool)
    usable_pos = np.flatnonzero(usable_arr)
    years = session_dates(sessions).year.to_numpy()
    unique_years = np.unique(years)
    first_pos = {int(y): int(np.argmax(years == y)) for y in unique_years}
    last_pos = {int(y): int(len(years) - 1 - np.argmax(years[::-1] == y)) for y in unique_years}
    min_train = fs.min_train_years * SESSIONS_PER_YEAR
    rolling = fs.rolling_years * SESSIONS_PER_YEAR if fs.window == "rolling" else None
    if rolling is not None and rolling < min_train:
        raise FoldPlanError(
            f"folds.rolling_years={fs.rolling_years} gives {rolling} training sessions, fewer than "
            f"folds.min_train_years={fs.min_train_years} ({min_train} sessions): no fold could start"
        )

    def outer_layout(year: int) -> _Layout | None:
        return _layout(usable_pos, 0, first_pos[year] - purge - 1, fs.validation_sessions, purge, rolling)

    earliest = next(
        (int(y) for y in unique_years if (lay := outer_layout(int(y))) is not None and len(lay.train) >= min_train),
        None,
    )
    if earliest is None:
        raise FoldPlanError(
            f"not enough usable history for a first fold: need {min_train} usable train-proper sessions "
            f"(folds.min_train_years={fs.min_train_years}) plus a validation tail of {fs.validation_sessions} "
            f"and purges of {purge}; the data has {len(usable_pos)} usable sessions in total"
        )
    first = earliest
    if fs.first_test_year is not None:
        if fs.first_test_year < earliest:
            raise FoldPlanError(
                f"folds.first_test_year={fs.first_test_year} is not allowed: the earliest test year with "
                f"{fs.min_train_years} years of usable training data is {earliest}"
            )
        if fs.first_test_year > int(unique_years[-1]):
            raise FoldPlanError(
                f"folds.first_test_year={fs.first_test_year} is after the last year with data ({unique_years[-1]})"
            )
        first = fs.first_test_year
    test_years = [int(y) for y in unique_years if y >= first]
    missing = [y for y in fs.required_oos_years if y not in test_years]
    if missing:
        raise FoldPlanError(
            f"folds.required_oos_years {list(fs.required_oos_years)}: {missing} not covered by the "
            f"out-of-sample folds {test_years[0]}..{test_years[-1]}; provide more history, lower "
            f"folds.min_train_years, or change folds.required_oos_years"
        )
    rows: list[dict] = []
    for year in test_years:
        fold = str(year)
        layout = outer_layout(year)
        if layout is None:  # only possible with a long hole in the usable sessions
            raise FoldPlanError(f"fold {fold}: no usable train-proper sessions before its validation tail")
        test = (first_pos[year], last_pos[year])
        rows.append(_row(sessions, fold, -1, fs.window, layout, test, purge, 0))
        region = (int(layout.train[0]), int(layout.train[-1]))
        rows.extend(
            _inner_rows(
                sessions,
                usable_pos,
                fold,
                region,
                settings,
                rolling,
                _inner_count(sessions, usable_pos, fold, region, settings, rolling),
            )
        )
    return _plan_frame(rows)


def _plan_frame(rows: list[dict]) -> pd.DataFrame:
    """Plan rows as the typed plan table (UTC timestamps, string keys, int64 counts)."""
    plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    for col in TIMESTAMP_COLUMNS:
        plan[col] = pd.to_datetime(plan[col], utc=True).astype("datetime64[ns, UTC]")
    types = {
        "fold": "str",
        "scheme": "str",
        **{c: "int64" for c in ("inner", "purge", "embargo", "n_train", "n_val", "n_test")},
    }
    return plan.astype(types)


FINAL_FOLD = "final"
"""The fold key of the promoted allocator's own tuning study (inner splits over all labelled data)."""


def plan_final(sessions: pd.DatetimeIndex, usable: pd.Series, settings: Settings) -> pd.DataFrame:
    """The inner splits of the promoted allocator: the folds' rule applied to all labelled data.

    A fold tunes on inner walk-forward splits laid out in its training region (its first usable
    session to the purge before its test window). The promoted allocator has no test window: its
    region ends at the last usable (labelled) session, and the same number of held-out blocks of
    the same length, each after a purged validation tail, are laid out before that end. Rows as
    in :func:`plan_folds`, ``fold`` = :data:`FINAL_FOLD`, ``inner`` = 0, 1, ...

    Raises
    ------
    FoldPlanError
        Not enough usable history for the inner splits.
    """
    sessions = check_sessions(sessions)
    usable_pos = np.flatnonzero(usable.reindex(sessions, fill_value=False).fillna(False).to_numpy(dtype=bool))
    if len(usable_pos) == 0:
        raise FoldPlanError("no usable session: nothing to tune the promoted allocator on")
    rolling = settings.folds.rolling_years * SESSIONS_PER_YEAR if settings.folds.window == "rolling" else None
    layout = _layout(usable_pos, 0, int(usable_pos[-1]), settings.folds.validation_sessions, settings.purge, rolling)
    if layout is None:
        raise FoldPlanError("not enough usable sessions for the promoted allocator's validation tail")
    region = (int(usable_pos[0]), int(layout.train[-1]))
    n_inner = _inner_count(sessions, usable_pos, FINAL_FOLD, region, settings, rolling)
    rows = _inner_rows(sessions, usable_pos, FINAL_FOLD, region, settings, rolling, n_inner)
    return _plan_frame(rows)


__all__ = ["FINAL_FOLD", "PLAN_COLUMNS", "FoldPlanError", "check_sessions", "plan_final", "plan_folds"]
