"""Fingerprints of a run's inputs: short digests that say whether two runs used the same settings
and the same Step 3 data, recorded with each walk-forward report (the run history, ``allocator runs``).

Both are SHA-256 digests (first 12 hex digits) of canonical content, so they are stable across
processes, machines and homes: the settings' digest leaves out where things live (``home``,
``data.prices_dir``, ``data.step3_dir``), the Step 3 digest hashes the leg panel's values and index.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from allocator_pipeline.core.common.storage import to_json_text

#: Settings that say where the inputs and artifacts live, not what the run computes.
LOCATION_FIELDS: tuple[tuple[str, ...], ...] = (("home",), ("data", "prices_dir"), ("data", "step3_dir"))
DIGITS = 12


def settings_fingerprint(settings_tree: dict[str, Any]) -> str:
    """Digest of a run's settings (``Settings.model_dump(mode="json")``) without their locations.

    >>> a = {"home": "/a", "data": {"step3_dir": "/x", "qqq_symbol": "QQQ"}, "policy": {"alpha": 0.7}}
    >>> b = {"home": "/b", "data": {"step3_dir": "/y", "qqq_symbol": "QQQ"}, "policy": {"alpha": 0.7}}
    >>> settings_fingerprint(a) == settings_fingerprint(b), len(settings_fingerprint(a))
    (True, 12)
    >>> settings_fingerprint(a) == settings_fingerprint({**a, "policy": {"alpha": 0.5}})
    False
    """
    tree = _without_locations(settings_tree)
    return hashlib.sha256(to_json_text(tree).encode()).hexdigest()[:DIGITS]


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """Digest of a frame's index, columns and values (row order included): the Step 3 legs a run read.

    >>> f = pd.DataFrame({"leg_return": [0.01, -0.02]}, index=pd.to_datetime(["2024-01-02", "2024-01-03"]))
    >>> frame_fingerprint(f) == frame_fingerprint(f.copy()), frame_fingerprint(f) == frame_fingerprint(f * 2)
    (True, False)
    """
    digest = hashlib.sha256()
    digest.update(to_json_text([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()[:DIGITS]


def _without_locations(tree: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in tree.items()}
    for path in LOCATION_FIELDS:
        node: Any = out
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out
