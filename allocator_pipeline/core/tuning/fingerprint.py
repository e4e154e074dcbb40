"""The fingerprint of a fold's tuning problem: what a trial's objective depends on.

A stored study records it; a study stored for another fingerprint (other settings that change the
objective, another search space, other inner frames or leg panel rows) is not resumed
(``core/tuning/study.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import pandas as pd
from optuna.distributions import BaseDistribution

from allocator_pipeline.settings import Settings

__all__ = ["OBJECTIVE_SECTIONS", "OUTSIDE_THE_PROBLEM", "frame_digest", "problem_fingerprint"]

OBJECTIVE_SECTIONS = ("labels", "costs", "models", "ensemble", "policy", "envelope")
"""Settings sections a trial's objective depends on (with the objective's weights in ``tuning``);
features and folds enter the fingerprint through the inner frames themselves."""
OUTSIDE_THE_PROBLEM = (
    "enabled",
    "selection",
    "n_trials",
    "model_trials",
    "timeout_seconds",
    "seed",
    "pruning",
    "storage",
    "workers",
    "fit_reuse",
)
"""``tuning`` settings left out of the fingerprint: they steer the search (budget, its split between
model and cheap trials, seed, pruning, storage, workers), its speed (fit_reuse) or which finished
trial trades (selection), not a trial's objective."""


def frame_digest(frame: pd.DataFrame) -> bytes:
    """The rows' 64-bit hashes (index and values, ``pd.util.hash_pandas_object``) and the column names, as bytes."""
    values = pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()
    return values + ",".join(map(str, frame.columns)).encode()


def problem_fingerprint(
    inner_frames: Sequence[pd.DataFrame],
    utilities: pd.DataFrame,
    context: pd.DataFrame,
    settings: Settings,
    space: Mapping[str, BaseDistribution],
) -> str:
    """SHA-256 of what a trial's objective depends on (see the module docstring), without the
    settings of :data:`OUTSIDE_THE_PROBLEM`."""
    full = settings.model_dump(mode="json")
    tree = {key: full[key] for key in OBJECTIVE_SECTIONS}
    tree["tuning"] = {k: v for k, v in full["tuning"].items() if k not in OUTSIDE_THE_PROBLEM}
    h = hashlib.sha256(
        json.dumps({"settings": tree, "space": {k: repr(v) for k, v in space.items()}}, sort_keys=True).encode()
    )
    last = max(f.index[-1] for f in inner_frames)
    end = context.index.get_indexer([last])[0] + settings.labels.horizon + 1
    for frame in inner_frames:
        h.update(frame_digest(frame))
        h.update(frame_digest(utilities.reindex(frame.index)))
    h.update(frame_digest(context.iloc[:end].select_dtypes("number")))
    return h.hexdigest()
