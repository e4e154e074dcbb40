"""The tree members' own evaluation of their stored models (core/models/trees.py) against the
libraries that wrote them: the same raw scores on NaN, zero, tiny and out-of-range inputs, for
every missing-value rule the libraries store; a row's scores independent of the other rows; and
unreadable files refused with what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from allocator_pipeline.core.models import trees as tree_module
from allocator_pipeline.core.models.base import softmax_rows
from allocator_pipeline.core.models.lightgbm_member import lightgbm_module
from allocator_pipeline.core.models.trees import (
    MISSING_NAN,
    MISSING_NONE,
    MISSING_ZERO,
    BinaryTrees,
    ObliviousTrees,
    TreeModelError,
)

N_FEATURES = 6


def training_data(nan: bool) -> tuple[np.ndarray, np.ndarray]:
    """1200 rows whose class (0..10) depends on the first three columns; ``nan``: column 1 has
    NaN on every ninth row (so the libraries store a missing-value rule for it)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1200, N_FEATURES))
    score = x[:, 0] + 0.5 * x[:, 1] - 0.5 * x[:, 2] + rng.normal(scale=0.7, size=1200)
    y = np.clip(np.round(score * 2 + 5), 0, 10).astype(int)
    if nan:
        x[::9, 1] = np.nan
    x[::13, 3] = 0.0
    return x, y


def probe_rows() -> np.ndarray:
    """Rows a stored model must read as the library does: NaN in every column, exact zeros,
    values below LightGBM's zero threshold, far outside the training range, and plain ones."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(400, N_FEATURES))
    x[::5, 1] = np.nan
    x[1::7, 0] = np.nan
    x[::6, 3] = 0.0
    x[2::9, 2] = 1e-40
    x[3::9, 2] = -1e-40
    x[:10] *= 1e3
    x[10] = np.nan
    return x


def on_the_splits(rows: np.ndarray, features: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``rows`` plus one row per split whose column holds exactly that split's threshold (where
    ``<=`` and ``<`` part)."""
    at = np.repeat(rows[:1], len(features), axis=0)
    at[np.arange(len(features)), features] = values
    return np.vstack([rows, at])


def lightgbm_booster(nan: bool, zero_as_missing: bool = False):
    lgb = lightgbm_module()
    x, y = training_data(nan)
    params = {
        "objective": "multiclass",
        "num_class": 11,
        "num_leaves": 15,
        "max_depth": 5,
        "min_data_in_leaf": 20,
        "deterministic": True,
        "force_row_wise": True,
        "seed": 1,
        "verbosity": -1,
        "zero_as_missing": zero_as_missing,
    }
    return lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=25)


@pytest.mark.parametrize(
    ("nan", "zero_as_missing", "expected"),
    [(False, False, {MISSING_NONE}), (True, False, {MISSING_NONE, MISSING_NAN}), (False, True, {MISSING_ZERO})],
    ids=["no-missing", "nan-missing", "zero-missing"],
)
def test_lightgbm_trees_give_the_boosters_raw_scores_bit_for_bit(nan, zero_as_missing, expected):
    booster = lightgbm_booster(nan, zero_as_missing)
    trees = BinaryTrees.from_lightgbm_text(booster.model_to_string())
    splits = trees.threshold < np.inf
    assert expected <= set(trees.missing[splits].tolist())  # the rule under test is in the model
    x = on_the_splits(probe_rows(), trees.feature[splits], trees.threshold[splits])
    ours = trees.raw_scores(x)
    assert np.array_equal(ours, booster.predict(x, raw_score=True))
    assert np.abs(softmax_rows(ours) - booster.predict(x)).max() < 1e-15
    assert trees.n_trees == booster.num_trees() and trees.feature_names == tuple(booster.feature_name())


