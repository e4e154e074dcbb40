"""Inner-split member fits reused across folds and runs: an on-disk store keyed by their inputs.

Fold ``k + 1``'s inner splits overlap fold ``k``'s: an inner split with the same rows, the same
model settings and the same seed is fitted identically by both studies. :class:`FitStore` keeps the
members' outputs on such a split (:class:`MemberOutputs`: validation and held-out probabilities,
the held-out rows' out-of-range flags) in one file per fit, so the second study reads them instead
of fitting again. Training is deterministic (fixed seeds, LightGBM ``deterministic``), so a stored
entry is bit for bit what a fresh fit gives.

Key (:func:`fit_key`)
    SHA-256 of everything :func:`member_outputs` reads: the ``train`` and ``val`` rows' features and
    ``label_class``, the ``test`` rows' features (each part with its index, column names and
    dtypes), the utility table on the ``train`` rows (feature screen and row weights), the
    ``models`` settings (members, hyperparameters, ``seed``, ``threads``, screen, weights) and
    ``gates.monotonic_features`` (the screen reads them); plus :data:`CACHE_VERSION`, a digest of the
    source files of the fitting code (:data:`CODE_FILES`) and the versions of the libraries that fit
    (:data:`LIBRARIES`), the Python version and the machine architecture. Any change to one of
    them is another key: a stale entry is never read.
Layout
    ``<home>/step3_out/allocator/optuna/fit_cache/<key>.npz`` (``settings.paths.optuna``), one
    uncompressed NumPy archive per fit (fixed timestamps inside: the same fit, the same bytes), read
    with ``allow_pickle=False``: ``meta`` (JSON text:
    version, key, member names in order), ``val.<member>`` and ``test.<member>`` (float64,
    ``(n, 11)``), ``y_val`` (int64), ``test_index`` (int64 nanoseconds since the epoch, UTC) and
    ``test_out_of_range`` (bool). No models are stored.
Writes
    To ``.<key>.npz.<random>.tmp`` beside the entry, flushed and fsynced, then renamed over it
    (``os.replace``): a reader sees a whole entry or none, a killed process leaves at most a temporary
    file (removed by the next command, ``core/common/journal.recover``). Two processes fitting the
    same key write the same bytes and the last rename wins. The store is outside the command's
    rollback journal: its entries are valid whatever the command's outcome, so a failed or killed
    run keeps the fits it finished. An entry that cannot be read, or whose meta, validation labels
    or held-out index disagree with the frame, counts as a miss and is fitted and written again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import platform
import secrets
import sys
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.allocation.fold_model import (
    SPLIT_COLUMN,
    feature_columns,
    fit_fold_members,
    input_ranges,
    out_of_range,
    split_rows,
    xy,
)
from allocator_pipeline.core.tuning.fingerprint import frame_digest
from allocator_pipeline.settings import Settings

__all__ = [
    "CACHE_VERSION",
    "CODE_FILES",
    "FIT_CACHE_DIR",
    "LIBRARIES",
    "FitStore",
    "MemberOutputs",
    "fit_key",
    "fit_store",
    "member_outputs",
    "reuse_line",
    "reuse_summary",
]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Format of an entry and of its key; raising it orphans every stored entry."""
FIT_CACHE_DIR = "fit_cache"
"""The store's directory under ``settings.paths.optuna``."""
LIBRARIES = ("numpy", "pandas", "scikit-learn", "scipy", "lightgbm", "catboost")
"""Distributions whose versions enter the key."""
CODE_FILES = (
    "core/models/*.py",
    "core/allocation/fold_model.py",
    "core/common/grid.py",
    "core/features/risk.py",
    "core/tuning/fit_cache.py",
)
"""Source files (globs under the package) whose text enters the key: the fitting code."""
_PACKAGE = Path(__file__).resolve().parents[2]


