"""The outcome of a fold's tuning study: :class:`TuningResult` and its trial ledger.

Ledger
    :func:`export_ledger` writes every trial (number, state, role, mode (``sequential``: one seeded
    worker, reproducible; ``parallel``: several workers, not reproducible), worker, stage
    (``models`` / ``cheap`` in a study split by ``tuning.model_trials``), objective,
    duration, parameters, per-inner-split metrics, objective terms, error) as parquet.
Trial returns
    :func:`export_trial_returns` writes every evaluated trial's daily net returns on the inner
    held-out blocks (the per-block results the overfitting statistics need: the deflated Sharpe's
    trial Sharpe ratios and PBO by CSCV), one row per (inner split, session): ``inner``,
    ``realized_ts`` (UTC), ``cash_return``, one column ``trial_<number>`` per trial (NaN on the
    blocks a pruned trial never reached) and one column ``active_<number>``: the trial's weight
    choice fully invested over the baseline book on the same sessions (the deflated Sharpe's
    subject; absent for a trial stored before it was recorded). The study keeps the blocks'
    sessions and cash returns once (user attribute ``inner_blocks``), each trial its returns
    (``inner_returns``, ``inner_active``), so a resumed study exports the returns of its earlier
    trials too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from allocator_pipeline.core.common.storage import write_parquet
from allocator_pipeline.core.tuning.objective import INNER_METRICS, OBJECTIVE_FORMULA
from allocator_pipeline.core.tuning.selection import select_trial
from allocator_pipeline.core.tuning.space import search_space_table
from allocator_pipeline.settings import Settings

__all__ = [
    "ACTIVE_PREFIX",
    "INNER_BLOCKS",
    "TRIAL_PREFIX",
    "TuningResult",
    "export_ledger",
    "export_trial_returns",
    "inner_blocks_attr",
    "trial_ledger",
    "trial_returns_frame",
]

LEDGER_HEAD = ["trial", "state", "role", "mode", "worker", "stage", "objective", "duration_s", "error"]
INNER_BLOCKS = "inner_blocks"
"""Study user attribute: per inner split, ``{"realized_ts": [ISO UTC], "cash": [float]}``."""
TRIAL_PREFIX = "trial_"
"""Column prefix of a trial's daily returns in the trial-returns ledger (``trial_<number>``)."""
ACTIVE_PREFIX = "active_"
"""Column prefix of a trial's weight choice over the baseline in the ledger (``active_<number>``)."""


@dataclass
class TuningResult:
    """The outcome of one fold's study (all its trials, over every run that added to it)."""

    fold: str
    study_name: str
    storage: str
    groups: tuple[str, ...]
    space: dict[str, BaseDistribution]
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    default_value: float | None
    n_complete: int
    n_pruned: int
    n_failed: int
    n_new: int
    duration_s: float
    ledger: pd.DataFrame = field(repr=False)
    trial_returns: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    workers: int = 1
    fit_reuse: dict[str, Any] = field(default_factory=dict)
    """Inner fits read from / written to the fit store by this call (``core/tuning/fit_cache.py``)."""
    selection: dict[str, Any] = field(default_factory=dict)
    """How the traded trial (``best_*``) was chosen (:class:`~allocator_pipeline.core.tuning.selection.TrialSelection`)."""

    @property
    def mode(self) -> str:
        """``sequential`` (one seeded worker: reproducible) or ``parallel`` (not reproducible)."""
        return "parallel" if self.workers > 1 else "sequential"

    @property
    def n_trials(self) -> dict[str, int]:
        return {"complete": self.n_complete, "pruned": self.n_pruned, "failed": self.n_failed, "new": self.n_new}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the ledger itself goes to parquet)."""
        return {
            "fold": self.fold,
            "study_name": self.study_name,
            "storage": self.storage,
            "groups": list(self.groups),
            "search_space": search_space_table(self.space),
            "best_params": dict(self.best_params),
            "best_value": float(self.best_value),
            "best_trial": int(self.best_trial),
            "default_value": self.default_value,
            "improvement_over_defaults": None
            if self.default_value is None
            else float(self.best_value - self.default_value),
            "n_trials": self.n_trials,
            "mode": self.mode,
            "workers": self.workers,
            "fit_reuse": dict(self.fit_reuse),
            "selection": dict(self.selection),
            "duration_s": float(self.duration_s),
            "objective_formula": OBJECTIVE_FORMULA,
        }


def _duration(trial: FrozenTrial) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def trial_ledger(trials: Sequence[FrozenTrial], space: Mapping[str, BaseDistribution]) -> pd.DataFrame:
    """One row per trial: head columns, ``param.<name>``, ``inner<k>.<metric>``, ``term.<name>``."""
    names = list(space) + sorted({n for t in trials for n in t.params} - set(space))
    n_inner = max((len(t.user_attrs.get("inner_metrics", [])) for t in trials), default=0)
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name,
            "role": t.user_attrs.get("role", "tpe"),
            "mode": t.user_attrs.get("mode"),
            "worker": t.user_attrs.get("worker"),
            "stage": t.user_attrs.get("stage"),
            "objective": t.value if t.state == TrialState.COMPLETE else None,
            "duration_s": _duration(t),
            "error": t.user_attrs.get("error"),
        }
        row.update({f"param.{n}": t.params.get(n) for n in names})
        inner = t.user_attrs.get("inner_metrics", [])
        for k in range(n_inner):
            for key in INNER_METRICS:
                row[f"inner{k}.{key}"] = inner[k].get(key) if k < len(inner) else None
        row.update({f"term.{k}": v for k, v in t.user_attrs.get("terms", {}).items()})
        rows.append(row)
    ledger = pd.DataFrame(rows, columns=list(dict.fromkeys(k for r in rows for k in r)) or LEDGER_HEAD)
    numeric = [c for c in ledger.columns if c in ("objective", "duration_s") or c.startswith(("inner", "term."))]
    ledger[numeric] = ledger[numeric].astype("float64")
    return ledger


def export_ledger(result: TuningResult, path: str | Path) -> Path:
    """Write the fold's trial ledger as parquet, atomically."""
    return write_parquet(result.ledger, path)


