"""Materialising the pipeline's assets from Python (used by the CLI and the tests).

Unpartitioned stages run as one in-process Dagster run. Fold stages run as one Dagster run per
fold (a fold is a partition); with ``workers > 1`` the folds run in parallel, one process per
fold at a time, each recording its run in the same Dagster instance. (``allocator backfill
--submit`` instead queues a Dagster backfill for the daemon to launch.)
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import dagster as dg

from allocator_pipeline.definitions import defs
from allocator_pipeline.defs.allocation import daily_rebalance_job
from allocator_pipeline.defs.ensemble import fold_job
from allocator_pipeline.defs.folds import dataset_job
from allocator_pipeline.defs.partitions import FOLD_PARTITIONS_NAME
from allocator_pipeline.defs.promotion import report_job
from allocator_pipeline.defs.resources import resources_for
from allocator_pipeline.settings import RunOptions, Settings

# What each command materialises: a job's own selection (adding a stage to a job is one edit).
DATASET = dataset_job.selection
FOLD_STAGES = fold_job.selection
TRAIN = FOLD_STAGES & dg.AssetSelection.assets("fold_predictions").upstream()
TUNING = FOLD_STAGES & dg.AssetSelection.assets("fold_tuning").upstream()
REPORT = report_job.selection
DAILY = daily_rebalance_job.selection
# Dagster's console logger at INFO: asset progress messages, not every engine event.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
Selection = dg.AssetSelection | Sequence[str]


def asset_names(selection: Selection) -> list[str]:
    """The asset names a selection resolves to in the code location, in pipeline order."""
    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.assets(*selection) if not isinstance(selection, dg.AssetSelection) else selection
    chosen = keys.resolve(graph)
    return [key.to_user_string() for key in graph.toposorted_asset_keys if key in chosen]


def default_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME when unset: the folder with dagster.yaml (the repo root) or <home>/.dagster_home."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    if Path("dagster.yaml").is_file():
        return Path.cwd()
    return settings.home.resolve() / ".dagster_home"


def get_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance (run history and fold partitions survive between commands)."""
    home = default_dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    return dg.DagsterInstance.get()


def materialize(
    selection: Selection, options: RunOptions, instance: dg.DagsterInstance, partition_key: str | None = None
) -> dg.ExecuteInProcessResult:
    """Materialise the selected assets in one run (upstream assets are read from their artifacts)."""
    tags = {"allocator/command": "cli"}
    if partition_key is not None:
        tags["allocator/partition"] = partition_key
    return dg.materialize(
        [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)],
        run_config=RUN_CONFIG,
        selection=selection if isinstance(selection, dg.AssetSelection) else list(selection),
        partition_key=partition_key,
        instance=instance,
        resources=resources_for(options),
        raise_on_error=False,
        tags=tags,
    )


def fold_keys(instance: dg.DagsterInstance) -> list[str]:
    return sorted(instance.get_dynamic_partitions(FOLD_PARTITIONS_NAME))


def select_folds(spec: str | None, available: Sequence[str]) -> list[str]:
    """Parse ``2008,2009`` or ``2008..2012`` (or None for all) against the available folds."""
    if not available:
        raise ValueError("no folds yet: run `allocator build-dataset` first (it writes the fold plan)")
    if spec is None or spec.strip() in ("", "all"):
        return list(available)
    wanted: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if ".." in part:
            lo, hi = part.split("..", 1)
            wanted += [k for k in available if lo.strip() <= k <= hi.strip()]
        else:
            wanted.append(part)
    unknown = [k for k in wanted if k not in available]
    if unknown:
        raise ValueError(f"unknown fold(s) {unknown}; available: {available[0]}..{available[-1]}")
    return sorted(dict.fromkeys(wanted))


def _run_fold_in_worker(
    selection: Selection, options: RunOptions, fold: str, dagster_home: str
) -> tuple[str, bool, str]:
    os.environ["DAGSTER_HOME"] = dagster_home
    result = materialize(selection, options, dg.DagsterInstance.get(), partition_key=fold)
    return fold, result.success, result.run_id


def materialize_folds(
    selection: Selection,
    folds: Iterable[str],
    options: RunOptions,
    instance: dg.DagsterInstance,
    workers: int = 1,
    on_done: Callable[[str, bool, str], None] | None = None,
) -> dict[str, bool]:
    """One Dagster run per fold, ``workers`` folds at a time. Returns fold -> success."""
    folds = list(folds)
    results: dict[str, bool] = {}
    if workers <= 1 or len(folds) <= 1 or instance.is_ephemeral:
        for fold in folds:
            result = materialize(selection, options, instance, partition_key=fold)
            results[fold] = result.success
            if on_done:
                on_done(fold, result.success, result.run_id)
        return results
    home = os.environ["DAGSTER_HOME"]
    # spawn, not fork: the parent already runs Dagster, SQLite connections and threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_fold_in_worker, selection, options, fold, home) for fold in folds]
        for future in as_completed(futures):
            fold, ok, run_id = future.result()
            results[fold] = ok
            if on_done:
                on_done(fold, ok, run_id)
    return results
