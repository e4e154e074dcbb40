"""The live monitor: is the promoted allocator earning live what its walk-forward backtest said?

After each daily decision the monitor compares the promoted allocator's realised record with the
evidence that accepted it, and says when to look.

Realised return since promotion
    The logged decisions (``decisions/log.parquet``: ``w_qqq``, ``exposure``) from the first session
    after the hand-over, through the first session missing from the log, are backtested with the
    project's engine (:func:`~allocator_pipeline.core.evaluation.backtest.run_backtest`, the
    promoted settings' costs and ``execution_lag``) on the legs as they arrive: a decision at
    session ``d`` earns the returns of ``d + 1``, so the last decision is realised once the next
    session's legs are in. The engine starts at the hand-over session holding the walk-forward
    path's book there (and its pending decisions, with an execution lag), so the first decision
    trades from that book drifted through its session, as the backtest's continuous book does.
    The live return over ``k`` realised sessions is ``prod(1 + ret_t) - 1`` (a fraction).

Range the backtest gives for a stretch of the same length
    The verdict's own block bootstrap: the out-of-sample allocator daily net returns
    (``oos_daily.parquet``, ``ret_allocator``; ``n`` sessions) resampled with the stationary
    bootstrap of :func:`~allocator_pipeline.core.evaluation.bootstrap.stationary_indices` with the
    verdict's block length, resamples and seed (``metrics.json``, ``bootstrap``). The first ``k``
    positions of each resample are a stretch of ``k`` sessions (a stationary bootstrap sequence is
    stationary, so any window of it is one; when ``k > n`` independent resamples are chained). The
    range is the central ``confidence`` interval of the stretches' compounded returns, the verdict's
    confidence (0.90 by default: the 5% and 95% quantiles), computed for every prefix length
    ``1 .. k`` (the band of the chart).

Model age, drift, out-of-range inputs, arriving inputs
    The model's age is the sessions of the leg data after its training end (as the daily decision
    counts it); the drift status is the latest decision's envelope ``drift_status``; the share of
    out-of-range sessions is the share of logged decisions whose inputs left the model's training
    range (``out_of_range``: the baseline weight was held). The inputs are late by the NYSE sessions
    closed by ``now`` (the close, 16:00 New York) after the latest leg session.

The three warnings (:func:`monitor_warnings`) use ``live.max_model_age_sessions``,
``live.age_warning_sessions`` and ``live.max_stale_sessions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.path import AllocatorState
from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.grid import OUT_OF_RANGE_COLUMN
from allocator_pipeline.core.common.sessions import decision_ts_for, session_dates
from allocator_pipeline.core.evaluation.backtest import RETURN_COLUMNS, run_backtest
from allocator_pipeline.core.evaluation.bootstrap import stationary_indices
from allocator_pipeline.core.inputs.calendar import nyse_sessions
from allocator_pipeline.settings import LiveSettings, Settings

MONITOR_CHECKS = ("live_return_in_range", "model_age_below_limit", "inputs_arriving")
"""The live monitor's asset checks (each warns, severity WARN), in the order of :func:`monitor_warnings`."""


def _date(ts: pd.Timestamp) -> str:
    return str(session_dates(pd.DatetimeIndex([ts]))[0].date())


def live_decisions(log: pd.DataFrame, handover: pd.Timestamp, sessions: pd.DatetimeIndex) -> tuple[pd.DataFrame, int]:
    """The logged decisions after the hand-over that form one run of consecutive sessions.

    Parameters
    ----------
    log : DataFrame
        The decision log (index: session date strings; ``w_qqq``, ``exposure``).
    handover : Timestamp
        The hand-over session (decision_ts); the promoted model decides the sessions after it.
    sessions : DatetimeIndex
        The leg panel's sessions (decision_ts, UTC).

    Returns
    -------
    decisions : DataFrame
        Index decision_ts; ``w`` and ``exposure``: the logged decisions from the first session after
        the hand-over through the session before the first one the log lacks.
    missing : int
        Sessions of the data between the hand-over and the latest logged decision that the log lacks.
    """
    logged = pd.DatetimeIndex([decision_ts_for(pd.Timestamp(s)) for s in log.index], dtype="datetime64[ns, UTC]")
    frame = pd.DataFrame(
        {"w": log["w_qqq"].to_numpy(dtype=float), "exposure": log["exposure"].to_numpy(dtype=float)}, index=logged
    ).sort_index()
    frame = frame[frame.index > handover]
    after = sessions[sessions > handover]
    if len(frame) == 0:
        return frame, 0
    expected = after[after <= frame.index[-1]]
    present = expected.isin(frame.index)
    missing = int((~present).sum())
    run = expected[: int(np.argmin(present)) if not present.all() else len(expected)]
    return frame.loc[run], missing


