"""Where each asset's artifact is stored under a home, and reading it back, without Dagster.

``defs/resources.py: ArtifactIOManager`` writes and reads the assets' values at these paths (the
layout of docs/design.md section 9); the live commands (``allocator rebalance``, ``allocator
replay``) read the same files through :func:`load_artifact`, so a daily decision needs neither
Dagster nor its IO managers to find the fold plan, the tuned parameters or the backtest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.common.storage import read_json, read_parquet

ARTIFACT_PATHS: dict[str, str] = {
    "market_prices": "step3_out/allocator/dataset/market_panel",
    "step3_legs": "step3_out/allocator/dataset/step3_manifest",
    "leg_panel": "step3_out/allocator/dataset/leg_panel",
    "allocator_features": "step3_out/allocator/dataset/features",
    "utility_labels": "step3_out/allocator/dataset/labels",
    "utility_table": "step3_out/allocator/dataset/utilities",
    "fold_plan": "step3_out/allocator/dataset/fold_plan",
    "fold_dataset": "step3_out/allocator/dataset/folds/{partition}",
    "fold_tuning": "step3_out/allocator/optuna/{partition}/tuning",
    "fold_predictions": "step3_out/allocator/models/{partition}/predictions",
    "allocator_path": "step3_out/allocator/backtest/allocator_path",
    "walk_forward_report": "step3_out/allocator/backtest/metrics",
    "promoted_allocator": "step3_out/allocator/promotion",
    "live_monitor": "final output/step3_allocator/monitor/live_monitor",
}
"""Asset name -> its artifact's path under the home, without the suffix (``.parquet`` for a
DataFrame, ``.json`` for a dict); ``{partition}`` is the fold key."""

#: The stages whose artifacts ``allocator backtest`` rebuilds (the others: the dataset, or a fold's stages).
_BACKTEST_ASSETS = ("allocator_path", "walk_forward_report", "promoted_allocator")


def rebuild_command(asset_name: str, partition: str | None = None) -> str:
    """The command that writes an asset's artifact again: a fold stage's ``allocator train --folds
    KEY``, the backtest's ``allocator backtest``, the dataset's ``allocator build-dataset``.

    >>> rebuild_command("allocator_features"), rebuild_command("fold_dataset", "2024")
    ('allocator build-dataset', 'allocator train --folds 2024')
    """
    if partition is not None:
        return f"allocator train --folds {partition}"
    return "allocator backtest" if asset_name in _BACKTEST_ASSETS else "allocator build-dataset"


def artifact_base(home: Path, asset_name: str, partition: str | None = None) -> Path:
    """The artifact's path without its suffix (an asset without an entry in :data:`ARTIFACT_PATHS`
    goes to ``step3_out/allocator/other/<asset>/<partition>``).

    >>> artifact_base(Path("/h"), "fold_tuning", "2024").as_posix()
    '/h/step3_out/allocator/optuna/2024/tuning'
    """
    template = ARTIFACT_PATHS.get(asset_name, f"step3_out/allocator/other/{asset_name}/{{partition}}")
    if "{partition}" in template and partition is None:
        raise ValueError(f"asset {asset_name} is partitioned but no partition key was given")
    return Path(home).resolve() / template.format(partition=partition)


def artifact_path(home: Path, asset_name: str, partition: str | None = None) -> Path | None:
    """The stored file of an asset (partition), or None if it was never materialised."""
    base = artifact_base(home, asset_name, partition)
    for suffix in (".parquet", ".json"):
        if base.with_suffix(suffix).is_file():
            return base.with_suffix(suffix)
    return None


def load_artifact(
    home: Path, asset_name: str, partition: str | None = None, columns: Sequence[str] | None = None
) -> Any:
    """The stored value of an asset (partition): a DataFrame (parquet; ``columns``: only those
    columns are read) or a dict (JSON).

    Raises
    ------
    FileNotFoundError
        The asset was never materialised (naming the expected file).
    InputDataError
        The file cannot be read (truncated, overwritten), naming it and the command that rebuilds it.
    """
    path = artifact_path(home, asset_name, partition)
    if path is None:
        where = f" partition {partition}" if partition else ""
        raise FileNotFoundError(
            f"asset {asset_name}{where} has not been materialised yet (no artifact at "
            f"{artifact_base(home, asset_name, partition)}.parquet|.json); materialise it first"
        )
    try:
        return read_parquet(path, columns=columns) if path.suffix == ".parquet" else read_json(path)
    except (OSError, ValueError) as exc:  # truncated or overwritten: pyarrow's ArrowInvalid, a JSON error
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise InputDataError(
            f"the artifact cannot be read ({problem}); rebuild it with `{rebuild_command(asset_name, partition)}`",
            file=path,
        ) from None
