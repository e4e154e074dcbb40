"""Exchange sessions and decision timestamps.

A session date ``d`` is an exchange date (America/New_York). Its decision time is the close of
``d`` (16:00 New York), stored as a tz-aware UTC timestamp ``decision_ts``. Every stored timestamp
in the project is tz-aware UTC; a naive date read from a file is an exchange session date.
"""

from __future__ import annotations

import pandas as pd

EXCHANGE_TZ = "America/New_York"
CLOSE_TIME = pd.Timedelta(hours=16)
SESSIONS_PER_YEAR = 252


def decision_ts_from_dates(dates: pd.Series | pd.DatetimeIndex | list) -> pd.DatetimeIndex:
    """Session dates (naive, time of day ignored) -> decision timestamps (close 16:00 NY, UTC).

    Daylight saving time is handled by the time zone database: 16:00 EST = 21:00 UTC,
    16:00 EDT = 20:00 UTC.
    """
    idx = pd.DatetimeIndex(pd.to_datetime(dates))
    if idx.tz is not None:
        raise ValueError("decision_ts_from_dates expects naive session dates, got tz-aware values")
    local = (idx.normalize() + CLOSE_TIME).tz_localize(EXCHANGE_TZ)
    return local.tz_convert("UTC").as_unit("ns").rename("decision_ts")


def session_dates(decision_ts: pd.DatetimeIndex | pd.Series) -> pd.DatetimeIndex:
    """Decision timestamps (UTC) -> naive exchange session dates (midnight)."""
    idx = pd.DatetimeIndex(decision_ts)
    if idx.tz is None:
        raise ValueError("session_dates expects tz-aware UTC decision timestamps")
    return idx.tz_convert(EXCHANGE_TZ).tz_localize(None).normalize().rename("session")


def decision_ts_for(date: str | pd.Timestamp) -> pd.Timestamp:
    """One session date -> its decision timestamp (UTC)."""
    return decision_ts_from_dates([pd.Timestamp(date)])[0]