def live_backtest(
    decisions: pd.DataFrame, legs: pd.DataFrame, handover: AllocatorState, settings: Settings
) -> pd.DataFrame:
    """The realised returns of the live decisions (:func:`live_decisions`, from the session after
    the hand-over), continuing the walk-forward path's book.

    The engine starts at the hand-over session holding the book the path holds there
    (``handover.envelope.book``) with its ``execution_lag`` decisions still pending
    (``handover.envelope.pending``, placed on the sessions that decided them), so the first live
    decision trades from that book drifted through its session, exactly as the walk-forward
    backtest's continuous book does. Rows: the decisions whose next session is in ``legs``.
    """
    returns = legs[list(RETURN_COLUMNS)]
    lag = settings.backtest.execution_lag
    w_book, e_book = handover.envelope.book
    at = returns.index.get_loc(handover.session)
    if lag:  # the pending decisions on their sessions, the book held before them
        start = pd.DataFrame(list(handover.envelope.pending)[-lag:], columns=["w", "exposure"])
        start.index = returns.index[at - lag + 1 : at + 1]
        book: tuple[float, float] | None = (e_book * w_book, e_book * (1.0 - w_book))
    else:  # the hand-over's own decision is the book held
        start = pd.DataFrame({"w": [w_book], "exposure": [e_book]}, index=returns.index[at : at + 1])
        book = None
    path = run_backtest(
        pd.concat([start, decisions[["w", "exposure"]]]),
        returns,
        CostModel.from_settings(settings.costs),
        initial_book=book,
        execution_lag=lag,
    )
    return path.loc[path.index > handover.session]


def stretch_band(oos_returns: np.ndarray, sessions: int, bootstrap: Mapping[str, Any]) -> pd.DataFrame:
    """The range of the compounded return over stretches of ``1 .. sessions`` sessions.

    Parameters
    ----------
    oos_returns : ndarray
        The walk-forward allocator's out-of-sample daily net returns (fractions), in session order.
    sessions : int
        The longest stretch (>= 1).
    bootstrap : mapping
        The verdict's bootstrap settings: ``block_length`` (mean, sessions), ``resamples``, ``seed``,
        ``confidence`` (two-sided, in (0.5, 1)).

    Returns
    -------
    DataFrame
        Index ``1 .. sessions`` (the stretch length); ``lower``, ``median``, ``upper``: quantiles
        ``(1 - c) / 2``, 0.5 and ``(1 + c) / 2`` of the compounded return (fractions).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> band = stretch_band(rng.normal(0.0004, 0.01, 500), 20,
    ...                     {"block_length": 10, "resamples": 400, "seed": 1, "confidence": 0.9})
    >>> bool((band["lower"] < band["median"]).all() and (band["median"] < band["upper"]).all())
    True
    >>> bool(band["upper"].iloc[-1] - band["lower"].iloc[-1] > band["upper"].iloc[0] - band["lower"].iloc[0])
    True
    """
    r = np.asarray(oos_returns, dtype=float)
    if r.ndim != 1 or len(r) == 0 or not np.isfinite(r).all():
        raise InputDataError(
            "the out-of-sample allocator returns must be a non-empty finite series", column="ret_allocator"
        )
    if sessions < 1:
        raise InputDataError("a stretch has at least one session", value=sessions)
    rng = np.random.default_rng(int(bootstrap["seed"]))
    resamples, block = int(bootstrap["resamples"]), float(bootstrap["block_length"])
    parts, have = [], 0
    while have < sessions:  # chain independent resamples when the stretch is longer than the history
        parts.append(stationary_indices(len(r), resamples, block, rng))
        have += len(r)
    idx = np.concatenate(parts, axis=1)[:, :sessions]
    growth = np.cumprod(1.0 + r[idx], axis=1) - 1.0
    c = float(bootstrap["confidence"])
    lower, median, upper = np.quantile(growth, [(1.0 - c) / 2.0, 0.5, (1.0 + c) / 2.0], axis=0)
    return pd.DataFrame(
        {"lower": lower, "median": median, "upper": upper}, index=pd.RangeIndex(1, sessions + 1, name="sessions")
    )