@pytest.mark.parametrize("nan_mode", ["Min", "Max"])
def test_catboost_trees_give_the_models_raw_scores(nan_mode, tmp_path):
    from catboost import CatBoostClassifier

    x, y = training_data(nan=True)
    model = CatBoostClassifier(
        loss_function="MultiClass",
        depth=4,
        iterations=40,
        random_seed=1,
        nan_mode=nan_mode,
        thread_count=1,
        allow_writing_files=False,
        verbose=0,
    ).fit(x, y)
    model.save_model(str(tmp_path / "model.json"), format="json")
    trees = ObliviousTrees.from_catboost_json(json.loads((tmp_path / "model.json").read_text()))
    assert trees.nan_true.any() == (nan_mode == "Max")  # the rule under test is in the model
    borders = trees.border.ravel().astype(np.float64)
    # on each border, and just above it in float64 (the same float32: CatBoost compares float32)
    rows = on_the_splits(probe_rows(), np.tile(trees.feature.ravel(), 2), np.r_[borders, np.nextafter(borders, 1e9)])
    ours = trees.raw_scores(rows)
    library = model.predict(rows, prediction_type="RawFormulaVal")
    assert np.array_equal(ours, library)
    assert np.abs(softmax_rows(ours) - model.predict(rows, prediction_type="Probability")).max() < 1e-15
    one_by_one = np.vstack([trees.raw_scores(rows[i : i + 1]) for i in range(40)])
    assert np.array_equal(one_by_one, ours[:40])  # a row's scores do not depend on the other rows
    # a stored scale and bias (1 and 0 after a fit) are applied as CatBoost applies them
    stored = json.loads((tmp_path / "model.json").read_text())
    stored["scale_and_bias"] = [0.5, [0.25 * k for k in range(len(stored["scale_and_bias"][1]))]]
    (tmp_path / "scaled.json").write_text(json.dumps(stored))
    model.load_model(str(tmp_path / "scaled.json"), format="json")
    scaled = ObliviousTrees.from_catboost_json(stored).raw_scores(rows)
    # (CatBoost's own JSON reader moves about one leaf value in ten by an ulp: not bit for bit here)
    assert np.abs(scaled - model.predict(rows, prediction_type="RawFormulaVal")).max() < 1e-13


def test_a_rows_scores_do_not_depend_on_the_other_rows_or_the_chunking(monkeypatch):
    """One row at a time, all rows at once and rows in chunks of a few (row, tree) cells give the
    same scores bit for bit: the live decision (one row) and the backtest (many) agree."""
    trees = BinaryTrees.from_lightgbm_text(lightgbm_booster(nan=True).model_to_string())
    rows = probe_rows()[:40]
    together = trees.raw_scores(rows)
    one_by_one = np.vstack([trees.raw_scores(rows[i : i + 1]) for i in range(len(rows))])
    monkeypatch.setattr(tree_module, "CHUNK_CELLS", 3 * trees.n_trees)
    chunked = trees.raw_scores(rows)
    assert np.array_equal(together, one_by_one) and np.array_equal(together, chunked)


def test_the_sum_runs_tree_by_tree_in_iteration_order():
    """Output k adds trees k, K + k, 2K + k, ... one by one, as LightGBM does: 40 single-leaf
    trees whose leaves span many magnitudes, so that another order (numpy's pairwise sum, the
    sorted sum) gives other bits."""
    leaves = np.random.default_rng(5).normal(size=40) * 10.0 ** np.arange(-8, 12, 0.5)
    text = "tree\nnum_class=1\nnum_tree_per_iteration=1\nfeature_names=a\nobjective=multiclass num_class:1\n\n"
    for i, value in enumerate(leaves):
        text += f"Tree={i}\nnum_leaves=1\nleaf_value={float(value)!r}\n\n"
    trees = BinaryTrees.from_lightgbm_text(text + "end of trees\n")
    in_order = 0.0
    for value in leaves:
        in_order += float(value)
    assert trees.raw_scores(np.zeros((2, 1)))[:, 0].tolist() == [in_order, in_order]
    assert in_order != float(leaves.sum()) and in_order != sum(sorted(leaves.tolist()))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "header field"),
        ("tree\nnum_tree_per_iteration=11\nfeature_names=a\nobjective=binary sigmoid:1\n\nTree=0\n", "objective"),
        (
            "tree\nnum_tree_per_iteration=2\nfeature_names=a\nobjective=multiclass\n\nTree=0\nnum_leaves=1\n",
            "2 classes",
        ),
        (
            "tree\nnum_tree_per_iteration=1\nfeature_names=a\nobjective=multiclass\n\nTree=0\nnum_leaves=2\n"
            "split_feature=3\nthreshold=0\ndecision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n",
            "feature 3 of 1",
        ),
        (
            "tree\nnum_tree_per_iteration=1\nfeature_names=a\nobjective=multiclass\n\nTree=0\nnum_leaves=2\n"
            "split_feature=0\nthreshold=x\ndecision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n",
            "unreadable tree field",
        ),
        (
            "tree\nnum_tree_per_iteration=1\nfeature_names=a\nobjective=multiclass\n\nTree=0\nnum_leaves=3\n"
            "split_feature=0\nthreshold=0\ndecision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n",
            "values of split_feature for 2",
        ),
        (
            "tree\nnum_tree_per_iteration=1\nfeature_names=a\nobjective=multiclass\n\nTree=0\nnum_leaves=2\n"
            "split_feature=0\nthreshold=0\ndecision_type=2\nleft_child=0\nright_child=-2\nleaf_value=1 2\n",
            "before its parent",
        ),
        (
            "tree\nnum_tree_per_iteration=1\nfeature_names=a\nobjective=multiclass\n\nTree=0\nnum_leaves=2\n"
            "split_feature=0\nthreshold=0\ndecision_type=2\nleft_child=-1\nright_child=-3\nleaf_value=1 2\n",
            "outside its tree",
        ),
        (
            "tree\nnum_tree_per_iteration=1\nfeature_names=a\nobjective=multiclass\n\nTree=0\nnum_leaves=2\n"
            "split_feature=0\nthreshold=0\ndecision_type=3\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n",
            "categorical",
        ),
        (
            "tree\nnum_tree_per_iteration=1\nfeature_names=a\nobjective=multiclass\n\nTree=0\nnum_leaves=2\n"
            "split_feature=0\nthreshold=0\ndecision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=1 2 3\n\n"
            "Tree=1\nnum_leaves=2\nsplit_feature=0\nthreshold=0\ndecision_type=2\nleft_child=-1\nright_child=-2\n"
            "leaf_value=4\n",
            "3 values of leaf_value for 2 in tree block 0",
        ),
        (
            "tree\nnum_tree_per_iteration=1\nfeature_names=a\nobjective=multiclass\n\nTree=0\nnum_leaves=2\n"
            "split_feature=-1\nthreshold=0\ndecision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n",
            "reads feature -1 of 1",
        ),
    ],
    ids=[
        "empty",
        "binary",
        "partial-iteration",
        "feature-index",
        "unreadable-number",
        "leaf-count",
        "cycle",
        "child-outside",
        "categorical",
        "leaves-shifted",
        "negative-feature",
    ],
)
def test_unreadable_lightgbm_text_is_refused_saying_what_is_wrong(text, problem):
    with pytest.raises(TreeModelError, match=problem):
        BinaryTrees.from_lightgbm_text(text)


