"""Materialising the pipeline's assets from Python (used by the CLI and the tests).

Unpartitioned stages run as one in-process Dagster run. Fold stages run as one Dagster run per
fold (a fold is a partition); with ``workers > 1`` the folds run in parallel, one process per
fold at a time, each recording its run in the same Dagster instance. (``--submit`` instead goes
through the instance's backfill and run queue, launched by the daemon: ``defs/submission.py``.)

Every event goes to the instance (the UI's run logs); the terminal gets Dagster's console log
only with ``verbose``. One run and the instance are ``defs/runs.py``'s (this module adds the whole
code location); ``defs/publication.py: publication`` makes a command's runs one published set (the
rollback journal of ``core/common/journal.py``, plus the fold partitions the runs registered).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import dagster as dg

from allocator_pipeline.definitions import defs
from allocator_pipeline.defs.allocation import daily_rebalance_job
from allocator_pipeline.defs.ensemble import fold_job
from allocator_pipeline.defs.folds import dataset_job
from allocator_pipeline.defs.partitions import fold_keys  # noqa: F401  (re-exported)
from allocator_pipeline.defs.promotion import report_job
from allocator_pipeline.defs.runs import (  # noqa: F401  (re-exported: the commands' and the tests' entry points)
    INSTANCE_FILE,
    Selection,
    default_dagster_home,
    get_instance,
    run_assets,
    run_config,
)
from allocator_pipeline.settings import RunOptions

# What each command materialises: a job's own selection (adding a stage to a job is one edit).
DATASET = dataset_job.selection
FOLD_STAGES = fold_job.selection
TRAIN = FOLD_STAGES & dg.AssetSelection.assets("fold_predictions").upstream()
TUNING = FOLD_STAGES & dg.AssetSelection.assets("fold_tuning").upstream()
REPORT = report_job.selection
DAILY = daily_rebalance_job.selection


def asset_names(selection: Selection) -> list[str]:
    """The asset names a selection resolves to in the code location, in pipeline order."""
    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.assets(*selection) if not isinstance(selection, dg.AssetSelection) else selection
    chosen = keys.resolve(graph)
    return [key.to_user_string() for key in graph.toposorted_asset_keys if key in chosen]


def materialize(
    selection: Selection,
    options: RunOptions,
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
    verbose: bool = False,
) -> dg.ExecuteInProcessResult:
    """Materialise the selected assets in one run (upstream assets are read from their artifacts)."""
    # the selected assets' checks run with them (the asset checks defined apart, @asset_check)
    assets = [*(a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)), *(defs.asset_checks or [])]
    return run_assets(assets, selection, options, instance, partition_key, verbose)


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
    selection: Selection, options: RunOptions, fold: str, dagster_home: str, verbose: bool
) -> tuple[str, bool, str]:
    os.environ["DAGSTER_HOME"] = dagster_home
    result = materialize(selection, options, dg.DagsterInstance.get(), partition_key=fold, verbose=verbose)
    return fold, result.success, result.run_id


def materialize_folds(
    selection: Selection,
    folds: Iterable[str],
    options: RunOptions,
    instance: dg.DagsterInstance,
    workers: int = 1,
    on_done: Callable[[str, bool, str], None] | None = None,
    verbose: bool = False,
) -> dict[str, bool]:
    """One Dagster run per fold, ``workers`` folds at a time. Returns fold -> success."""
    folds = list(folds)
    results: dict[str, bool] = {}
    if workers <= 1 or len(folds) <= 1 or instance.is_ephemeral:
        for fold in folds:
            result = materialize(selection, options, instance, partition_key=fold, verbose=verbose)
            results[fold] = result.success
            if on_done:
                on_done(fold, result.success, result.run_id)
        return results
    home = os.environ["DAGSTER_HOME"]
    # spawn, not fork: the parent already runs Dagster, SQLite connections and threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_fold_in_worker, selection, options, fold, home, verbose) for fold in folds]
        for future in as_completed(futures):
            fold, ok, run_id = future.result()
            results[fold] = ok
            if on_done:
                on_done(fold, ok, run_id)
    return results
