"""Two walk-forward runs side by side: did run B make the allocator better than run A, and is the
difference real? (``allocator compare A B``.)

A run is what ``allocator --home H run`` leaves in its home: ``oos_daily.parquet`` and
``metrics.json`` under ``step3_out/allocator/backtest/``, the Step 3 manifest and the leg panel
under ``step3_out/allocator/dataset/`` (:func:`load_run`). The comparison (:func:`compare_runs`)

* restricts both out-of-sample paths to their **common sessions**: the decision sessions both
  hold, with the same realisation session (``realized_ts``), so every figure pairs the same days;
* recomputes each run's headline figures on those sessions (the report's definitions,
  ``metrics.py``) beside each run's own verdict (its gates ran on its whole path);
* puts the verdict's own paired stationary block bootstrap (``bootstrap.py``; same resampling,
  block length, resamples, seed and confidence) around three differences of B minus A
  (:data:`CONTRASTS`): the allocator's returns, the Step 3 baseline's returns (is the new engine
  better on its own?) and the model's increment over the envelope, ``(allocator - envelope_only)``
  of B minus that of A (does B's model add more to the envelope than A's?), the last a
  difference of differences resampled on the same positions for all four series;
* lists what differs between the runs: the settings (dotted keys, locations left out as in the
  settings fingerprint), the Step 3 manifest and fingerprint, the out-of-sample ranges.

A difference **favours B** when the lower bounds of both intervals (Calmar and average monthly
PnL) are above 0, the rule of the verdict's "beats the baseline" gates; it **favours A** when
both upper bounds are below 0; otherwise the runs are not told apart.

Minimum: the common sessions must hold at least :data:`MIN_BLOCKS` mean bootstrap blocks
(``MIN_BLOCKS * bootstrap.block_length`` sessions, 252 with the default 63): with fewer, a
resample is little more than the same one or two stretches again, and its interval says nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.fingerprint import LOCATION_FIELDS, frame_fingerprint, settings_fingerprint
from allocator_pipeline.core.common.sessions import session_dates
from allocator_pipeline.core.common.storage import read_json, read_parquet
from allocator_pipeline.core.evaluation.ablations import ABLATIONS
from allocator_pipeline.core.evaluation.bootstrap import BOOTSTRAP_METRICS, contrast_bootstrap
from allocator_pipeline.core.evaluation.metrics import performance_metrics
from allocator_pipeline.core.evaluation.walk_forward import STRATEGIES, strategy_frame
from allocator_pipeline.settings import BootstrapSettings

BACKTEST_DIR = Path("step3_out/allocator/backtest")
DATASET_DIR = Path("step3_out/allocator/dataset")
MIN_BLOCKS = 4
"""Mean bootstrap blocks the common sessions must hold (module docstring)."""

#: name -> (label, terms): the contrast ``sum c * metric(ret_<strategy> of run)`` for B minus A.
CONTRASTS: dict[str, tuple[str, tuple[tuple[float, str, str], ...]]] = {
    "allocator": ("Allocator (B - A)", ((1.0, "b", "allocator"), (-1.0, "a", "allocator"))),
    "baseline": ("Step 3 baseline (B - A)", ((1.0, "b", "baseline"), (-1.0, "a", "baseline"))),
    "model_increment": (
        "Model's increment over the envelope (B - A of allocator - envelope only)",
        ((1.0, "b", "allocator"), (-1.0, "b", "envelope_only"), (-1.0, "a", "allocator"), (1.0, "a", "envelope_only")),
    ),
}


class TooFewSessions(InputDataError):
    """The two runs share too few out-of-sample sessions to compare (exit 2 on the command line)."""


@dataclass(frozen=True)
class Run:
    """One completed walk-forward run, read from its home.

    Attributes
    ----------
    home : Path
        The home folder (``allocator --home``).
    oos_daily : DataFrame
        ``oos_daily.parquet``: one row per decision session (index ``decision_ts``, UTC), daily
        returns ``ret_<strategy>`` (fractions) earned in ``realized_ts``.
    metrics : dict
        ``metrics.json``: the verdict (``accepted``, ``gates``, ``comparisons``) and ``settings``.
    step3_manifest : dict
        ``step3_manifest.json`` (source, directory, symbols, rows, range); empty when absent.
    step3_fingerprint : str or None
        :func:`frame_fingerprint` of ``leg_panel.parquet`` (as ``allocator runs`` shows it).
    """

    home: Path
    oos_daily: pd.DataFrame
    metrics: dict[str, Any]
    step3_manifest: dict[str, Any]
    step3_fingerprint: str | None


def load_run(home: str | Path) -> Run:
    """Read the completed run of ``home``.

    Raises
    ------
    InputDataError
        When the home holds no completed run (``metrics.json`` or ``oos_daily.parquet`` missing)
        or its ``oos_daily`` lacks a column the comparison needs.
    """
    home = Path(home)
    backtest = home / BACKTEST_DIR
    for name in ("metrics.json", "oos_daily.parquet"):
        if not (backtest / name).is_file():
            raise InputDataError(
                f"{home} has no completed run (run `allocator --home {home} run` first)", file=backtest / name
            )
    metrics = _read(home, backtest / "metrics.json", read_json)
    oos = _read(home, backtest / "oos_daily.parquet", read_parquet)
    for column in ("realized_ts", "cash_return", "ret_allocator", "ret_baseline", "ret_envelope_only"):
        if column not in oos.columns:
            raise InputDataError(
                "no such column in the run's out-of-sample path", file=backtest / "oos_daily.parquet", column=column
            )
    manifest_path, legs_path = home / DATASET_DIR / "step3_manifest.json", home / DATASET_DIR / "leg_panel.parquet"
    manifest = _read(home, manifest_path, read_json) if manifest_path.is_file() else {}
    fingerprint = frame_fingerprint(_read(home, legs_path, read_parquet)) if legs_path.is_file() else None
    return Run(home, oos, dict(metrics), dict(manifest), fingerprint)


def _read(home: Path, path: Path, reader: Callable[[Path], Any]) -> Any:
    """``reader(path)``; a file that cannot be read (truncated, not JSON or parquet) is bad input
    naming the file, the reader's own words and the command that writes it again."""
    try:
        return reader(path)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputDataError(
            f"cannot read it ({first}); write it again with `allocator --home {home} run`", file=path
        ) from None


