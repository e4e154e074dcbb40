"""Partitions: walk-forward folds (keys are test years, added by the fold plan) and sessions."""

from __future__ import annotations

import dagster as dg

FOLD_PARTITIONS_NAME = "fold"
fold_partitions = dg.DynamicPartitionsDefinition(name=FOLD_PARTITIONS_NAME)


def fold_keys(instance: dg.DagsterInstance) -> list[str]:
    """The fold partitions the instance holds, sorted."""
    return sorted(instance.get_dynamic_partitions(FOLD_PARTITIONS_NAME))


# Daily decisions: one partition per calendar day in New York; non-session days are skipped by the
# schedule with a reason, and the asset refuses a date with no session data. end_offset=1 makes
# today's partition exist during the day, so the after-close schedule can request it.
DAILY_START = "2024-01-01"
daily_partitions = dg.DailyPartitionsDefinition(start_date=DAILY_START, timezone="America/New_York", end_offset=1)
