"""Metadata helpers shared by the assets: row counts, date ranges, preview tables."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd


def frame_metadata(frame: pd.DataFrame, preview_rows: int = 5, max_columns: int = 12) -> dict[str, Any]:
    """Rows, columns, decision_ts range and a markdown preview of the last rows."""
    meta: dict[str, Any] = {"rows": dg.MetadataValue.int(len(frame)), "columns": dg.MetadataValue.int(frame.shape[1])}
    if isinstance(frame.index, pd.DatetimeIndex) and len(frame):
        meta["first_decision_ts"] = dg.MetadataValue.text(str(frame.index[0]))
        meta["last_decision_ts"] = dg.MetadataValue.text(str(frame.index[-1]))
    if len(frame):
        shown = frame.iloc[-preview_rows:, :max_columns]
        meta["preview"] = dg.MetadataValue.md(shown.to_markdown(floatfmt=".5g"))
    return meta


def check_result(name: str, problems: list[str], **extra: Any) -> dg.AssetCheckResult:
    """A blocking check's result: passed when ``problems`` is empty, else the first problems listed."""
    meta: dict[str, Any] = {"problems": dg.MetadataValue.int(len(problems))}
    if problems:
        meta["details"] = dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:20]))
    meta.update(extra)
    return dg.AssetCheckResult(
        check_name=name, passed=not problems, severity=dg.AssetCheckSeverity.ERROR, metadata=meta
    )
