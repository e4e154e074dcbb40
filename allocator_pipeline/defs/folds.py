"""Asset group ``folds`` (core: ``core/folds``): the walk-forward fold plan and the fold datasets,
and ``dataset_job``, which builds everything up to the fold plan."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from allocator_pipeline.core.folds import (
    FOLD_DATASET_CHECKS,
    FoldPlanError,
    class_balance,
    fold_dataset_problems,
    plan_for_data,
    validate_plan,
)
from allocator_pipeline.core.folds import fold_dataset as build_fold_dataset
from allocator_pipeline.defs.inputs import INPUT_ERROR
from allocator_pipeline.defs.metadata import check_result, frame_metadata
from allocator_pipeline.defs.partitions import FOLD_PARTITIONS_NAME, fold_partitions
from allocator_pipeline.defs.resources import AllocatorSettings

GROUP = "folds"


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    check_specs=[dg.AssetCheckSpec("fold_plan_valid", asset="fold_plan", blocking=True)],
    description="Walk-forward plan: every outer fold and inner split with train/validation/test ranges, "
    "purge and embargo. Registers one 'fold' partition per outer fold.",
)
def fold_plan(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    allocator_features: pd.DataFrame,
    utility_labels: pd.DataFrame,
) -> Iterator:
    s = settings.load()
    try:
        plan = plan_for_data(allocator_features, utility_labels, s)
    except FoldPlanError as exc:  # the settings ask for folds the data cannot give: bad input (exit 2)
        raise dg.Failure(
            description=str(exc), metadata={INPUT_ERROR: True, "problem": str(exc)}, allow_retries=False
        ) from None
    folds = sorted(plan.loc[plan["inner"] == -1, "fold"].unique())
    existing = set(context.instance.get_dynamic_partitions(FOLD_PARTITIONS_NAME))
    new = [f for f in folds if f not in existing]
    if new:
        context.instance.add_dynamic_partitions(FOLD_PARTITIONS_NAME, new)
    for stale in sorted(existing - set(folds)):  # folds of an earlier plan (other data or settings)
        context.instance.delete_dynamic_partition(FOLD_PARTITIONS_NAME, stale)
    problems = [v.message for v in validate_plan(plan, allocator_features.index, s.labels.horizon)]
    yield dg.Output(
        plan,
        metadata={
            "folds": dg.MetadataValue.text(", ".join(folds)),
            "n_folds": len(folds),
            "plan": dg.MetadataValue.md(plan[plan["inner"] == -1].to_markdown(index=False)),
        },
    )
    yield check_result("fold_plan_valid", problems)


@dg.asset(
    group_name=GROUP,
    partitions_def=fold_partitions,
    kinds={"pandas", "parquet"},
    check_specs=[dg.AssetCheckSpec(name, asset="fold_dataset", blocking=True) for name in FOLD_DATASET_CHECKS],
    description="One fold's rows (train, validation, test) with features and labels.",
)
def fold_dataset(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    allocator_features: pd.DataFrame,
    utility_labels: pd.DataFrame,
    fold_plan: pd.DataFrame,
) -> Iterator:
    fold = context.partition_key
    data = build_fold_dataset(allocator_features, utility_labels, fold_plan, fold)
    problems = fold_dataset_problems(
        data, allocator_features, utility_labels, fold_plan[fold_plan["fold"] == fold], settings.load().labels.horizon
    )
    split_counts = data["split"].value_counts()
    yield dg.Output(
        data,
        metadata={
            **frame_metadata(data),
            **{f"n_{k}": int(v) for k, v in split_counts.items()},
            "train_class_balance": dg.MetadataValue.json(
                class_balance(data.loc[data["split"] == "train", "label_class"])
            ),
        },
    )
    for name in FOLD_DATASET_CHECKS:
        yield check_result(name, problems[name])


dataset_job = dg.define_asset_job(
    "dataset_job",
    selection=dg.AssetSelection.groups("inputs", "features", "labels", GROUP)
    - dg.AssetSelection.assets("fold_dataset"),
    description="Prices, Step 3 legs, leg panel, features, labels and the fold plan.",
)
