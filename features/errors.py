"""The one exception a stage reports to the user: a fatal problem with the input data or its config."""

from __future__ import annotations


class DataError(ValueError):
    """A fatal input problem naming the file, the column (if any) and what was expected."""

    def __init__(self, file: str, column: str | None, expected: str, detail: str = "") -> None:
        """Keep the parts for callers and compose the one-line message."""
        self.file = str(file)
        self.column = column
        self.expected = expected
        self.detail = detail
        super().__init__(self.message())

    def message(self) -> str:
        """`<file>: column '<column>': expected <expected>; <detail>` on one line."""
        where = f"{self.file}: column '{self.column}'" if self.column else self.file
        text = f"{where}: expected {self.expected}"
        if self.detail:
            text += f"; {self.detail}"
        return " ".join(text.split())
