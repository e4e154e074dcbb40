"""Which model decides each session: the walk-forward folds, one fold, or the promoted model.

A :class:`ModelSchedule` lists models with the sessions each decides (adjacent windows, in time
order) and the state before its first session. The walk-forward evaluation, the replay and the
daily decision read the same schedule, so the same model decides the same session everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from allocator_pipeline.core.allocation.fold_model import FoldModel
from allocator_pipeline.core.allocation.path import AllocatorState
from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.settings import Settings, tuned_settings


@dataclass(frozen=True)
class ScheduledModel:
    """A model, the settings it decides with, and the sessions it decides.

    ``first``/``last`` bound its sessions (decision_ts, inclusive; ``last`` None: open-ended);
    ``trained_through`` is the last session of its training window, for the model's age;
    ``after`` (the promoted model) is the hand-over session it decides strictly after.
    """

    model_id: str
    model: FoldModel
    settings: Settings
    first: pd.Timestamp
    last: pd.Timestamp | None
    trained_through: pd.Timestamp
    after: pd.Timestamp | None = None

    @property
    def start_text(self) -> str:
        """Its first session as a person reads it: ``2024-01-02``, or ``after 2025-09-26``."""
        return f"after {self.after.date()}" if self.after is not None else str(self.first.date())

    @property
    def end_text(self) -> str:
        """Its last session: ``2024-12-31``, or ``open``."""
        return str(self.last.date()) if self.last is not None else "open"


@dataclass(frozen=True)
class ModelSchedule:
    """The models of a path in time order (adjacent windows) and the state before the first one
    (None: the path starts fresh at ``models[0].first``)."""

    models: tuple[ScheduledModel, ...]
    initial_state: AllocatorState | None = None
    only: str | None = None
    """When set, :meth:`model_for` refuses sessions decided by another model (``fold:<KEY>``)."""

    @property
    def first(self) -> pd.Timestamp:
        return self.models[0].first

    def model_for(self, ts: pd.Timestamp) -> ScheduledModel:
        for scheduled in self.models:
            if scheduled.first <= ts and (scheduled.last is None or ts <= scheduled.last):
                if self.only is not None and scheduled.model_id != self.only:
                    break
                return scheduled
        deciding = [m for m in self.models if self.only is None or m.model_id == self.only]
        window = f"{deciding[0].start_text} .. {deciding[-1].end_text}"
        who = self.only or "this schedule"
        raise InputDataError(f"session {ts.date()} is outside the sessions {who} decides ({window})")


def fold_schedule(
    fold_plan: pd.DataFrame,
    models: Mapping[str, FoldModel],
    settings_of: Mapping[str, Settings],
    folds: list[str] | None = None,
    only: str | None = None,
) -> ModelSchedule:
    """The walk-forward schedule: each fold's model on its test window (``fold:<KEY>``), with the
    settings it was tuned with, trained through its validation end; fresh at the first fold's start.

    ``folds`` restricts the schedule to a run of consecutive folds (default: every fold of ``models``);
    ``only`` (``fold:<KEY>``) makes it refuse the sessions of the other folds.
    """
    keys = sorted(models) if folds is None else list(folds)
    outer = fold_plan[fold_plan["inner"] == -1].set_index("fold")
    scheduled = []
    for key in keys:
        if key not in outer.index:
            raise InputDataError(f"fold {key} is not in the fold plan", column="fold", value=key)
        row = outer.loc[key]
        scheduled.append(
            ScheduledModel(
                model_id=f"fold:{key}",
                model=models[key],
                settings=settings_of[key],
                first=pd.Timestamp(row["test_start"]),
                last=pd.Timestamp(row["test_end"]),
                trained_through=pd.Timestamp(row["val_end"]),
            )
        )
    scheduled.sort(key=lambda m: m.first)
    return ModelSchedule(tuple(scheduled), only=only)


def fold_of(model_id: str) -> str:
    """The fold key of a ``fold:<KEY>`` model id."""
    return model_id.split(":", 1)[1] if model_id.startswith("fold:") else model_id


def promoted_schedule(manifest: Mapping[str, Any], model: FoldModel, settings: Settings) -> ModelSchedule:
    """The promoted model's schedule: it decides every session after the walk-forward path's last
    one (the hand-over), continuing that path's state, with the settings it was tuned with."""
    handover = AllocatorState.from_dict(manifest["handover_state"])
    scheduled = ScheduledModel(
        model_id=str(manifest["model_id"]),
        model=model,
        settings=tuned_settings(settings, manifest.get("tuned_params", {})),
        first=handover.session + pd.Timedelta(1, "ns"),  # strictly after the hand-over session
        last=None,
        trained_through=pd.Timestamp(manifest["val_end"]),
        after=handover.session,
    )
    return ModelSchedule((scheduled,), initial_state=handover)
