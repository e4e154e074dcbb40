"""Promotion of an accepted allocator to ``final output/step3_allocator/``, with its model card.

Asset group ``promotion``: ``promoted_allocator``.
"""

from allocator_pipeline.core.promotion.promote import promote_allocator

__all__ = ["promote_allocator"]
