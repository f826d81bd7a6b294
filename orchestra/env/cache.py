"""ApiCache: recorded API responses keyed by canonical call, on the host and as a device table.

Host side: entries deduplicated by canonical key; two different responses for one key is an error
(or, with `on_conflict="first"`, the first recorded response wins). Device side: each key becomes a
64-bit hash stored as two uint32 words in a table sorted by (high, low); a lookup is a
`jnp.searchsorted` on the high word followed by a short, statically bounded probe over the run of
equal high words (its length is measured when the table is built). Two keys with one hash are
refused when the table is built.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from orchestra.data.types import CacheEntry, response_succeeded
from orchestra.data.canonical import canonical_key, hash64, split_hash


class CacheConflictError(ValueError):
    pass


class HashCollisionError(ValueError):
    pass


class ApiCache:
    """Distinct recorded calls and their responses, in a fixed order (entry index = position)."""

    def __init__(self, functions: list[str], arguments: list[dict], responses: list):
        self.functions = functions
        self.arguments = arguments
        self.responses = responses
        self.keys = [canonical_key(f, a) for f, a in zip(functions, arguments)]
        self.successes = np.array([response_succeeded(r) for r in responses], bool)
        self._index = {k: i for i, k in enumerate(self.keys)}
        if len(self._index) != len(self.keys):
            raise ValueError("ApiCache got duplicate keys; build it with ApiCache.from_entries")

    @classmethod
    def from_entries(cls, entries: Iterable[CacheEntry], on_conflict: str = "error") -> "ApiCache":
        if on_conflict not in ("error", "first"):
            raise ValueError(f"on_conflict must be 'error' or 'first', got {on_conflict!r}")
        seen: dict[str, int] = {}
        functions, arguments, responses = [], [], []
        for e in entries:
            key = canonical_key(e.function, e.arguments)
            if key in seen:
                i = seen[key]
                if on_conflict == "error" and _stable(responses[i]) != _stable(e.response):
                    raise CacheConflictError(f"two different recorded responses for the call {key}")
                continue
            seen[key] = len(functions)
            functions.append(e.function)
            arguments.append(e.arguments)
            responses.append(e.response)
        return cls(functions, arguments, responses)

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, function: str, arguments: dict) -> int | None:
        """Host lookup: the entry index of a call, or None on a miss."""
        return self._index.get(canonical_key(function, arguments))

    def entries_of(self, function: str) -> list[int]:
        return [i for i, f in enumerate(self.functions) if f == function]

    def device_table(self) -> "CacheTable":
        return CacheTable.build(self.keys)


def _stable(response) -> str:
    return json.dumps(response, sort_keys=True, ensure_ascii=False)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class CacheTable:
    """The device form of the cache keys: sorted hash words and the entry each sorted row belongs to."""
    high: jax.Array    # [n] uint32, sorted
    low: jax.Array     # [n] uint32, sorted within equal `high`
    entry: jax.Array   # [n] int32, entry index of each sorted row
    probe: int = dataclasses.field(metadata=dict(static=True), default=1)  # longest run of equal `high`

    @classmethod
    def build(cls, keys: list[str]) -> "CacheTable":
        words = np.array([split_hash(hash64(k)) for k in keys], np.uint32).reshape(-1, 2)
        order = np.lexsort((words[:, 1], words[:, 0]))
        words = words[order]
        same = np.all(words[1:] == words[:-1], axis=1)
        if same.any():
            i = int(np.argmax(same))
            raise HashCollisionError(f"hash collision between cache keys {keys[order[i]]!r} and {keys[order[i + 1]]!r}")
        probe = 1
        if len(words):
            _, counts = np.unique(words[:, 0], return_counts=True)
            probe = int(counts.max())
        return cls(jnp.asarray(words[:, 0]), jnp.asarray(words[:, 1]), jnp.asarray(order, jnp.int32), probe)

    @property
    def nbytes(self) -> int:
        return int(self.high.nbytes + self.low.nbytes + self.entry.nbytes)

    def lookup(self, query: jax.Array) -> jax.Array:
        """Entry index for each query hash `[..., 2]` (high, low) uint32, or -1 on a miss. Jit- and vmap-safe."""
        q_high, q_low = query[..., 0], query[..., 1]
        n = self.high.shape[0]
        if n == 0:
            return jnp.full(q_high.shape, -1, jnp.int32)
        start = jnp.searchsorted(self.high, q_high, side="left")
        found = jnp.full(q_high.shape, -1, jnp.int32)
        for offset in range(self.probe):  # static and almost always 1
            row = jnp.minimum(start + offset, n - 1)
            hit = (self.high[row] == q_high) & (self.low[row] == q_low) & (start + offset < n)
            found = jnp.where(hit & (found < 0), self.entry[row], found)
        return found
