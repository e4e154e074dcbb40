"""Inputs: market data, the Step 3 contract and its validation, the leg panel, the reference Step 3 engine.

Asset group ``inputs``: ``market_prices``, ``step3_legs``, ``leg_panel``.
"""

from allocator_pipeline.core.inputs.calendar import check_sessions, describe_non_session, is_session, nyse_sessions
from allocator_pipeline.core.inputs.leg_checks import (
    alignment_correlations,
    check_alignment,
    check_coverage,
    check_legs,
    check_plausible,
)
from allocator_pipeline.core.inputs.market import (
    EMBEDDED_PATH,
    EMBEDDED_SYMBOLS,
    load_embedded,
    load_prices,
    market_panel,
    read_price_file,
)
from allocator_pipeline.core.inputs.reference_engine import isotonic_calibration, leg_returns, plan_year_folds
from allocator_pipeline.core.inputs.reference_features import direction_target, price_features, trailing_psi
from allocator_pipeline.core.inputs.reference_output import position_events, run_reference_engine
from allocator_pipeline.core.inputs.sources import (
    check_decision_date,
    extend_reference_legs,
    leg_panel_problems,
    live_inputs,
    load_market,
    market_problems,
    read_legs,
    step3_directory,
    validate_inputs,
)
from allocator_pipeline.core.inputs.step3 import Step3Data, build_leg_panel, read_step3_dir, write_step3_dir
from allocator_pipeline.core.inputs.step3_validation import CONFIDENCE_COLUMNS
from allocator_pipeline.core.inputs.synthetic import MARKER, read_planted, synth_step3

__all__ = [
    "CONFIDENCE_COLUMNS",
    "EMBEDDED_PATH",
    "EMBEDDED_SYMBOLS",
    "MARKER",
    "Step3Data",
    "alignment_correlations",
    "build_leg_panel",
    "check_alignment",
    "check_coverage",
    "check_decision_date",
    "check_legs",
    "check_plausible",
    "check_sessions",
    "describe_non_session",
    "direction_target",
    "extend_reference_legs",
    "is_session",
    "isotonic_calibration",
    "leg_panel_problems",
    "leg_returns",
    "live_inputs",
    "load_embedded",
    "load_market",
    "load_prices",
    "market_panel",
    "market_problems",
    "nyse_sessions",
    "plan_year_folds",
    "position_events",
    "price_features",
    "read_legs",
    "read_planted",
    "read_price_file",
    "read_step3_dir",
    "run_reference_engine",
    "step3_directory",
    "synth_step3",
    "trailing_psi",
    "validate_inputs",
    "write_step3_dir",
]
