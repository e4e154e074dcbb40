"""Atomic, deterministic artifact writes.

Every artifact is written to a temporary file in the target directory (``.<name>.<random>.tmp``),
flushed, then renamed over the target (``os.replace`` is atomic on POSIX), so a crash never leaves
a half-written file and a reader never sees one; a temporary file left by a killed process is
removed by the next command (``journal.recover``). Files are created with mode ``0o666`` less
the process umask (0644 with the usual umask 022), like any file a user writes. Parquet and JSON
outputs are deterministic: the same frame or object gives the same bytes.

While a command's journal is open (``core/common/journal.py``), every change goes through it
first, so a failed command can put the previous set of artifacts back: :func:`atomic_path`,
:func:`remove`, :func:`preserve_in_place` (a file a library changes in place, such as an Optuna
SQLite study) and :func:`publish_directory` (a staged directory renamed into place).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allocator_pipeline.core.common import journal


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``."""
    target = Path(path)
    current = journal.active()
    if current is not None:
        current.preserve(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temporary_file(target)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _temporary_file(target: Path) -> Path:
    """Create ``.<name>.<random>.tmp`` beside ``target`` with mode 0o666 less the umask (unlike
    ``tempfile.mkstemp``, which creates 0600 files that the rename would publish as such)."""
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def remove(path: str | Path) -> None:
    """Remove a file or a directory tree (kept by the open journal, if any, for a rollback)."""
    target = Path(path)
    if not target.exists():
        return
    current = journal.active()
    if current is not None:
        current.preserve(target)
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    elif target.exists():
        target.unlink()


def preserve_in_place(path: str | Path) -> Path:
    """Declare that a library is about to change ``path`` in place (or create it): the open
    journal, if any, keeps a copy first. Returns ``path``."""
    current = journal.active()
    if current is not None:
        current.preserve(Path(path), in_place=True)
    return Path(path)


def publish_directory(staging: str | Path, target: str | Path) -> Path:
    """Rename a fully written ``staging`` directory to ``target`` (replacing it)."""
    staging, target = Path(staging), Path(target)
    remove(target)
    current = journal.active()
    if current is not None:
        current.preserve(target)
    staging.rename(target)
    return target


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame to parquet atomically (zstd, index kept)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, engine="pyarrow", compression="zstd", index=True)
    return Path(path)


def read_parquet(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A parquet file as written by :func:`write_parquet` (``columns``: only those, and the index)."""
    return pd.read_parquet(path, engine="pyarrow", columns=None if columns is None else list(columns))


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_json_text(obj: Any) -> str:
    """Deterministic JSON text: sorted keys, NaN/inf as null, numpy scalars as Python numbers."""
    return json.dumps(_to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as deterministic JSON atomically."""
    return write_text(to_json_text(obj), path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_text(text: str, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(data: bytes, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
