"""allocator_pipeline: Step 3b capital allocator between a QQQ leg and a SPY leg."""

__version__ = "0.1.0"
