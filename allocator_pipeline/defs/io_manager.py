"""IO manager storing asset values as the artifacts of DESIGN.md section 9.

DataFrames are written as parquet, dicts as JSON, atomically (core/common/storage.py); nothing is
pickled. Paths are relative to the settings' home directory; ``{partition}`` is the fold key or
the session date.
"""


from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from allocator_pipeline.core.common.storage import read_json, read_parquet, write_json, write_parquet
from allocator_pipeline.defs.resources import AllocatorSettings

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
    "fold_models": "step3_out/allocator/models/{partition}/members",
    "fold_ensemble": "step3_out/allocator/models/{partition}/ensemble",
    "fold_predictions": "step3_out/allocator/models/{partition}/predictions",
    "fold_backtest": "step3_out/allocator/backtest/folds/{partition}",
    "walk_forward_report": "step3_out/allocator/backtest/metrics",
    "promoted_allocator": "step3_out/allocator/promotion",
}


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Parquet/JSON artifacts under the settings' home directory."""

    settings: dg.ResourceDependency[AllocatorSettings]

    def _base(self, asset_name: str, partition: str | None) -> Path:
        template = ARTIFACT_PATHS.get(asset_name, f"step3_out/allocator/other/{asset_name}/{{partition}}")
        if "{partition}" in template and partition is None:
            raise ValueError(f"asset {asset_name} is partitioned but no partition key was given")
        return self.settings.load().home.resolve() / template.format(partition=partition)

    def artifact_path(self, asset_name: str, partition: str | None = None) -> Path | None:
        """The stored file of an asset (partition), or None if it was never materialised."""
        base = self._base(asset_name, partition)
        for suffix in (".parquet", ".json"):
            if base.with_suffix(suffix).is_file():
                return base.with_suffix(suffix)
        return None

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
        if stale.exists():
            stale.unlink()
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def _load_one(self, asset_name: str, partition: str | None) -> Any:
        path = self.artifact_path(asset_name, partition)
        if path is None:
            where = f" partition {partition}" if partition else ""
            raise FileNotFoundError(
                f"asset {asset_name}{where} has not been materialised yet (no artifact at "
                f"{self._base(asset_name, partition)}.parquet|.json); materialise it first"
            )
        return read_parquet(path) if path.suffix == ".parquet" else read_json(path)

    def load_input(self, context: dg.InputContext) -> Any:
        name = context.asset_key.path[-1]
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if context.has_partition_key and len(keys) == 1:
                return self._load_one(name, keys[0])
            return {key: self._load_one(name, key) for key in keys}
        return self._load_one(name, None)
