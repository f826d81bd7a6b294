"""Response paths: where in an earlier response a dependent argument's value is read.

A path is keys joined by "." with list indices in brackets: `destinations[0].id`,
`[0].coordinates.latitude`, `flightOffers[0].segments[1].arrivalAirport.name`. Most recorded
responses are wrapped as `{"status", "message", "data"}` and paths are written relative to `data`,
so on such a wrapper the path is read inside `data`; any other response is read as it is.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

MISSING = object()  # what `read_field` returns when the path leads nowhere
_SEGMENT = re.compile(r"([^.\[\]]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


class PathError(ValueError):
    """A response path that cannot be parsed."""


@functools.lru_cache(maxsize=4096)
def parse_path(path: str) -> tuple[str | int, ...]:
    """`a.b[2].c` -> ("a", "b", 2, "c"); a malformed path raises `PathError` saying why."""
    if not isinstance(path, str) or not path:
        raise PathError(f"response path must be a non-empty string, got {path!r}")
    tokens: list[str | int] = []
    for i, segment in enumerate(path.split(".")):
        m = _SEGMENT.fullmatch(segment)
        if m is None:
            raise PathError(f"malformed response path {path!r}: bad segment {segment!r} "
                            "(expected name, name[i] or [i])")
        name, indices = m.group(1), m.group(2)
        if not name and not indices:
            raise PathError(f"malformed response path {path!r}: empty segment")
        if not name and i > 0:
            raise PathError(f"malformed response path {path!r}: index {segment!r} must follow a name "
                            "except at the start")
        if name:
            tokens.append(name)
        tokens.extend(int(x) for x in _INDEX.findall(indices))
    return tuple(tokens)


def format_path(tokens: tuple[str | int, ...]) -> str:
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else (f".{t}" if out else t)
    return out


def is_wrapper(response) -> bool:
    return isinstance(response, dict) and "data" in response and ("status" in response or "message" in response)


def unwrap(response):
    """The part of a response that paths are written against."""
    return response["data"] if is_wrapper(response) else response


def read_field(response, path: str):
    """The value at `path` in `response` (see the module note on the `data` wrapper), or `MISSING`."""
    value = unwrap(response)
    for token in parse_path(path):
        if isinstance(token, int):
            if not isinstance(value, list) or token >= len(value):
                return MISSING
        elif not isinstance(value, dict) or token not in value:
            return MISSING
        value = value[token]
    return value


def leaves(response, max_leaves: int = 20000) -> Iterator[tuple[tuple[str | int, ...], object]]:
    """(path tokens, value) for every scalar in the unwrapped response, depth first, at most
    `max_leaves` (the largest recorded responses hold some 10^4 scalars)."""
    stack = [((), unwrap(response))]
    seen = 0
    while stack and seen < max_leaves:
        prefix, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((prefix + (k,), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((prefix + (i,), v) for i, v in reversed(list(enumerate(value))))
        else:
            seen += 1
            yield prefix, value
