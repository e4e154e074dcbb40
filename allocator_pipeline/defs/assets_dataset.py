"""Dataset assets: features, utility labels, the fold plan and the per-fold datasets."""


from typing import Iterator

import dagster as dg
import numpy as np
import pandas as pd

from allocator_pipeline.core.common.costs import CostModel
from allocator_pipeline.core.features.table import build_features, feature_dictionary
from allocator_pipeline.core.folds.plan import fold_dataset as build_fold_dataset
from allocator_pipeline.core.folds.plan import plan_folds, usable_sessions, validate_plan
from allocator_pipeline.core.labels.utility import utility_labels as compute_utility_labels
from allocator_pipeline.defs.metadata import check_result, frame_metadata
from allocator_pipeline.defs.partitions import FOLD_PARTITIONS_NAME, fold_partitions
from allocator_pipeline.defs.resources import AllocatorSettings

GROUP = "dataset"


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    description="Daily feature table (one row per session, causal: row d uses data up to decision_ts(d)).",
)
def allocator_features(
    context: dg.AssetExecutionContext, settings: AllocatorSettings, leg_panel: pd.DataFrame
) -> pd.DataFrame:
    s = settings.load()
    features = build_features(leg_panel, s.features)
    dictionary = feature_dictionary(s.features, leg_panel.columns)
    context.add_output_metadata(
        {
            **frame_metadata(features),
            "blocks": ", ".join(s.features.blocks),
            "feature_dictionary": dg.MetadataValue.md(dictionary.to_markdown(index=False)),
        }
    )
    return features


@dg.multi_asset(
    group_name=GROUP,
    outs={
        "utility_labels": dg.AssetOut(
            kinds={"pandas", "parquet"},
            description="Best weight on the grid and its 11-bucket class per session (last H sessions unlabelled).",
        ),
        "utility_table": dg.AssetOut(
            kinds={"pandas", "parquet"},
            description="Realised utility U of every grid weight over the next H sessions (sessions x 21).",
        ),
    },
)
def utility_labels(context: dg.AssetExecutionContext, settings: AllocatorSettings, leg_panel: pd.DataFrame):
    s = settings.load()
    labels, utilities = compute_utility_labels(leg_panel, s.labels, CostModel.from_settings(s.costs))
    counts = labels["label_class"].value_counts().sort_index()
    yield dg.Output(
        labels,
        output_name="utility_labels",
        metadata={
            **frame_metadata(labels),
            "horizon_sessions": s.labels.horizon,
            "class_counts": dg.MetadataValue.json({str(k): int(v) for k, v in counts.items()}),
        },
    )
    yield dg.Output(utilities, output_name="utility_table", metadata=frame_metadata(utilities))


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
    usable = usable_sessions(allocator_features, utility_labels)
    plan = plan_folds(allocator_features.index, usable, s)
    folds = sorted(plan.loc[plan["inner"] == -1, "fold"].unique())
    existing = set(context.instance.get_dynamic_partitions(FOLD_PARTITIONS_NAME))
    new = [f for f in folds if f not in existing]
    if new:
        context.instance.add_dynamic_partitions(FOLD_PARTITIONS_NAME, new)
    for stale in sorted(existing - set(folds)):  # folds of an earlier plan (other data or settings)
        context.instance.delete_dynamic_partition(FOLD_PARTITIONS_NAME, stale)
    problems = validate_plan(plan, allocator_features.index, s.labels.horizon)
    yield dg.Output(
        plan,
        metadata={
            "folds": dg.MetadataValue.text(", ".join(folds)),
            "n_folds": len(folds),
            "plan": dg.MetadataValue.md(plan[plan["inner"] == -1].to_markdown(index=False)),
        },
    )
    yield check_result("fold_plan_valid", problems)


FOLD_CHECKS = ["purge_holds", "no_split_overlap", "embargo_respected", "no_nan_features", "no_label_in_last_h"]


@dg.asset(
    group_name=GROUP,
    partitions_def=fold_partitions,
    kinds={"pandas", "parquet"},
    check_specs=[dg.AssetCheckSpec(name, asset="fold_dataset", blocking=True) for name in FOLD_CHECKS],
    description="One fold's rows (train, validation, test) with features and labels.",
)
def fold_dataset(
    context: dg.AssetExecutionContext,
    settings: AllocatorSettings,
    allocator_features: pd.DataFrame,
    utility_labels: pd.DataFrame,
    fold_plan: pd.DataFrame,
) -> Iterator:
    s = settings.load()
    fold = context.partition_key
    data = build_fold_dataset(allocator_features, utility_labels, fold_plan, fold)
    sessions = allocator_features.index
    plan_rows = fold_plan[fold_plan["fold"] == fold]
    violations = validate_plan(plan_rows, sessions, s.labels.horizon)

    def matching(word: str) -> list[str]:
        return [v for v in violations if word in v.lower()]

    used = data[data["split"].isin(["train", "val"])]
    feature_cols = list(allocator_features.columns)
    nan_rows = used[feature_cols].isna().any(axis=1)
    nan_problems = [f"{int(nan_rows.sum())} train/validation rows with NaN features, first {used.index[nan_rows][0]}"] if nan_rows.any() else []
    h = s.labels.horizon
    last_h = sessions[-h:]
    labelled_tail = utility_labels["label_class"].reindex(last_h).notna()
    tail_problems = [f"{int(labelled_tail.sum())} of the last {h} sessions carry a label"] if labelled_tail.any() else []
    unlabelled_used = used["label_class"].isna()
    if unlabelled_used.any():
        tail_problems.append(f"{int(unlabelled_used.sum())} train/validation rows without a label")
    split_counts = data["split"].value_counts()
    yield dg.Output(
        data,
        metadata={
            **frame_metadata(data),
            **{f"n_{k}": int(v) for k, v in split_counts.items()},
            "train_class_balance": dg.MetadataValue.json(class_balance(data.loc[data["split"] == "train", "label_class"])),
        },
    )
    yield check_result("purge_holds", matching("purge") + matching("label window"))
    yield check_result("no_split_overlap", matching("overlap"))
    yield check_result("embargo_respected", matching("embargo"))
    yield check_result("no_nan_features", nan_problems)
    yield check_result("no_label_in_last_h", tail_problems)


def class_balance(labels: pd.Series) -> dict[str, int]:
    """Training rows per bucket (keys are bucket weights)."""
    counts = np.bincount(labels.dropna().astype(int), minlength=11)
    return {f"{k / 10:.1f}": int(c) for k, c in enumerate(counts)}