def sessions_behind(last_leg: pd.Timestamp, now: pd.Timestamp) -> tuple[int, str]:
    """NYSE sessions closed by ``now`` after the latest leg session ``last_leg`` (decision_ts), and
    the latest such session's date (the calendar's latest expected session).

    >>> ts = decision_ts_for(pd.Timestamp("2025-09-26"))
    >>> sessions_behind(ts, pd.Timestamp("2025-09-29 19:00", tz="UTC"))  # Monday before the close
    (0, '2025-09-26')
    >>> sessions_behind(ts, pd.Timestamp("2025-10-01 22:00", tz="UTC"))  # Wednesday after the close
    (3, '2025-10-01')
    """
    now = pd.Timestamp(now).tz_convert("UTC")
    dates = nyse_sessions(
        session_dates(pd.DatetimeIndex([last_leg]))[0], now.tz_convert("America/New_York").tz_localize(None)
    )
    closed = [d for d in dates if decision_ts_for(d) <= now]
    expected = closed[-1] if closed else session_dates(pd.DatetimeIndex([last_leg]))[0]
    return max(len(closed) - 1, 0), str(expected.date())


def monitor_summary(
    log: pd.DataFrame,
    decisions: Mapping[str, Mapping[str, Any]],
    legs: pd.DataFrame,
    manifest: Mapping[str, Any],
    verdict: Mapping[str, Any],
    oos_daily: pd.DataFrame,
    settings: Settings,
    now: pd.Timestamp,
) -> dict[str, Any]:
    """The live monitor's figures (module docstring), JSON-ready.

    Parameters
    ----------
    log : DataFrame
        The decision log (``decisions/log.parquet``).
    decisions : mapping
        Session date -> that session's decision file (``out_of_range``, ``envelope.drift_status``).
    legs : DataFrame
        The leg panel as it arrives (``qqq_leg_return``, ``spy_leg_return``, ``cash_return``).
    manifest : mapping
        The promotion manifest (``model_id``, ``val_end``, ``handover_state``).
    verdict : mapping
        The promoted version's ``metrics.json`` (its ``bootstrap`` settings).
    oos_daily : DataFrame
        The walk-forward backtest's out-of-sample rows (``ret_allocator``).
    settings : Settings
        The promoted settings (costs, ``backtest.execution_lag``, ``live``).
    now : Timestamp
        The time the inputs are judged against (tz-aware).

    Returns
    -------
    dict
        ``model_id``, ``handover_session``, ``decisions``, ``missing_decisions``,
        ``last_decision_session``, ``realised_sessions``, ``live_return``, ``range`` (``lower``,
        ``median``, ``upper``, ``confidence``, ``block_length``, ``resamples``, ``seed``,
        ``oos_sessions``), ``below_range``, ``sessions_below_range``, ``model_age_sessions``,
        ``max_model_age_sessions``, ``age_warning_from``, ``drift_status``, ``share_out_of_range``,
        ``last_leg_session``, ``latest_expected_session``, ``sessions_behind``, ``as_of`` and
        ``path`` (per realised session: ``session``, ``live_return``, ``lower``, ``upper``).
    """
    state = AllocatorState.from_dict(manifest["handover_state"])
    handover = state.session
    run, missing = live_decisions(log, handover, legs.index)
    bt = live_backtest(run, legs, state, settings)
    boot = verdict.get("bootstrap") or {}
    if not boot:
        raise InputDataError("the promoted verdict has no bootstrap settings (metrics.json 'bootstrap')")
    if int(boot.get("n_sessions", len(oos_daily))) != len(oos_daily):
        raise InputDataError(
            f"oos_daily has {len(oos_daily)} sessions, the promoted verdict's bootstrap {boot['n_sessions']}: "
            "not the backtest that promoted this model (promote it again: `allocator backtest`)",
            column="ret_allocator",
        )
    k = len(bt)
    live = np.cumprod(1.0 + bt["ret"].to_numpy(dtype=float)) - 1.0
    band = stretch_band(oos_daily["ret_allocator"].to_numpy(dtype=float), max(k, 1), boot)
    final = band.iloc[k - 1] if k else None
    below = live < band["lower"].to_numpy()[:k]
    trained = pd.Timestamp(manifest["val_end"])
    trained = trained.tz_localize("UTC") if trained.tz is None else trained.tz_convert("UTC")
    age = int((legs.index > trained).sum())
    behind, expected = sessions_behind(legs.index[-1], now)
    files = [decisions[s] for s in log.index if s in decisions and decision_ts_for(pd.Timestamp(s)) > handover]
    latest = files[-1] if files else {}
    return {
        "model_id": str(manifest["model_id"]),
        "handover_session": _date(handover),
        "decisions": len(files),
        "missing_decisions": missing,
        "last_decision_session": latest.get("session"),
        "realised_sessions": k,
        "live_return": float(live[-1]) if k else None,
        "range": {
            **{q: float(final[q]) if final is not None else None for q in ("lower", "median", "upper")},
            "confidence": float(boot["confidence"]),
            "block_length": float(boot["block_length"]),
            "resamples": int(boot["resamples"]),
            "seed": int(boot["seed"]),
            "oos_sessions": len(oos_daily),
        },
        "below_range": bool(below[-1]) if k else False,
        "sessions_below_range": int(below.sum()),
        "model_age_sessions": age,
        "max_model_age_sessions": settings.live.max_model_age_sessions,
        "age_warning_from": max(settings.live.max_model_age_sessions - settings.live.age_warning_sessions, 0),
        "drift_status": (latest.get("envelope") or {}).get("drift_status"),
        "share_out_of_range": (float(np.mean([bool(d.get(OUT_OF_RANGE_COLUMN)) for d in files])) if files else None),
        "last_leg_session": _date(legs.index[-1]),
        "latest_expected_session": expected,
        "sessions_behind": behind,
        "as_of": pd.Timestamp(now).tz_convert("UTC").isoformat(),
        "path": [
            {"session": _date(ts), "live_return": float(v), "lower": float(lo), "upper": float(hi)}
            for ts, v, lo, hi in zip(bt["realized_ts"], live, band["lower"], band["upper"])
        ],
    }


