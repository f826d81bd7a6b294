"""The unconstrained baseline the paper compares against: propose every argument freely, keep what runs.

For each template step, every argument the template step names gets a value drawn uniformly from
the values recorded for a parameter of that name anywhere in the cache (under any function), or a
placeholder symbol when the name was never recorded (a call that cannot succeed). Nothing ties a
dependent argument to the earlier response: a trace is valid only if the environment answers every
step and, afterwards, every dependency argument equals the value at its `from_field`.
"""

from __future__ import annotations

import numpy as np

from orchestra.data.types import Call, WorkflowTemplate
from orchestra.env.cache import ApiCache
from orchestra.synth.index import ReverseIndex
from orchestra.synth.sampler import chain_ok


class FreeProposer:
    def __init__(self, cache: ApiCache, index: ReverseIndex):
        self.cache = cache
        self.pool = index.observed_values()

    def propose(self, template: WorkflowTemplate, rng: np.random.Generator) -> list[Call]:
        calls = []
        for step in template.steps:
            args = {}
            for name in sorted(step.arguments):
                values = self.pool.get(name)
                args[name] = values[rng.integers(len(values))] if values else f"<{name}>"
            calls.append(Call(step.function, args))
        return calls

    def as_chain(self, calls: list[Call]) -> tuple[int, ...] | None:
        """The cache entries the calls hit, or None if one misses."""
        chain = tuple(self.cache.lookup(c.function, c.arguments) for c in calls)
        return None if any(e is None for e in chain) else chain

    def consistent(self, template: WorkflowTemplate, chain: tuple[int, ...]) -> bool:
        return chain_ok(template, list(chain), self.cache)