@dataclass
class MemberOutputs:
    """What the objective needs of one inner split's fitted members.

    Attributes
    ----------
    val : dict of str to ndarray
        Member name -> validation probabilities, ``(n_val, 11)`` float64, in ``models.members`` order.
    y_val : ndarray
        Validation bucket classes (int64, 0..10).
    test : dict of str to ndarray
        Member name -> held-out probabilities, ``(n_test, 11)`` float64.
    test_index : DatetimeIndex
        The held-out rows' decision timestamps.
    test_out_of_range : ndarray
        Bool per held-out row: a model input outside its train + validation range.
    """

    val: dict[str, np.ndarray]
    y_val: np.ndarray
    test: dict[str, np.ndarray]
    test_index: pd.DatetimeIndex
    test_out_of_range: np.ndarray


def member_outputs(frame: pd.DataFrame, settings: Settings, utilities: pd.DataFrame) -> MemberOutputs:
    """Fit the members on an inner split frame (``fit_fold_members``) and predict its validation and
    held-out rows."""
    members = fit_fold_members(frame, settings, utilities)
    x_val, y_val = xy(frame, "val")
    test = split_rows(frame, "test")
    x_test = test[feature_columns(frame)]
    names = list(next(iter(members.values())).feature_names)
    return MemberOutputs(
        val={name: m.predict_proba(x_val) for name, m in members.items()},
        y_val=y_val,
        test={name: m.predict_proba(x_test) for name, m in members.items()},
        test_index=pd.DatetimeIndex(test.index),
        test_out_of_range=out_of_range(x_test, input_ranges(frame, names)),
    )


@lru_cache(maxsize=1)
def _environment_digest() -> str:
    """The fitting code's sources, the libraries' versions, Python and the architecture (hex SHA-256)."""
    h = hashlib.sha256(f"{CACHE_VERSION}|{sys.version}|{platform.machine()}".encode())
    for name in LIBRARIES:
        h.update(f"|{name}={metadata.version(name)}".encode())
    for path in sorted({p for pattern in CODE_FILES for p in _PACKAGE.glob(pattern)}):
        h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _part_digest(frame: pd.DataFrame) -> bytes:
    """SHA-256 of a frame's rows (index and values), column names and dtypes."""
    h = hashlib.sha256(frame_digest(frame))
    h.update(repr([str(t) for t in frame.dtypes]).encode() + repr(frame.index.dtype).encode())
    return h.digest()


def fit_key(frame: pd.DataFrame, settings: Settings, utilities: pd.DataFrame) -> str:
    """The store's key of an inner split's fit (hex SHA-256 of its inputs; module docstring).

    Parameters
    ----------
    frame : DataFrame
        The inner split frame (``split`` column, features, ``label_class``), relabelled if the
        trial changed the labels.
    settings : Settings
        The trial's settings (``models`` and ``gates.monotonic_features`` are read).
    utilities : DataFrame
        The utility table the fit weights and screens with (its ``train`` rows are read).
    """
    columns = feature_columns(frame)
    tree = {
        "environment": _environment_digest(),
        "models": settings.models.model_dump(mode="json"),
        "monotonic_features": list(settings.gates.monotonic_features),
    }
    h = hashlib.sha256(json.dumps(tree, sort_keys=True).encode())
    split = frame[SPLIT_COLUMN]
    for name, cols in (("train", [*columns, "label_class"]), ("val", [*columns, "label_class"]), ("test", columns)):
        h.update(name.encode() + _part_digest(frame.loc[split == name, cols]))
    h.update(b"utilities" + _part_digest(utilities.reindex(frame.index[split == "train"])))
    return h.hexdigest()