def common_sessions(a: pd.DataFrame, b: pd.DataFrame) -> pd.DatetimeIndex:
    """Decision timestamps both ``oos_daily`` frames hold with the same, known ``realized_ts``."""
    shared = a.index.intersection(b.index).sort_values()
    ra, rb = a.loc[shared, "realized_ts"], b.loc[shared, "realized_ts"]
    same = (ra == rb) & ra.notna()
    return pd.DatetimeIndex(shared[same.to_numpy()], name=a.index.name)


def compare_runs(a: Run, b: Run, settings: BootstrapSettings) -> dict[str, Any]:
    """Run B against run A on their common sessions (module docstring).

    Parameters
    ----------
    a, b : Run
        The two runs (:func:`load_run`); every difference is B minus A.
    settings : BootstrapSettings
        The bootstrap (``block_length`` in sessions, ``resamples``, ``seed``, ``confidence``).

    Returns
    -------
    dict
        JSON-ready: ``runs`` ({a, b}: home, verdict, failed gates, the three-way summary,
        fingerprints, out-of-sample range, leg symbols, baseline weight and ``headline``
        {strategy: metrics on the common sessions}), ``common`` (n_sessions, start, end, the
        sessions only in A and only in B), ``bootstrap`` (its settings and ``min_sessions``),
        ``differences`` ({contrast: {label, calmar, avg_monthly_pnl, mean_daily, outcome}};
        ``mean_daily`` the mean daily return difference, a fraction; ``outcome`` ``"B"`` or
        ``"A"``, the run it favours, ``"neither"``, or ``"same"`` when both runs' returns in it
        are the same on every session) and ``what_differs`` (settings, step3, data_range).

    Raises
    ------
    TooFewSessions
        When the common sessions hold fewer than :data:`MIN_BLOCKS` mean blocks.
    """
    sessions = common_sessions(a.oos_daily, b.oos_daily)
    needed = MIN_BLOCKS * settings.block_length
    if len(sessions) < needed:
        shared = _range(sessions) if len(sessions) else "none"
        raise TooFewSessions(
            f"{a.home} and {b.home} share {len(sessions)} out-of-sample sessions ({shared}); comparing needs at "
            f"least {needed} ({MIN_BLOCKS} blocks of bootstrap.block_length = {settings.block_length} sessions)"
        )
    frames = {"a": a.oos_daily.loc[sessions], "b": b.oos_daily.loc[sessions]}
    realized = frames["b"]["realized_ts"]
    differences = {}
    for name, (label, terms) in CONTRASTS.items():
        series = [(c, frames[run][f"ret_{strategy}"].to_numpy(dtype=float)) for c, run, strategy in terms]
        boot = contrast_bootstrap(series, realized, settings)
        entry: dict[str, Any] = {"label": label}
        entry.update(
            {m: {k: boot[m][k] for k in ("point", "lower", "upper", "share_positive")} for m in BOOTSTRAP_METRICS}
        )
        entry["mean_daily"] = float(np.mean(sum(c * r for c, r in series)))
        same = all(frames["a"][f"ret_{s}"].equals(frames["b"][f"ret_{s}"]) for _, _, s in terms)
        entry["outcome"] = "same" if same else _outcome(entry)
        differences[name] = entry
    return {
        "runs": {key: _run_summary(run, frames[key]) for key, run in (("a", a), ("b", b))},
        "common": {
            "n_sessions": len(sessions),
            "start": str(session_dates(sessions[:1])[0].date()),
            "end": str(session_dates(sessions[-1:])[0].date()),
            "only_a": int(len(a.oos_daily) - len(sessions)),
            "only_b": int(len(b.oos_daily) - len(sessions)),
        },
        "bootstrap": settings.model_dump(mode="json") | {"min_sessions": needed},
        "differences": differences,
        "what_differs": what_differs(a, b),
    }


