"""Asset group ``features`` (core: ``core/features``): the daily feature table."""

import dagster as dg
import pandas as pd

from allocator_pipeline.core.features import build_features, feature_dictionary
from allocator_pipeline.defs.metadata import frame_metadata
from allocator_pipeline.defs.resources import AllocatorSettings


@dg.asset(
    group_name="features",
    kinds={"pandas", "parquet"},
    description="Daily feature table (one row per session, causal: row d uses data up to decision_ts(d)).",
)
def allocator_features(
    context: dg.AssetExecutionContext, settings: AllocatorSettings, leg_panel: pd.DataFrame
) -> pd.DataFrame:
    s = settings.load()
    features = build_features(leg_panel, s.features)
    dictionary = feature_dictionary(s.features, leg_panel.columns)
    context.add_output_metadata(
        {
            **frame_metadata(features),
            "blocks": ", ".join(s.features.blocks),
            "feature_dictionary": dg.MetadataValue.md(dictionary.to_markdown(index=False)),
        }
    )
    return features
