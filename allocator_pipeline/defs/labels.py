"""Asset group ``labels`` (core: ``core/labels``): utility labels and the utility table."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.labels import utility_labels as compute_utility_labels
from allocator_pipeline.defs.metadata import frame_metadata
from allocator_pipeline.defs.resources import AllocatorSettings


@dg.multi_asset(
    group_name="labels",
    outs={
        "utility_labels": dg.AssetOut(
            kinds={"pandas", "parquet"},
            description="Best weight on the grid and its 11-bucket class per session (last H sessions unlabelled).",
        ),
        "utility_table": dg.AssetOut(
            kinds={"pandas", "parquet"},
            description="Realised utility U of every grid weight over the next H sessions (sessions x 21).",
        ),
    },
)
def utility_labels(context: dg.AssetExecutionContext, settings: AllocatorSettings, leg_panel: pd.DataFrame) -> Iterator:
    s = settings.load()
    labels, utilities = compute_utility_labels(leg_panel, s.labels, CostModel.from_settings(s.costs))
    counts = labels["label_class"].value_counts().sort_index()
    yield dg.Output(
        labels,
        output_name="utility_labels",
        metadata={
            **frame_metadata(labels),
            "horizon_sessions": s.labels.horizon,
            "class_counts": dg.MetadataValue.json({str(k): int(v) for k, v in counts.items()}),
        },
    )
    yield dg.Output(utilities, output_name="utility_table", metadata=frame_metadata(utilities))