def _outcome(entry: Mapping[str, Any]) -> str:
    lowers = [entry[m]["lower"] for m in BOOTSTRAP_METRICS]
    uppers = [entry[m]["upper"] for m in BOOTSTRAP_METRICS]
    if all(lo is not None and lo > 0 for lo in lowers):
        return "B"
    if all(hi is not None and hi < 0 for hi in uppers):
        return "A"
    return "neither"


def _range(sessions: pd.DatetimeIndex) -> str:
    dates = session_dates(sessions[[0, -1]])
    return f"{dates[0]:%Y-%m-%d}..{dates[1]:%Y-%m-%d}"


def _run_summary(run: Run, frame: pd.DataFrame) -> dict[str, Any]:
    metrics = run.metrics
    settings = dict(metrics.get("settings") or {})
    notional = float(((settings.get("report") or {}).get("notional")) or 1.0)
    strategies = [s for s in (STRATEGIES[0], *ABLATIONS, *STRATEGIES[1:]) if f"ret_{s}" in frame.columns]
    gates = list(metrics.get("gates") or [])
    return {
        "home": str(run.home),
        "verdict": "ACCEPTED" if metrics.get("accepted") else "REJECTED",
        "failed_gates": [str(g.get("name")) for g in gates if g.get("passed") is False],
        "three_way": (metrics.get("comparisons") or {}).get("summary"),
        "settings_fingerprint": settings_fingerprint(settings),
        "step3_fingerprint": run.step3_fingerprint,
        "oos": {"n_sessions": len(run.oos_daily), "range": _range(pd.DatetimeIndex(run.oos_daily.index))},
        "symbols": {leg: (settings.get("data") or {}).get(f"{leg}_symbol", leg.upper()) for leg in ("qqq", "spy")},
        "baseline_weight": (settings.get("labels") or {}).get("baseline_weight"),
        "headline": {s: performance_metrics(strategy_frame(frame, s), notional) for s in strategies},
    }


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested settings tree as ``{"dotted.key": value}`` (lists and scalars are leaves).

    >>> flatten({"policy": {"alpha": 0.7, "grid": [0, 1]}, "profile": "quick"})
    {'policy.alpha': 0.7, 'policy.grid': [0, 1], 'profile': 'quick'}
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _changes(a: Mapping[str, Any], b: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    keys = sorted((set(a) | set(b)) - skip)
    return [{"key": k, "a": a.get(k), "b": b.get(k)} for k in keys if a.get(k) != b.get(k)]


def what_differs(a: Run, b: Run) -> dict[str, Any]:
    """What differs between the two runs: ``settings`` (dotted keys whose values differ, locations
    left out), ``step3`` (the manifest's fields and the leg panel's fingerprint) and
    ``data_range`` (each run's out-of-sample sessions and range); each a list of
    ``{key, a, b}`` (a value absent from one run is None)."""
    locations = frozenset(".".join(path) for path in LOCATION_FIELDS)
    settings = _changes(flatten(a.metrics.get("settings") or {}), flatten(b.metrics.get("settings") or {}), locations)
    step3 = _changes(
        {**flatten(a.step3_manifest), "fingerprint": a.step3_fingerprint},
        {**flatten(b.step3_manifest), "fingerprint": b.step3_fingerprint},
    )
    ranges = {
        run_key: {
            "out-of-sample sessions": len(run.oos_daily),
            "out-of-sample range": _range(pd.DatetimeIndex(run.oos_daily.index)),
            "folds": ", ".join(sorted(np.unique(run.oos_daily["fold"].astype(str))))
            if "fold" in run.oos_daily
            else None,
        }
        for run_key, run in (("a", a), ("b", b))
    }
    return {"settings": settings, "step3": step3, "data_range": _changes(ranges["a"], ranges["b"])}
