"""The thin Dagster layer: assets load inputs, call the core, return values with metadata."""
