"""One in-process Dagster run of chosen assets, and the command's Dagster instance.

Kept apart from ``execution.py`` (which loads the whole code location, and so the training stack its
assets import): a run of the allocation group's assets alone (``allocator rebalance`` recording the
daily decision, ``defs/allocation.py: rebalance_run``) needs Dagster and those assets only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from allocator_pipeline.core.common import journal
from allocator_pipeline.defs.publication import JOURNAL_TAG
from allocator_pipeline.defs.resources import resources_for
from allocator_pipeline.settings import RunOptions, Settings

Selection = dg.AssetSelection | Sequence[str]
INSTANCE_FILE = """# Written by `allocator` for a Dagster home without an instance file: the default local
# instance (SQLite storage and logs in this folder), telemetry off.
telemetry:
  enabled: false
"""
POSTGRES_URL_ENV = "ALLOCATOR_POSTGRES_URL"
"""The PostgreSQL instance's database URL (``instances/postgres/dagster.yaml``)."""


def run_config(verbose: bool = False) -> dict:
    """Dagster's console logger: asset progress messages (INFO) with ``verbose``, else nothing on the
    terminal (the events still go to the instance, the UI's run logs)."""
    return {"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "CRITICAL"}}}}


def default_dagster_home(settings: Settings, instance: str | Path | None = None) -> Path:
    """The Dagster home (the folder of the instance's ``dagster.yaml``): ``instance`` when given (the
    CLI's ``--instance``, e.g. ``instances/postgres``), else DAGSTER_HOME, else the current folder
    when it holds dagster.yaml (the repo root), else <home>/.dagster_home."""
    if instance is not None:
        return Path(instance).resolve()
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    if Path("dagster.yaml").is_file():
        return Path.cwd()
    return settings.home.resolve() / ".dagster_home"


def get_instance(settings: Settings, instance: str | Path | None = None) -> dg.DagsterInstance:
    """The persistent Dagster instance (run history and fold partitions survive between commands);
    ``instance``: a Dagster home folder with its own dagster.yaml (refused without one)."""
    home = default_dagster_home(settings, instance)
    if instance is not None and not (home / "dagster.yaml").is_file():
        raise ValueError(f"--instance {instance}: no dagster.yaml in {home}")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").is_file():  # no banner, no "no instance file" warning
        (home / "dagster.yaml").write_text(INSTANCE_FILE)
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    if os.environ.get(POSTGRES_URL_ENV):  # the instance's database (instances/postgres/dagster.yaml)
        from allocator_pipeline.core.tuning.storage import psycopg2_url

        os.environ[POSTGRES_URL_ENV] = psycopg2_url(os.environ[POSTGRES_URL_ENV])
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    return dg.DagsterInstance.get()


def run_assets(
    assets: Sequence[dg.AssetsDefinition | dg.AssetChecksDefinition],
    selection: Selection,
    options: RunOptions,
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
    verbose: bool = False,
) -> dg.ExecuteInProcessResult:
    """Materialise ``selection`` of ``assets`` in one run recorded in ``instance`` (upstream assets
    are read from their artifacts), tagged with the command and its journal."""
    tags = {"allocator/command": "cli"}
    if partition_key is not None:
        tags["allocator/partition"] = partition_key
    current = journal.active()
    if current is not None:
        tags[JOURNAL_TAG] = current.id
    return dg.materialize(
        assets,
        run_config=run_config(verbose),
        selection=selection if isinstance(selection, dg.AssetSelection) else list(selection),
        partition_key=partition_key,
        instance=instance,
        resources=resources_for(options),
        raise_on_error=False,
        tags=tags,
    )
