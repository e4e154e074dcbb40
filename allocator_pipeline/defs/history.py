"""The history of runs, kept in the Dagster instance (SQLite or PostgreSQL alike), not in a registry
of our own: each ``walk_forward_report`` materialisation carries the run's verdict, headline figures,
settings fingerprint and Step 3 fingerprint as metadata (the UI's asset page plots the numbers over
time), and :func:`run_history` reads them back, newest first (``allocator runs``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from allocator_pipeline.core.common.fingerprint import frame_fingerprint, settings_fingerprint
from allocator_pipeline.core.common.sessions import session_dates
from allocator_pipeline.report.tables import as_float

REPORT_ASSET = dg.AssetKey("walk_forward_report")
#: Headline figures recorded for the allocator and the Step 3 baseline (fractions; Calmar, Sharpe plain).
RECORDED_FIGURES: tuple[str, ...] = ("cagr", "max_drawdown", "calmar", "avg_monthly_pnl", "sharpe")
RECORDED_STRATEGIES: tuple[str, ...] = ("allocator", "baseline")


def report_record(metrics: Mapping[str, Any], leg_panel: pd.DataFrame, oos_daily: pd.DataFrame) -> dict[str, Any]:
    """The run's record as materialisation metadata: ``verdict``, ``<strategy>_<figure>`` floats
    (a figure that is not a finite number is left out), ``settings_fingerprint``,
    ``step3_fingerprint`` (the leg panel), ``oos_start``/``oos_end`` and ``home`` (absolute)."""
    settings = dict(metrics.get("settings") or {})
    record: dict[str, Any] = {"verdict": "ACCEPTED" if metrics.get("accepted") else "REJECTED"}
    for strategy in RECORDED_STRATEGIES:
        figures = (metrics.get("strategies") or {}).get(strategy) or {}
        for figure in RECORDED_FIGURES:
            value = as_float(figures.get(figure))
            if value is not None:
                record[f"{strategy}_{figure}"] = dg.MetadataValue.float(value)
    dates = session_dates(oos_daily.index[[0, -1]])
    record.update(
        {
            "settings_fingerprint": settings_fingerprint(settings),
            "step3_fingerprint": frame_fingerprint(leg_panel),
            "oos_start": str(dates[0].date()),
            "oos_end": str(dates[1].date()),
            # absolute, so that `allocator compare RUN` finds the home from any working directory
            "home": str(Path(str(settings["home"])).resolve()) if settings.get("home") else "",
        }
    )
    return record


def run_history(instance: dg.DagsterInstance, limit: int = 50) -> list[dict[str, Any]]:
    """The recorded runs of the report, newest first: one dict each with ``run_id``, ``timestamp``
    (seconds since the epoch) and the :func:`report_record` values (plain Python values)."""
    result = instance.fetch_materializations(REPORT_ASSET, limit=limit, ascending=False)
    rows = []
    for entry in result.records:
        materialization = entry.asset_materialization
        metadata = materialization.metadata if materialization is not None else {}
        row: dict[str, Any] = {"run_id": entry.run_id, "timestamp": entry.timestamp}
        row.update({key: getattr(value, "value", value) for key, value in metadata.items()})
        rows.append(row)
    return rows
