"""Tree ensembles evaluated from their stored arrays: a LightGBM text model and a CatBoost JSON
model predicted with numpy, without importing either library.

The daily decision predicts with the stored members of 18 folds; importing LightGBM (which
imports ``scipy.sparse`` and narwhals) and CatBoost, and parsing CatBoost's JSON through a
temporary file, cost more than the arithmetic. The fitting libraries write the models; these
classes read the same files and evaluate them the way the libraries do:

* :class:`BinaryTrees` (LightGBM): each node sends a row left when ``value <= threshold``; a NaN
  is read as 0 unless the node's missing type is NaN, and a missing value (NaN, or 0 for the
  missing type *zero*) goes to the node's default side (LightGBM's ``Tree::NumericalDecision``);
  a dense row's entries with ``|value| <= 1e-35f`` are read as 0, as LightGBM drops them. The raw
  score of class ``k`` adds the leaf values of the trees ``i * K + k`` in iteration order
  (LightGBM's ``GBDT::PredictRaw``).
* :class:`ObliviousTrees` (CatBoost): the features are cast to float32 like CatBoost's own, and
  split ``d`` of a tree sets bit ``d`` of the leaf index when ``value > border`` (a NaN sets it
  only where the feature's ``nan_value_treatment`` is ``AsTrue``); the raw scores add the trees'
  leaf vectors in order, then ``scale * raw + bias``.

Every tree member predicts through these arrays: the fold models, the tuner's inner splits, the
backtest and the live decision alike (one code path). A row's scores do not depend on the other
rows of the call (the sums run tree by tree). At fit time each member checks its arrays against
the library's own prediction of the validation rows (``core/models/lightgbm_member.py``,
``core/models/catboost_member.py``); a test compares them on NaN, zero and out-of-range inputs.

Example
-------
A one-split LightGBM-style model over two outputs, written by hand:

>>> import numpy as np
>>> trees = BinaryTrees.from_lightgbm_text(
...     "tree\\nnum_class=2\\nnum_tree_per_iteration=2\\nfeature_names=a b\\nobjective=multiclass num_class:2\\n\\n"
...     "Tree=0\\nnum_leaves=2\\nsplit_feature=1\\nthreshold=0.5\\ndecision_type=2\\nleft_child=-1\\n"
...     "right_child=-2\\nleaf_value=1 2\\n\\nTree=1\\nnum_leaves=1\\nleaf_value=0.25\\n\\nend of trees\\n"
... )
>>> trees.raw_scores(np.array([[0.0, 0.4], [0.0, 0.6], [0.0, np.nan]]))
array([[1.  , 0.25],
       [2.  , 0.25],
       [1.  , 0.25]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ZERO_THRESHOLD = float(np.float32(1e-35))
"""LightGBM's ``kZeroThreshold`` (``1e-35f``, a float: 1.0000000180025095e-35): a dense row's entry
at most this far from 0 is read as 0."""
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
"""LightGBM's missing types, bits 2-3 of a node's ``decision_type`` (bit 1: default left)."""
CHUNK_CELLS = 1 << 21
"""Rows are evaluated in chunks of at most this many (row, tree) cells (memory, not results)."""


class TreeModelError(ValueError):
    """A stored tree model that cannot be read (the member names its file)."""


def _row_step(n_trees: int) -> int:
    """Rows per chunk for a model of ``n_trees`` trees."""
    return max(1, CHUNK_CELLS // max(n_trees, 1))


def _sum_in_order(values: np.ndarray) -> np.ndarray:
    """``values[:, 0] + values[:, 1] + ...`` for ``values`` of shape ``(n, T, K)``: the trees
    added one by one, in order, as the libraries do."""
    out = np.zeros((values.shape[0], values.shape[2]))
    for t in range(values.shape[1]):
        out += values[:, t]
    return out


@dataclass(frozen=True)
class BinaryTrees:
    """LightGBM's trees, flattened over the model: every split and every leaf is a node, numbered
    across the trees; a leaf is its own child (its threshold is +inf), so a traversal of
    ``depth`` steps ends every row on a leaf whatever the tree's own depth.

    Attributes
    ----------
    feature, threshold : ndarray, one entry per node
        The column a split reads and its threshold (leaves: column 0, +inf).
    children : ndarray of int, shape (nodes, 2)
        Left and right child of each node (a leaf: itself twice).
    default_left, missing : ndarray, one entry per node
        The side a missing value takes and the node's missing type (leaves: none).
    value : ndarray of float64, one entry per node
        The leaf values (0 at splits).
    root : ndarray of int, one per tree
    n_outputs : int
        Trees per iteration (the classes); tree ``t`` adds to output ``t % n_outputs``.
    depth : int
        The longest root-to-leaf path (splits), the traversal's number of steps.
    feature_names : tuple of str
    """

    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    value: np.ndarray
    root: np.ndarray
    n_outputs: int
    depth: int
    feature_names: tuple[str, ...]

    @property
    def n_trees(self) -> int:
        return len(self.root)

    @classmethod
    def from_lightgbm_text(cls, text: str) -> BinaryTrees:
        """Parse LightGBM's text model (``Booster.model_to_string``); a multiclass objective,
        numerical splits only (what the allocator trains). Raises :class:`TreeModelError`."""
        header: dict[str, str] = {}
        trees: list[dict[str, str]] = []
        for line in text.splitlines():
            if line.startswith("Tree="):
                trees.append({})
            elif line == "end of trees":
                break
            elif "=" in line:
                key, _, value = line.partition("=")
                (trees[-1] if trees else header)[key] = value
        try:
            n_outputs = int(header["num_tree_per_iteration"])
            names = tuple(header["feature_names"].split(" "))
            objective = header["objective"].split(" ")[0]
        except (KeyError, ValueError) as exc:
            raise TreeModelError(f"not a LightGBM text model (header field {exc} missing or unreadable)") from None
        if objective != "multiclass":
            raise TreeModelError(f"LightGBM objective {objective!r}: only 'multiclass' models are read")
        if not trees or n_outputs < 1 or len(trees) % n_outputs:
            raise TreeModelError(f"{len(trees)} trees: not a whole number of iterations of {n_outputs} classes")
        return cls(**_flatten(trees, len(names)), n_outputs=n_outputs, feature_names=names)

    def raw_scores(self, matrix: np.ndarray) -> np.ndarray:
        """Raw scores ``(n, n_outputs)`` of a float64 matrix whose columns are ``feature_names``."""
        x = np.asarray(matrix, dtype=np.float64)
        x = np.where(np.abs(x) <= ZERO_THRESHOLD, 0.0, x)
        general = bool((self.missing != MISSING_NONE).any())
        if not general:  # every node reads a NaN as 0 (missing type none): read it so once
            x = np.where(np.isnan(x), 0.0, x)
        out = np.empty((len(x), self.n_outputs))
        step = _row_step(self.n_trees)
        for start in range(0, len(x), step):
            out[start : start + step] = self._raw_chunk(np.ascontiguousarray(x[start : start + step]), general)
        return out

    def _raw_chunk(self, x: np.ndarray, general: bool) -> np.ndarray:
        n, width = x.shape
        node = np.broadcast_to(self.root, (n, self.n_trees)).copy()
        cells = (np.arange(n, dtype=np.intp) * width)[:, None]
        flat = x.ravel()
        for _ in range(self.depth):
            value = flat.take(cells + self.feature.take(node))
            if general:
                missing = self.missing.take(node)
                nan = np.isnan(value)
                value = np.where(nan, 0.0, value)  # a NaN reads 0 (at a NaN-missing node it is absent anyway)
                absent = ((missing == MISSING_ZERO) & (value == 0.0)) | ((missing == MISSING_NAN) & nan)
                right = np.where(absent, ~self.default_left.take(node), value > self.threshold.take(node))
            else:
                right = value > self.threshold.take(node)
            node = self.children.take(2 * node + right)
        values = self.value.take(node)
        return _sum_in_order(values.reshape(n, self.n_trees // self.n_outputs, self.n_outputs))


def _flatten(trees: list[dict[str, str]], n_features: int) -> dict[str, Any]:
    """The :class:`BinaryTrees` arrays of the parsed tree blocks: each tree's splits then its
    leaves, numbered across the model (a tree's root is its first node), every field parsed for
    all trees at once."""
    try:
        if any(int(t.get("num_cat", "0")) or int(t.get("is_linear", "0")) for t in trees):
            raise TreeModelError("categorical or linear trees are not read")
        n_leaves = np.array([int(t["num_leaves"]) for t in trees], dtype=np.intp)
        splits = n_leaves - 1
        with_splits = [t for t, n in zip(trees, splits, strict=True) if n > 0]

        def field(key: str, dtype: type, trees_of: list[dict[str, str]], counts: np.ndarray) -> np.ndarray:
            parts = [t[key].split() for t in trees_of]
            for i, (part, count) in enumerate(zip(parts, counts, strict=True)):
                if len(part) != count:
                    raise TreeModelError(f"{len(part)} values of {key} for {count} in tree block {i}")
            values: np.ndarray = np.array([v for part in parts for v in part], dtype=dtype)
            return values

        total = int(splits.sum())
        counts = splits[splits > 0]
        feature, decision, left, right = (
            field(key, np.intp, with_splits, counts)
            for key in ("split_feature", "decision_type", "left_child", "right_child")
        )
        threshold = field("threshold", np.float64, with_splits, counts)
        leaves = field("leaf_value", np.float64, trees, n_leaves)
    except KeyError as exc:
        raise TreeModelError(f"tree field {exc} missing") from None
    except ValueError as exc:
        if isinstance(exc, TreeModelError):
            raise
        raise TreeModelError(f"unreadable tree field: {exc}") from None
    if splits.min() < 0:
        raise TreeModelError(f"a tree with {int(n_leaves.min())} leaves")
    outside = (feature < 0) | (feature >= n_features)
    if outside.any():
        raise TreeModelError(f"a split reads feature {int(feature[outside][0])} of {n_features}")
    if (decision & 1).any():
        raise TreeModelError("categorical splits are not read")
    offsets = np.concatenate([[0], np.cumsum(n_leaves + splits)[:-1]]).astype(np.intp)
    tree_of_split, tree_of_leaf = np.repeat(np.arange(len(trees)), splits), np.repeat(np.arange(len(trees)), n_leaves)
    leaf_node = (
        (offsets + splits)[tree_of_leaf] + np.arange(len(leaves)) - np.repeat(np.cumsum(n_leaves) - n_leaves, n_leaves)
    )
    n_nodes = int((n_leaves + splits).sum())
    children = np.repeat(np.arange(n_nodes, dtype=np.intp)[:, None], 2, axis=1)  # a leaf is its own child
    own = np.arange(total) - np.repeat(np.cumsum(splits) - splits, splits)  # each split's number in its tree
    split_node = offsets[tree_of_split] + own
    for side, child in enumerate((left, right)):
        # LightGBM numbers a split after its parent, so a walk down a tree ends (no cycle)
        inside = np.where(child >= 0, (child > own) & (child < splits[tree_of_split]), ~child < n_leaves[tree_of_split])
        if not inside.all():
            raise TreeModelError(f"a child {int(child[~inside][0])} outside its tree or before its parent")
        children[split_node, side] = np.where(
            child >= 0, offsets[tree_of_split] + child, (offsets + splits)[tree_of_split] + ~child
        )
    is_split = np.zeros(n_nodes, dtype=bool)
    is_split[split_node] = True
    arrays = {
        "feature": np.zeros(n_nodes, dtype=np.intp),
        "threshold": np.full(n_nodes, np.inf),
        "default_left": np.zeros(n_nodes, dtype=bool),
        "missing": np.zeros(n_nodes, dtype=np.intp),
        "value": np.zeros(n_nodes),
    }
    for name, values in (
        ("feature", feature),
        ("threshold", threshold),
        ("default_left", (decision & 2) > 0),
        ("missing", (decision >> 2) & 3),
    ):
        arrays[name][split_node] = values
    arrays["value"][leaf_node] = leaves
    depth, frontier = 0, offsets[splits > 0]
    while len(frontier):  # each step goes to higher-numbered splits: at most the largest tree's splits
        depth += 1
        below = np.unique(children[frontier])
        frontier = below[is_split[below]]
    return {**arrays, "children": children, "root": offsets, "depth": depth}


@dataclass(frozen=True)
class ObliviousTrees:
    """CatBoost's symmetric trees, padded to one depth (a padding split is never taken).

    Attributes
    ----------
    feature : ndarray of int, shape (T, D)
        The column each level of each tree reads.
    border : ndarray of float32, shape (T, D)
    nan_true : ndarray of bool, shape (T, D)
        Whether a NaN takes the split (the feature's ``nan_value_treatment`` is ``AsTrue``).
    leaf_value : ndarray of float64, shape (T, 2**D, K)
    scale : float
    bias : ndarray of float64, shape (K,)
    feature_names : tuple of str
    """

    feature: np.ndarray
    border: np.ndarray
    nan_true: np.ndarray
    leaf_value: np.ndarray
    scale: float
    bias: np.ndarray
    feature_names: tuple[str, ...]

    @classmethod
    def from_catboost_json(cls, model: dict[str, Any]) -> ObliviousTrees:
        """Read CatBoost's JSON model (``save_model(format="json")``, parsed); float features
        only (what the allocator trains). Raises :class:`TreeModelError`."""
        try:
            floats = model["features_info"]["float_features"]
            if set(model["features_info"]) - {"float_features"}:
                raise TreeModelError(f"features other than float ones: {sorted(model['features_info'])}")
            columns = [int(f["flat_feature_index"]) for f in floats]
            if sorted(columns) != list(range(len(floats))):
                raise TreeModelError(f"float features' flat_feature_index {columns[:10]} is not 0..{len(floats) - 1}")
            as_true = [f.get("nan_value_treatment") == "AsTrue" for f in floats]
            names = tuple(str(f["feature_id"]) for f in sorted(floats, key=lambda f: int(f["flat_feature_index"])))
            trees = model["oblivious_trees"]
            scale, bias = model.get("scale_and_bias", [1.0, [0.0]])
            depth = max((len(t["splits"]) for t in trees), default=0)
            n_outputs = len(trees[0]["leaf_values"]) >> len(trees[0]["splits"]) if trees else len(bias)
            shape = (len(trees), depth)
            feature, border = np.zeros(shape, dtype=np.int64), np.full(shape, np.inf, dtype=np.float32)
            nan_true = np.zeros(shape, dtype=bool)
            leaf_value = np.zeros((len(trees), 1 << depth, n_outputs))
            for i, tree in enumerate(trees):
                for d, split in enumerate(tree["splits"]):
                    if split.get("split_type") != "FloatFeature":
                        raise TreeModelError(f"tree {i}: split type {split.get('split_type')!r} is not read")
                    index = int(split["float_feature_index"])
                    if not 0 <= index < len(floats):
                        raise TreeModelError(f"tree {i}: a split reads float feature {index} of {len(floats)}")
                    feature[i, d], border[i, d], nan_true[i, d] = columns[index], split["border"], as_true[index]
                values = np.array(tree["leaf_values"], dtype=np.float64)
                if len(values) != n_outputs << len(tree["splits"]):
                    raise TreeModelError(f"tree {i}: {len(values)} leaf values for depth {len(tree['splits'])}")
                leaf_value[i, : len(values) // n_outputs] = values.reshape(-1, n_outputs)
            bias = np.broadcast_to(np.asarray(bias, dtype=np.float64), (n_outputs,)).copy()
            scale = float(scale)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            if isinstance(exc, TreeModelError):
                raise
            raise TreeModelError(f"not a CatBoost JSON model ({type(exc).__name__}: {exc})") from None
        return cls(feature, border, nan_true, leaf_value, scale, bias, names)

    @property
    def n_trees(self) -> int:
        return len(self.feature)

    def raw_scores(self, matrix: np.ndarray) -> np.ndarray:
        """Raw scores ``(n, K)`` of a float64 matrix whose columns are ``feature_names``."""
        with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as CatBoost reads it
            x = np.asarray(matrix, dtype=np.float64).astype(np.float32)
        out = np.zeros((len(x), self.leaf_value.shape[2]))
        weights = np.left_shift(1, np.arange(self.feature.shape[1]))
        for t in range(self.n_trees):  # tree by tree, in order (a row's sum does not depend on the others)
            values = x[:, self.feature[t]]  # (n, D)
            bits = (values > self.border[t]) | (np.isnan(values) & self.nan_true[t])
            out += self.leaf_value[t, (bits * weights).sum(axis=1)]
        return out * self.scale + self.bias
