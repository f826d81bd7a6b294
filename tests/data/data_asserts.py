"""Shared assertion for the data tests: a DataError names the file, the line and the field."""

import os

from orchestra.data.errors import DataError


def assert_located(error: DataError, path, line, field):
    """The error's location is exactly (path, line, field), and its message shows all three."""
    assert isinstance(error, DataError)
    assert (error.path, error.line, error.field) == (os.fspath(path), line, field)
    text = str(error)
    assert (f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)) in text
    if field is not None:
        assert f"field '{field}'" in text