def export_trial_returns(result: TuningResult, path: str | Path) -> Path:
    """Write the fold's trial returns (module docstring) as parquet, atomically."""
    return write_parquet(result.trial_returns, path)


def inner_blocks_attr(blocks: Sequence[pd.DataFrame]) -> list[dict[str, list]]:
    """The :data:`INNER_BLOCKS` study attribute of an evaluation's blocks (``realized_ts``, ``r_cash``)."""
    return [
        {
            "realized_ts": [pd.Timestamp(t).isoformat() for t in block["realized_ts"]],
            "cash": [float(x) for x in block["r_cash"]],
        }
        for block in blocks
    ]


def trial_returns_frame(blocks: Sequence[Mapping[str, Any]], trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    """The trial-returns ledger (module docstring) from the study's blocks and its trials.

    A trial whose stored returns do not match the blocks' lengths (e.g. one evaluated before the
    returns were recorded) is left out.
    """
    if not blocks:
        return pd.DataFrame({"inner": pd.Series(dtype="int64"), "cash_return": pd.Series(dtype="float64")})
    parts = [
        pd.DataFrame(
            {
                "inner": np.full(len(b["realized_ts"]), k, dtype=np.int64),
                "realized_ts": pd.to_datetime(list(b["realized_ts"]), utc=True),
                "cash_return": np.asarray(b["cash"], dtype=float),
            }
        )
        for k, b in enumerate(blocks)
    ]
    frame = pd.concat(parts, ignore_index=True)
    lengths = [len(b["realized_ts"]) for b in blocks]

    def column(stored: Any) -> np.ndarray | None:
        if not stored or len(stored) > len(blocks) or any(len(r) != n for r, n in zip(stored, lengths)):
            return None
        values = np.full(len(frame), np.nan)
        values[: sum(lengths[: len(stored)])] = np.concatenate([np.asarray(r, dtype=float) for r in stored])
        return values

    columns: dict[str, np.ndarray] = {}
    for t in sorted(trials, key=lambda t: t.number):
        returns = column(t.user_attrs.get("inner_returns"))
        if returns is None:
            continue
        columns[f"{TRIAL_PREFIX}{t.number}"] = returns
        active = column(t.user_attrs.get("inner_active"))
        if active is not None:
            columns[f"{ACTIVE_PREFIX}{t.number}"] = active
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


def _result(
    fold: str,
    study: optuna.Study,
    described: str,
    groups: tuple[str, ...],
    space: dict[str, BaseDistribution],
    n_new: int,
    duration: float,
    settings: Settings,
) -> TuningResult:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(
            f"fold {fold}: no trial of study {study.study_name!r} completed "
            f"({len(trials)} trials; see their errors in the ledger)"
        )
    returns = trial_returns_frame(study.user_attrs.get(INNER_BLOCKS, []), trials)
    by_session = returns.sort_values("realized_ts", kind="stable") if len(returns) else returns
    daily = {
        t.number: by_session[f"{TRIAL_PREFIX}{t.number}"].to_numpy()
        for t in complete
        if f"{TRIAL_PREFIX}{t.number}" in by_session
    }
    selection = select_trial(complete, daily, by_session.get("realized_ts"), settings)
    best = selection.chosen
    defaults = [t for t in complete if t.user_attrs.get("role") == "defaults"]
    return TuningResult(
        fold=fold,
        study_name=study.study_name,
        storage=described,
        groups=groups,
        space=space,
        best_params=dict(best.params),
        best_value=cast(float, best.value),
        best_trial=best.number,
        default_value=cast(float, defaults[0].value) if defaults else None,
        n_complete=len(complete),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        n_new=n_new,
        duration_s=duration,
        ledger=trial_ledger(trials, space),
        trial_returns=returns,
        selection=selection.to_dict(),
    )
