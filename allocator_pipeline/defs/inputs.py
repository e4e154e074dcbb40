"""Asset group ``inputs`` (core: ``core/inputs``): market prices, the Step 3 legs, the leg panel.

A bad input fails its step with the input's own message (file, column, row, value, what was
expected) as a :class:`dagster.Failure` with those fields as metadata, not as a chain of
exceptions; the command line validates the same inputs before it starts any run.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pandas as pd

from allocator_pipeline.core.common.errors import InputDataError
from allocator_pipeline.core.inputs import (
    leg_panel_problems,
    market_problems,
    read_legs,
    run_reference_engine,
    step3_directory,
)
from allocator_pipeline.core.inputs import load_market as load_market_panel
from allocator_pipeline.defs.metadata import check_result, frame_metadata
from allocator_pipeline.defs.resources import AllocatorSettings

GROUP = "inputs"
INPUT_ERROR = "input_error"
"""Metadata key of a step failure caused by bad input data (the CLI exits 2 for those)."""


@contextmanager
def input_failure() -> Iterator[None]:
    """Turn :class:`InputDataError` into a step failure that shows the message and its fields."""
    try:
        yield
    except InputDataError as exc:
        fields = {"file": exc.file, "column": exc.column, "row": exc.row, "value": exc.value}
        metadata: dict[str, dg.RawMetadataValue] = {INPUT_ERROR: True, "problem": exc.problem}
        metadata.update({k: str(v) for k, v in fields.items() if v is not None})
        raise dg.Failure(description=str(exc), metadata=metadata, allow_retries=False) from None


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    check_specs=[dg.AssetCheckSpec("market_schema", asset="market_prices", blocking=True)],
    description="Validated market panel (SPY, QQQ, VIX, T-bill) on exchange sessions: embedded data "
    "merged with the user's price files.",
)
def market_prices(context: dg.AssetExecutionContext, settings: AllocatorSettings) -> Iterator:
    with input_failure():
        panel = load_market_panel(settings.load())
    yield dg.Output(panel, metadata=frame_metadata(panel))
    yield check_result("market_schema", market_problems(panel))


@dg.asset(
    group_name=GROUP,
    kinds={"lightgbm", "parquet"},
    description="The Step 3 legs: the user's step3_out directory (validated), or the reference Step 3 "
    "engine's output written to <home>/step3_out (walk-forward LightGBM legs, or passive).",
)
def step3_legs(context: dg.AssetExecutionContext, settings: AllocatorSettings, market_prices: pd.DataFrame) -> dict:
    s = settings.load()
    source = "user"
    with input_failure():
        if s.data.step3_dir is None:
            source = f"reference engine ({s.data.step3_mode})"
            run_reference_engine(market_prices, s, s.paths.step3_out, progress=context.log.info)
        legs = read_legs(s, market_prices)
    directory = str(step3_directory(s).resolve())
    manifest = {
        "source": source,
        "directory": directory,
        "symbols": {"qqq": s.data.qqq_symbol, "spy": s.data.spy_symbol},
        "rows": len(legs),
        "first_decision_ts": str(legs.index[0]),
        "last_decision_ts": str(legs.index[-1]),
        "columns": list(legs.columns),
    }
    context.add_output_metadata(
        {"source": source, "directory": dg.MetadataValue.path(directory), **frame_metadata(legs)}
    )
    return manifest


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    deps=["step3_legs"],
    check_specs=[
        dg.AssetCheckSpec("leg_panel_schema", asset="leg_panel", blocking=True),
        dg.AssetCheckSpec("legs_aligned", asset="leg_panel", blocking=True),
    ],
    description="Both Step 3 legs aligned on common sessions with their market context.",
)
def leg_panel(context: dg.AssetExecutionContext, settings: AllocatorSettings, market_prices: pd.DataFrame) -> Iterator:
    with input_failure():
        panel = read_legs(settings.load(), market_prices)
    schema, aligned = leg_panel_problems(panel, market_prices)
    yield dg.Output(panel, metadata=frame_metadata(panel))
    yield check_result("leg_panel_schema", schema)
    yield check_result("legs_aligned", aligned)
