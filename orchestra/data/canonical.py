"""Canonical call keys, with the semantics of the recorded cache, and their 64-bit hashes.

A call is identified by its function name and its arguments normalised this way: arguments whose
value is null are dropped; a string that parses as a number becomes that number (float if it
contains ".", else int); lists and objects are normalised element by element; the key is the sorted
(name, value) pairs serialised as JSON with sorted keys.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np


def normalise_value(value):
    """One argument value in canonical form (recursively for lists and objects)."""
    if isinstance(value, str):
        # Python's own parse, as the recorded cache did: float when there is a ".", else int.
        try:
            number = float(value) if "." in value else int(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    if isinstance(value, list | tuple):
        return [normalise_value(v) for v in value]
    if isinstance(value, dict):
        return normalise_arguments(value)
    return value


def normalise_arguments(arguments: dict) -> dict:
    """Drop nulls, normalise values, sort by name."""
    return {k: normalise_value(v) for k, v in sorted(arguments.items()) if v is not None}


def canonical_key(function: str, arguments: dict) -> str:
    """The cache key of a call: the function name and its normalised arguments as sorted JSON."""
    args = sorted(normalise_arguments(arguments).items())
    return function + ":" + json.dumps(args, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def hash64(text: str) -> int:
    """A stable 64-bit hash (blake2b), independent of Python's per-process hash seed."""
    # surrogatepass: model text may hold lone surrogates (json.loads accepts "\ud800")
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def split_hash(h: int) -> tuple[int, int]:
    """A 64-bit hash as (high, low) uint32 words, the form device tables store without x64."""
    return (h >> 32) & 0xFFFFFFFF, h & 0xFFFFFFFF


def hash_words(texts: list[str]) -> np.ndarray:
    """[n, 2] uint32 (high, low) words of the 64-bit hashes of `texts`."""
    out = np.zeros((len(texts), 2), np.uint32)
    for i, t in enumerate(texts):
        out[i] = split_hash(hash64(t))
    return out
