"""Errors raised on bad input: each names the file, the line and the field that is wrong."""

from __future__ import annotations


class DataError(ValueError):
    """A record that cannot be used, located as precisely as the caller knows."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.message, self.path, self.line, self.field = message, path, line, field
        where = []
        if path is not None:
            where.append(str(path) if line is None else f"{path}:{line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
