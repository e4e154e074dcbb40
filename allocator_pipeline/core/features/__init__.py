"""The allocator's daily feature table (strictly causal), its blocks and trailing windows.

Asset group ``features``: ``allocator_features``.
"""

from allocator_pipeline.core.features.inputs import available_blocks, check_index, column_values
from allocator_pipeline.core.features.table import build_features, feature_dictionary

__all__ = ["available_blocks", "build_features", "check_index", "column_values", "feature_dictionary"]
