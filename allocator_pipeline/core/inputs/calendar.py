"""The NYSE session calendar (``exchange_calendars``, calendar ``XNYS``) and the checks against it.

The calendar knows the regular holidays and the ad-hoc closures (2001-09-11..14, hurricane
Sandy 2012-10-29/30, the national days of mourning such as 2004-06-11, 2007-01-02, 2018-12-05,
2025-01-09). The embedded SPY, QQQ and VIX series hold exactly its sessions (a test checks it).
Price series of exchange-traded symbols and VIX are checked against it: every session between a
file's first and last date must be present and every date must be a session. The T-bill yield
(IRX) follows the bond market's calendar and is not checked (it is forward-filled).

Building the calendar (its holiday rules over 1990 to next year) costs about 0.4 s of CPU, more
than a daily decision's own arithmetic, so its sessions are kept in a cache file per
``exchange_calendars`` version and year range, ``XNYS-v1-<version>-<first>-<last>.npy`` (int64
nanoseconds) in ``$ALLOCATOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/allocator_pipeline``, else
``~/.cache/allocator_pipeline``. The file holds exactly what the library computed; one that cannot
be read, or is not a sorted int64 vector of midnights spanning its years, is computed again and
replaced; a folder that cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import tempfile
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError

CALENDAR_NAME = "XNYS"
UNCHECKED_SYMBOLS = frozenset({"IRX"})
"""Series not on the NYSE calendar (the 13-week T-bill yield follows the bond market)."""
SHOWN = 10
"""Dates listed in a message (then ``+N more``)."""


def cache_dir() -> Path:
    """The folder of the calendar's cache file (see the module docstring)."""
    if os.environ.get("ALLOCATOR_CACHE_DIR"):
        return Path(os.environ["ALLOCATOR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "allocator_pipeline"


def _computed(first_year: int, last_year: int) -> pd.DatetimeIndex:
    import exchange_calendars

    with warnings.catch_warnings():  # exchange_calendars 4.13 uses pandas API that pandas 3.1 deprecates
        warnings.simplefilter("ignore")
        calendar = exchange_calendars.get_calendar(CALENDAR_NAME, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
        sessions = pd.DatetimeIndex(calendar.sessions)
    naive = (sessions.tz_localize(None) if sessions.tz is not None else sessions).as_unit("ns")
    return pd.DatetimeIndex(naive.asi8.view("datetime64[ns]"))  # no freq: the same index as one read back


def _valid(values: object, first_year: int, last_year: int) -> bool:
    """Whether a cache file's array can be the sessions from ``first_year`` to ``last_year``: a
    sorted int64 vector of midnights from January of the first year to December of the last."""
    if not (isinstance(values, np.ndarray) and values.dtype == np.int64 and values.ndim == 1 and len(values) > 1):
        return False
    first, last = pd.Timestamp(int(values[0])), pd.Timestamp(int(values[-1]))
    return (
        bool((np.diff(values) > 0).all())
        and bool((values % 86_400_000_000_000 == 0).all())
        and (first.year, first.month) == (first_year, 1)
        and (last.year, last.month) == (last_year, 12)
    )


CACHE_FORMAT = "v1"
"""The cache file's format tag (a change of what :func:`_computed` returns needs a new tag)."""


def cache_file(first_year: int, last_year: int) -> Path:
    """The cache file of the sessions from ``first_year`` to ``last_year`` (this library version)."""
    version = importlib.metadata.version("exchange_calendars")
    return cache_dir() / f"{CALENDAR_NAME}-{CACHE_FORMAT}-{version}-{first_year}-{last_year}.npy"


@lru_cache(maxsize=4)
def _sessions(first_year: int, last_year: int) -> pd.DatetimeIndex:
    path = cache_file(first_year, last_year)
    try:
        values = np.load(path, allow_pickle=False)
        if _valid(values, first_year, last_year):
            return pd.DatetimeIndex(values.view("datetime64[ns]"))
    except (OSError, ValueError, EOFError):
        pass  # absent or unreadable: computed again below
    sessions = _computed(first_year, last_year)
    staged: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        staged = Path(name)
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, sessions.asi8, allow_pickle=False)
        os.replace(staged, path)  # whole or absent, whatever other processes or threads write
    except OSError:  # a read-only cache folder: the calendar is built in each process
        if staged is not None:
            with contextlib.suppress(OSError):
                staged.unlink(missing_ok=True)
    return sessions


def nyse_sessions(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """NYSE session dates (naive, midnight) from ``start`` to ``end`` inclusive.

    Examples
    --------
    >>> [str(d.date()) for d in nyse_sessions(pd.Timestamp("2012-10-25"), pd.Timestamp("2012-11-01"))]
    ['2012-10-25', '2012-10-26', '2012-10-31', '2012-11-01']
    """
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    # one calendar from 1990 (or earlier data) to next year (or later data), built once
    first = min(start.year, 1990)
    last = max(end.year, pd.Timestamp.now().year) + 1
    sessions = _sessions(first, last)
    return sessions[(sessions >= start) & (sessions <= end)]


def is_session(date: pd.Timestamp) -> bool:
    """Whether ``date`` is an NYSE session."""
    return len(nyse_sessions(date, date)) == 1


def describe_non_session(date: pd.Timestamp) -> str:
    """Why ``date`` is not a session: a weekend day, or a holiday/closure, with the nearest sessions.

    >>> describe_non_session(pd.Timestamp("2012-10-29"))
    '2012-10-29 (a Monday) is not an NYSE session (a holiday or an exchange closure); previous session 2012-10-26, next 2012-10-31'
    """
    date = pd.Timestamp(date).normalize()
    around = nyse_sessions(date - pd.Timedelta(days=14), date + pd.Timedelta(days=14))
    before, after = around[around < date], around[around > date]
    weekday = date.day_name()
    kind = "a weekend day" if date.day_of_week >= 5 else "a holiday or an exchange closure"
    near = []
    if len(before):
        near.append(f"previous session {before[-1].date()}")
    if len(after):
        near.append(f"next {after[0].date()}")
    return f"{date.date()} (a {weekday}) is not an NYSE session ({kind})" + (f"; {', '.join(near)}" if near else "")


def listed(dates: Sequence[pd.Timestamp] | pd.DatetimeIndex) -> str:
    """``2024-03-04, 2024-03-05 (+8 more)``."""
    shown = ", ".join(str(pd.Timestamp(d).date()) for d in list(dates)[:SHOWN])
    return shown + (f" (+{len(dates) - SHOWN} more)" if len(dates) > SHOWN else "")


def check_sessions(
    dates: pd.Series | pd.DatetimeIndex,
    *,
    file: str | Path | None,
    column: str = "Date",
    rows: Sequence[object] | None = None,
    what: str = "the price file",
) -> None:
    """Refuse dates that are not NYSE sessions and NYSE sessions missing between the first and
    the last date.

    Parameters
    ----------
    dates : Series or DatetimeIndex
        Session dates (naive), sorted ascending.
    file, column : named in the error.
    rows : sequence, optional
        The data row of each date (default 0, 1, ...).
    what : str
        What the dates are, in the message.

    Raises
    ------
    InputDataError
        Naming the first offending row: for missing sessions, the row after the first hole, its
        value the first missing session, and every missing session listed.
    """
    index = pd.DatetimeIndex(pd.to_datetime(dates)).normalize()
    if index.empty:
        return
    rows = list(range(len(index))) if rows is None else list(rows)
    sessions = nyse_sessions(index[0], index[-1])
    extra = ~index.isin(sessions)
    if extra.any():
        i = int(extra.argmax())
        raise InputDataError(
            f"{describe_non_session(index[i])}; a price row must be a session of the NYSE calendar "
            f"({int(extra.sum())} such date(s): {listed(index[extra])})",
            file=file,
            column=column,
            row=rows[i],
            value=str(index[i].date()),
        )
    missing = sessions.difference(index)
    if len(missing):
        after = int(index.searchsorted(missing[0]))
        raise InputDataError(
            f"{len(missing)} NYSE session(s) missing from {what} between its first and last date: "
            f"{listed(missing)}; expected every session of the NYSE calendar from {index[0].date()} "
            f"to {index[-1].date()}",
            file=file,
            column=column,
            row=rows[after],
            value=str(missing[0].date()),
        )
