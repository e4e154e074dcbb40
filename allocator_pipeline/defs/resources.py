"""Resources: the pipeline settings, and the IO managers that store asset values as artifacts.

``ArtifactIOManager`` stores DataFrames as parquet and dicts as JSON at the paths of docs/design.md
section 9; ``FoldModelIOManager`` stores a fold's models as one directory (members as LightGBM
text and JSON, ``ensemble.json``, ``policy.json``). Nothing is pickled; writes are atomic.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation.fold_model import FoldModel
from allocator_pipeline.core.allocation.stored import load_fold_model
from allocator_pipeline.core.common.artifacts import artifact_base, artifact_path, load_artifact
from allocator_pipeline.core.common.storage import read_json, remove, write_json, write_parquet
from allocator_pipeline.core.models.base import Member
from allocator_pipeline.core.models.members import load_members, save_members
from allocator_pipeline.settings import RunOptions


class AllocatorSettings(dg.ConfigurableResource, RunOptions):
    """The pipeline's settings (``allocator_pipeline.settings.Settings``), loaded and validated.

    Its config fields are the global options (:class:`~allocator_pipeline.settings.RunOptions`);
    unset fields fall back to the environment, then to ``allocator.toml`` in the home directory,
    then to the profile and field defaults.
    """


def _partitions(context: dg.InputContext) -> list[str] | None:
    """The input's partition keys (None for an unpartitioned asset)."""
    return list(context.asset_partition_keys) if context.has_asset_partitions else None


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Parquet/JSON artifacts under the settings' home directory."""

    settings: dg.ResourceDependency[AllocatorSettings]

    def _base(self, asset_name: str, partition: str | None) -> Path:
        return artifact_base(self.settings.load().home, asset_name, partition)

    def artifact_path(self, asset_name: str, partition: str | None = None) -> Path | None:
        """The stored file of an asset (partition), or None if it was never materialised."""
        return artifact_path(self.settings.load().home, asset_name, partition)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        base = self._base(context.asset_key.path[-1], partition)
        if isinstance(obj, pd.DataFrame):
            path = write_parquet(obj, base.with_suffix(".parquet"))
            stale = base.with_suffix(".json")
        elif isinstance(obj, dict):
            path = write_json(obj, base.with_suffix(".json"))
            stale = base.with_suffix(".parquet")
        else:
            raise TypeError(f"{context.asset_key.to_user_string()}: cannot store {type(obj).__name__}")
        remove(stale)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load(self, asset_name: str, partition: str | None = None) -> Any:
        """The stored value of an asset (partition); a clear error when it was never materialised
        (``core/common/artifacts.py: load_artifact``)."""
        return load_artifact(self.settings.load().home, asset_name, partition)

    def load_input(self, context: dg.InputContext) -> Any:
        name = context.asset_key.path[-1]
        keys = _partitions(context)
        if keys is None:
            return self.load(name)
        if context.has_partition_key and len(keys) == 1:
            return self.load(name, keys[0])
        return {key: self.load(name, key) for key in keys}


MEMBERS_FILE = "members.json"


class FoldModelIOManager(dg.ConfigurableIOManager):
    """One directory per fold model: ``step3_out/allocator/models/<fold>/``.

    * ``fold_models`` (``dict[str, Member]``): each member's own file (``lightgbm.txt``,
      ``linear.json``, ``catboost.json``) and ``members.json`` listing them;
    * ``fold_ensemble`` (:class:`FoldModel`): ``ensemble.json`` and ``policy.json`` beside the
      members it blends.

    Loading reads the same files back, so every consumer uses the stored models.
    """

    settings: dg.ResourceDependency[AllocatorSettings]

    def directory(self, fold: str) -> Path:
        return self.settings.load().paths.fold_models(fold)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        directory = self.directory(context.asset_partition_key)
        if isinstance(obj, FoldModel):
            obj.save(directory)
        elif isinstance(obj, dict) and all(isinstance(m, Member) for m in obj.values()):
            files = save_members(obj, directory)
            write_json(
                {
                    "fold": context.asset_partition_key,
                    "members": files,
                    "describe": {name: member.describe() for name, member in obj.items()},
                },
                directory / MEMBERS_FILE,
            )
        else:
            raise TypeError(f"{context.asset_key.to_user_string()}: cannot store {type(obj).__name__} as a model")
        context.add_output_metadata({"directory": dg.MetadataValue.path(str(directory))})

    def load(self, asset_name: str, fold: str) -> Any:
        """The stored fold model (``fold_ensemble``) or members (``fold_models``) of ``fold``."""
        if asset_name == "fold_ensemble":
            return load_fold_model(self.settings.load(), fold)
        directory = self.directory(fold)
        marker = directory / MEMBERS_FILE
        if not marker.is_file():
            raise FileNotFoundError(
                f"fold {fold} has no trained {asset_name} in {directory}: run `allocator train --folds {fold}`"
            )
        return load_members(directory, read_json(marker)["members"])

    def load_input(self, context: dg.InputContext) -> Any:
        name = context.asset_key.path[-1]
        keys = _partitions(context) or []
        if context.has_partition_key and len(keys) == 1:
            return self.load(name, keys[0])
        return {key: self.load(name, key) for key in keys}


def resources_for(options: RunOptions) -> dict[str, Any]:
    """The code location's resources configured with ``options`` (the CLI's global options)."""
    settings = AllocatorSettings(**options.model_dump())
    return {
        "settings": settings,
        "io_manager": ArtifactIOManager(settings=settings),
        "model_io_manager": FoldModelIOManager(settings=settings),
    }