def monitor_warnings(summary: Mapping[str, Any], live: LiveSettings) -> dict[str, tuple[bool, str]]:
    """Each of :data:`MONITOR_CHECKS` -> ``(passed, description)`` for a :func:`monitor_summary`.

    * ``live_return_in_range``: fails when the live return is below the range's lower bound;
    * ``model_age_below_limit``: fails from ``max_model_age_sessions - age_warning_sessions`` on;
    * ``inputs_arriving``: fails when the latest leg session is more than ``max_stale_sessions``
      NYSE sessions behind the latest session closed by the summary's ``as_of``.
    """
    rng = summary["range"]
    k = summary["realised_sessions"]
    if k == 0:
        ret = (True, "no realised live session yet (a decision is realised once the next session's legs arrive)")
    else:
        where = "below" if summary["below_range"] else "within or above"
        ret = (
            not summary["below_range"],
            f"live return {summary['live_return']:+.2%} over {k} session(s) since {summary['handover_session']} is "
            f"{where} the backtest's {rng['confidence']:.0%} range {rng['lower']:+.2%} .. {rng['upper']:+.2%} "
            f"for a stretch of that length",
        )
    age, limit, start = summary["model_age_sessions"], summary["max_model_age_sessions"], summary["age_warning_from"]
    near = age >= start
    model = (
        not near,
        f"model {summary['model_id']} is {age} sessions past its training end; decisions are refused over "
        f"live.max_model_age_sessions = {limit}"
        + (
            f" (warning from {start}, live.age_warning_sessions = {live.age_warning_sessions}): retrain and promote it "
            "again (`allocator run`)"
            if near
            else f" (warning from {start})"
        ),
    )
    behind = summary["sessions_behind"]
    stale = behind > live.max_stale_sessions
    inputs = (
        not stale,
        f"latest leg session {summary['last_leg_session']}, {behind} NYSE session(s) behind the latest closed session "
        f"{summary['latest_expected_session']} (warning over live.max_stale_sessions = {live.max_stale_sessions})"
        + ("; the prices or the Step 3 legs have stopped arriving" if stale else ""),
    )
    return dict(zip(MONITOR_CHECKS, (ret, model, inputs)))
