"""Utility labels: the best QQQ weight of each session in hindsight, and the utility table.

Asset group ``labels``: ``utility_labels``, ``utility_table``.
"""

from allocator_pipeline.core.labels.utility import utility_labels, utility_labels_loop

__all__ = ["utility_labels", "utility_labels_loop"]
