"""The reverse index over the cache: function -> parameter -> normalised value -> entries.

Values are compared in the cache's own canonical form (`normalise_value`: "42" equals 42), so a
value read from a response matches the argument the recorded call was made with.
"""

from __future__ import annotations

import json

from orchestra.env.cache import ApiCache
from orchestra.data.canonical import normalise_value


def value_key(value) -> str:
    """A value's canonical form as a string: equal keys, equal values for the cache."""
    return json.dumps(normalise_value(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def value_strings(value) -> list[str]:
    """The normalised string forms of a value's scalars (a list or object gives one per leaf):
    what must (or must not) appear in a query."""
    value = normalise_value(value)
    if isinstance(value, dict):
        return [s for v in value.values() for s in value_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in value_strings(v)]
    if value is None:
        return []
    return [value if isinstance(value, str) else json.dumps(value)]


class ReverseIndex:
    """Entry indices of `cache` by function, and by (function, parameter, value)."""

    def __init__(self, cache: ApiCache):
        self.cache = cache
        by_function: dict[str, list[int]] = {}
        table: dict[str, dict[str, dict[str, list[int]]]] = {}
        for i, (function, arguments) in enumerate(zip(cache.functions, cache.arguments)):
            by_function.setdefault(function, []).append(i)
            params = table.setdefault(function, {})
            for name, value in arguments.items():
                if value is None:  # the cache drops null arguments
                    continue
                params.setdefault(name, {}).setdefault(value_key(value), []).append(i)
        self._by_function = {f: tuple(v) for f, v in by_function.items()}
        # function -> parameter -> value key -> entries, all in entry order
        self.table: dict[str, dict[str, dict[str, tuple[int, ...]]]] = {
            f: {p: {k: tuple(v) for k, v in by_value.items()} for p, by_value in params.items()}
            for f, params in table.items()}

    @property
    def functions(self) -> list[str]:
        return sorted(self._by_function)

    def entries(self, function: str) -> tuple[int, ...]:
        return self._by_function.get(function, ())

    def matching(self, function: str, param: str, value) -> tuple[int, ...]:
        """Entries of `function` whose argument `param` equals `value` (canonically)."""
        return self.table.get(function, {}).get(param, {}).get(value_key(value), ())

    def observed_values(self) -> dict[str, list]:
        """Parameter name -> the distinct values recorded for it under any function, in a fixed
        order (by canonical key): the free proposals of the unconstrained baseline."""
        pooled: dict[str, dict[str, object]] = {}
        for function in self.functions:
            for param, by_value in self.table[function].items():
                slot = pooled.setdefault(param, {})
                for key, entries in by_value.items():
                    slot.setdefault(key, self.cache.arguments[entries[0]][param])
        return {p: [slot[k] for k in sorted(slot)] for p, slot in sorted(pooled.items())}
