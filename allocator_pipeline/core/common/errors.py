"""Input errors that say exactly what is wrong: file, column, row and value."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class InputDataError(ValueError):
    """Bad input data. Raised before anything is written.

    Attributes name the file, column, row (0-based data row, or a session date) and the offending
    value, so a user can open the file and find the problem.
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
