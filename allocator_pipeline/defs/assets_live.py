"""The daily rebalance decision: one partition per session date."""


from pathlib import Path

import dagster as dg
import pandas as pd

from allocator_pipeline.core.allocation.fold_model import FoldModel
from allocator_pipeline.core.allocation.live import (
    DecisionLog,
    NoDataForSession,
    decide_with_fold_model,
    decide_with_promoted_model,
    truncate_to_session,
)
from allocator_pipeline.core.common.storage import read_json, read_parquet
from allocator_pipeline.core.tuning.space import tuned_settings
from allocator_pipeline.defs.assets_data import load_market, read_legs
from allocator_pipeline.defs.partitions import daily_partitions
from allocator_pipeline.defs.resources import AllocatorSettings
from allocator_pipeline.settings import Settings


class NoPromotedAllocator(FileNotFoundError):
    """No accepted allocator has been promoted yet."""


def live_inputs(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Market panel and leg panel read fresh from the configured sources (validated)."""
    market = load_market(settings)
    return market, read_legs(settings, market)


def load_promoted(settings: Settings) -> tuple[FoldModel, dict]:
    promotion = settings.paths.final / "promotion.json"
    if not promotion.is_file():
        raise NoPromotedAllocator(
            f"no promoted allocator in {settings.paths.final}: run `allocator run` (or materialise "
            "promoted_allocator) and get an accepted walk-forward report first"
        )
    manifest = read_json(promotion)
    return FoldModel.load(Path(manifest["model_directory"])), manifest


def fold_decision(settings: Settings, fold: str, session: str, legs: pd.DataFrame) -> dict:
    """The session's decision from fold ``fold``'s model: the fold backtest's own path through it."""
    directory = settings.paths.fold_models(fold)
    if not directory.is_dir():
        raise FileNotFoundError(f"fold {fold} has no trained model in {directory}: run `allocator train --folds {fold}`")
    plan = read_parquet(settings.paths.dataset / "fold_plan.parquet")
    outer = plan[(plan["fold"] == fold) & (plan["inner"] == -1)]
    tuning = settings.paths.optuna / fold / "tuning.json"
    params = read_json(tuning).get("best_params", {}) if tuning.is_file() else {}
    s = tuned_settings(settings, params)
    inputs = truncate_to_session(legs, session, s)
    decision, _ = decide_with_fold_model(FoldModel.load(directory), inputs, outer["test_start"].iloc[0],
                                         outer["test_end"].iloc[0], s,
                                         model_id=f"fold:{fold}")
    return decision


@dg.asset(
    group_name="live",
    partitions_def=daily_partitions,
    kinds={"json"},
    deps=["promoted_allocator"],
    description="The session's allocation from the promoted allocator: features from data up to that "
    "session, policy and envelope continued from the previous session's logged state. Writes "
    "'final output/step3_allocator/decisions/<date>.json' and the decision log.",
)
def daily_allocation(context: dg.AssetExecutionContext, settings: AllocatorSettings) -> dg.MaterializeResult:
    session = context.partition_key
    model, manifest = load_promoted(settings.load())
    # decide with exactly the settings the promoted allocator was trained and evaluated with
    s = tuned_settings(settings.load(), manifest.get("tuned_params", {}))
    _, legs = live_inputs(s)
    try:
        inputs = truncate_to_session(legs, session, s)
    except NoDataForSession as exc:
        raise dg.Failure(description=str(exc)) from None
    log = DecisionLog(s.paths.decisions)
    previous = log.previous(session, inputs.leg_panel.index)
    if previous is not None and previous.get("model_id") != manifest["model_id"]:
        previous = None  # a new model starts its own path (cold start)
    decision = decide_with_promoted_model(model, inputs, s, manifest["model_id"], previous)
    path = log.write(decision)
    return dg.MaterializeResult(
        metadata={
            "w_qqq": decision["w_qqq"],
            "w_spy": decision["w_spy"],
            "exposure": decision["exposure"],
            "mode": decision["mode"],
            "model_id": decision["model_id"],
            "decision": dg.MetadataValue.path(str(path)),
        }
    )