def test_unreadable_catboost_json_is_refused_saying_what_is_wrong():
    with pytest.raises(TreeModelError, match="not a CatBoost JSON model"):
        ObliviousTrees.from_catboost_json({"features_info": {"float_features": []}})
    bad = {
        "features_info": {"float_features": [{"flat_feature_index": 0, "feature_id": "a"}]},
        "oblivious_trees": [{"splits": [{"split_type": "OneHotFeature"}], "leaf_values": [0, 0]}],
        "scale_and_bias": [1, [0]],
    }
    with pytest.raises(TreeModelError, match="split type 'OneHotFeature'"):
        ObliviousTrees.from_catboost_json(bad)
    split = {"split_type": "FloatFeature", "float_feature_index": 0, "border": 0.5}
    readable = {**bad, "oblivious_trees": [{"splits": [split], "leaf_values": [0, 0]}]}
    ObliviousTrees.from_catboost_json(readable)
    for change, problem in [
        ({"scale_and_bias": [1, [0, 0, 0]]}, "not a CatBoost JSON model"),  # 3 biases for 1 output
        ({"scale_and_bias": ["x", [0]]}, "not a CatBoost JSON model"),
        ({"features_info": {"float_features": [{"flat_feature_index": 5, "feature_id": "a"}]}}, "is not 0..0"),
        ({"oblivious_trees": [{"splits": [{**split, "float_feature_index": -1}], "leaf_values": [0, 0]}]}, "-1 of 1"),
    ]:
        with pytest.raises(TreeModelError, match=problem):
            ObliviousTrees.from_catboost_json({**readable, **change})


def test_a_catboost_file_with_unreadable_classes_is_refused_naming_the_file(tmp_path):
    from allocator_pipeline.core.common.errors import InputDataError
    from allocator_pipeline.core.models.catboost_member import CatBoostMember

    model = {
        "features_info": {"float_features": [{"flat_feature_index": 0, "feature_id": "a"}]},
        "oblivious_trees": [],
        "scale_and_bias": [1, [0, 0]],
        "model_info": {"class_params": {"class_names": ["up", "down"]}},
    }
    (tmp_path / "catboost.json").write_text(json.dumps(model))
    with pytest.raises(InputDataError, match="catboost.json.*not a readable CatBoost JSON model"):
        CatBoostMember.load(tmp_path)
