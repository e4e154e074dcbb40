"""Materialising the pipeline's assets from Python (used by the CLI and the tests).

Unpartitioned stages run as one in-process Dagster run. Fold stages run as one Dagster run per
fold (a fold is a partition); with ``workers > 1`` the folds run in parallel, one process per
fold at a time, each recording its run in the same Dagster instance. (``allocator backfill
--submit`` instead queues a Dagster backfill for the daemon to launch.)
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import dagster as dg

from allocator_pipeline.defs.io_manager import ArtifactIOManager
from allocator_pipeline.defs.partitions import FOLD_PARTITIONS_NAME
from allocator_pipeline.defs.resources import AllocatorSettings
from allocator_pipeline.settings import Settings

DATASET_ASSETS = ["market_prices", "step3_legs", "leg_panel", "allocator_features", "utility_labels",
                  "utility_table", "fold_plan"]
TUNING_ASSETS = ["fold_dataset", "fold_tuning"]
TRAIN_ASSETS = ["fold_dataset", "fold_tuning", "fold_models", "fold_ensemble", "fold_predictions"]
FOLD_ASSETS = [*TRAIN_ASSETS, "fold_backtest"]
REPORT_ASSETS = ["walk_forward_report", "promoted_allocator"]
# Dagster's console logger at INFO: asset progress messages, not every engine event.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass(frozen=True)
class RunOptions:
    """What the settings resource is configured with (the CLI's global options)."""

    home: str | None = None
    prices: str | None = None
    step3: str | None = None
    profile: str | None = None
    config_file: str | None = None
    overrides: dict = field(default_factory=dict)

    def settings_resource(self) -> AllocatorSettings:
        return AllocatorSettings(home=self.home, prices=self.prices, step3=self.step3,
                                 profile=self.profile, config_file=self.config_file,
                                 overrides_json=json.dumps(self.overrides, sort_keys=True) if self.overrides else None)

    def settings(self) -> Settings:
        return self.settings_resource().load()

    def resources(self) -> dict:
        res = self.settings_resource()
        return {"settings": res, "io_manager": ArtifactIOManager(settings=res)}


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


def all_assets() -> list:
    from allocator_pipeline.definitions import ALL_ASSETS

    return list(ALL_ASSETS)


def materialize(names: Sequence[str], options: RunOptions, instance: dg.DagsterInstance,
                partition_key: str | None = None) -> dg.ExecuteInProcessResult:
    """Materialise the named assets in one run (upstream assets are read from their artifacts)."""
    tags = {"allocator/command": "cli"}
    if partition_key is not None:
        tags["allocator/partition"] = partition_key
    return dg.materialize(
        all_assets(),
        run_config=RUN_CONFIG,
        selection=list(names),
        partition_key=partition_key,
        instance=instance,
        resources=options.resources(),
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


def _run_fold_in_worker(names: Sequence[str], options: RunOptions, fold: str, dagster_home: str) -> tuple[str, bool, str]:
    os.environ["DAGSTER_HOME"] = dagster_home
    result = materialize(names, options, dg.DagsterInstance.get(), partition_key=fold)
    return fold, result.success, result.run_id


def materialize_folds(
    names: Sequence[str],
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
            result = materialize(names, options, instance, partition_key=fold)
            results[fold] = result.success
            if on_done:
                on_done(fold, result.success, result.run_id)
        return results
    home = os.environ["DAGSTER_HOME"]
    # spawn, not fork: the parent already runs Dagster, SQLite connections and threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_fold_in_worker, list(names), options, fold, home) for fold in folds]
        for future in as_completed(futures):
            fold, ok, run_id = future.result()
            results[fold] = ok
            if on_done:
                on_done(fold, ok, run_id)
    return results
