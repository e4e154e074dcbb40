"""Input errors that say exactly what is wrong: file, column, row and value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class InputDataError(ValueError):
    """Bad input data. Raised before anything is written.

    Attributes name the file, column, row (0-based data row, or a session date) and the offending
    value, so a user can open the file and find the problem. A numpy scalar is shown as
    the plain value it holds, never as a Python repr such as ``np.float64(...)``:

    >>> str(InputDataError("above the bound", file="b.parquet", row=np.int64(3), value=np.float64(0.3)))
    'file b.parquet, row 3, value 0.3: above the bound'
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        column: str | None = None,
        row: Any = None,
        value: Any = None,
    ) -> None:
        row, value = _plain(row), _plain(value)
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.column = column
        self.row = row
        self.value = value
        parts = []
        if self.file is not None:
            parts.append(f"file {self.file}")
        if column is not None:
            parts.append(f"column {column!r}")
        if row is not None:
            parts.append(f"row {row}")
        if value is not None:
            parts.append(f"value {value!r}")
        where = ", ".join(parts)
        super().__init__(f"{where}: {problem}" if where else problem)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (its repr would read ``np.float64(0.3)``)."""
    return value.item() if isinstance(value, np.generic) else value
