"""The Dagster code location: assembles the asset groups' modules and the resources."""

import warnings

import dagster as dg

from allocator_pipeline.defs import (
    allocation,
    ensemble,
    evaluation,
    features,
    folds,
    inputs,
    labels,
    models,
    monitoring,
    promotion,
    tuning,
)
from allocator_pipeline.defs.resources import resources_for
from allocator_pipeline.settings import RunOptions

STAGE_MODULES = (
    inputs,
    features,
    labels,
    folds,
    tuning,
    models,
    ensemble,
    evaluation,
    promotion,
    allocation,
    monitoring,
)
"""One module per asset group, in pipeline order: each holds its assets, checks, jobs, schedules
and sensors, found by Dagster's module loader (nothing is listed twice)."""

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)  # the loader is "preview" in Dagster 1.13 (pinned)
    defs = dg.load_definitions_from_modules(
        STAGE_MODULES,
        resources=resources_for(RunOptions()),
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )
