"""``python -m allocator_pipeline.cli``: the ``allocator`` command."""

from allocator_pipeline.cli import main

main()