def _archive(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of an uncompressed ``.npz`` (what ``np.savez`` writes) with fixed member timestamps,
    so the same arrays give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def _utc_nanoseconds(index: pd.Index) -> np.ndarray:
    stamps = pd.DatetimeIndex(index)
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    return stamps.as_unit("ns").asi8.astype(np.int64)


@dataclass
class FitStore:
    """Member outputs of inner-split fits on disk, one ``<key>.npz`` per fit (module docstring).

    Attributes
    ----------
    directory : Path
        Where the entries live (created on the first write).
    hits : int
        Fits read from the store by this object (inner fits saved).
    misses : int
        Fits computed (and written) by this object.
    """

    directory: Path
    hits: int = 0
    misses: int = 0

    def path(self, key: str) -> Path:
        """The entry file of ``key``."""
        return self.directory / f"{key}.npz"

    def outputs(self, frame: pd.DataFrame, settings: Settings, utilities: pd.DataFrame) -> MemberOutputs:
        """The split's member outputs: read from the store, or fitted (:func:`member_outputs`) and stored."""
        key = fit_key(frame, settings, utilities)
        stored = self.load(key, frame)
        if stored is not None:
            self.hits += 1
            return stored
        self.misses += 1
        fresh = member_outputs(frame, settings, utilities)
        self.save(key, fresh)
        return fresh

    def load(self, key: str, frame: pd.DataFrame) -> MemberOutputs | None:
        """The entry of ``key`` checked against ``frame`` (its validation labels and held-out
        index), or None when absent, unreadable or inconsistent."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {name: data[name] for name in data.files if name != "meta"}
            names = list(meta["members"])
            y_val = xy(frame, "val")[1]
            test_index = pd.DatetimeIndex(split_rows(frame, "test").index)
            consistent = (
                meta.get("version") == CACHE_VERSION
                and meta.get("key") == key
                and np.array_equal(arrays["y_val"], y_val)
                and np.array_equal(arrays["test_index"], _utc_nanoseconds(test_index))
            )
            if not consistent:
                log.warning("fit cache entry %s does not match its split; fitting again", path.name)
                return None
            return MemberOutputs(
                val={name: arrays[f"val.{name}"] for name in names},
                y_val=y_val,
                test={name: arrays[f"test.{name}"] for name in names},
                test_index=test_index,
                test_out_of_range=arrays["test_out_of_range"].astype(bool),
            )
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            log.warning("fit cache entry %s is unreadable (%s); fitting again", path.name, exc)
            return None

    def save(self, key: str, outputs: MemberOutputs) -> Path:
        """Write the entry of ``key`` atomically (temporary file, fsync, rename); returns its path."""
        meta = {"version": CACHE_VERSION, "key": key, "members": list(outputs.val)}
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta, sort_keys=True))}
        for name in outputs.val:
            arrays[f"val.{name}"] = np.ascontiguousarray(outputs.val[name], dtype=np.float64)
            arrays[f"test.{name}"] = np.ascontiguousarray(outputs.test[name], dtype=np.float64)
        arrays["y_val"] = np.asarray(outputs.y_val, dtype=np.int64)
        arrays["test_index"] = _utc_nanoseconds(outputs.test_index)
        arrays["test_out_of_range"] = np.asarray(outputs.test_out_of_range, dtype=bool)
        data = _archive(arrays)
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def counts(self) -> dict[str, int]:
        """``{"hits": ..., "misses": ...}`` of this object."""
        return {"hits": self.hits, "misses": self.misses}


def fit_store(settings: Settings) -> FitStore | None:
    """The run's store (``<paths.optuna>/fit_cache``), or None when ``tuning.fit_reuse`` is off."""
    if not settings.tuning.fit_reuse:
        return None
    return FitStore(settings.paths.optuna / FIT_CACHE_DIR)


def reuse_summary(store: FitStore | None, fitted: int) -> dict[str, Any]:
    """A study's fit-reuse counts (``TuningResult.fit_reuse``).

    Parameters
    ----------
    store : FitStore or None
        The study's store (None: ``tuning.fit_reuse`` off).
    fitted : int
        Member fits the study computed.

    Returns
    -------
    dict
        ``enabled``, ``fitted`` and, with a store, its ``hits`` (fits read: saved), ``misses`` and
        ``directory``.
    """
    if store is None:
        return {"enabled": False, "fitted": fitted}
    return {"enabled": True, "fitted": fitted, **store.counts(), "directory": str(store.directory)}


def reuse_line(summary: dict[str, Any]) -> str:
    """One line of :func:`reuse_summary`'s counts, for the study's progress and log."""
    if not summary.get("enabled"):
        return f"{summary['fitted']} fitted (tuning.fit_reuse is off)"
    return f"{summary['hits']} read from the fit cache, {summary['misses']} fitted"
