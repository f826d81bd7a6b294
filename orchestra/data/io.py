"""Reading JSON and JSONL files with errors that name the file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from orchestra.data.errors import DataError


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a bad line raises `DataError` naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError("file not found", path=path)
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"not valid JSON ({e.msg} at column {e.colno})", path=path, line=number) from None
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=number)
            yield number, obj


def read_json(path: str | os.PathLike):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError("file not found", path=path)
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})", path=path) from None


def require(obj: dict, field: str, kind: type | tuple[type, ...], *, path: str, line: int | None = None,
            prefix: str = ""):
    """`obj[field]`, checked to be of `kind`; otherwise a `DataError` naming the field."""
    name = prefix + field
    if field not in obj:
        raise DataError("missing", path=path, line=line, field=name)
    value = obj[field]
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"expected {expected}, got {type(value).__name__}", path=path, line=line, field=name)
    return value
