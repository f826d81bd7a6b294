"""Config sections (plain mappings from Hydra) into frozen dataclasses, with every key checked."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


def from_mapping(cls, values: Mapping | None, where: str):
    """`cls(**values)`; an unknown key is an error naming `where` and the known keys. Lists become
    tuples (dataclass fields here are immutable)."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
