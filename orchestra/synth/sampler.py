"""The constrained sampler: chains of cache entries that follow a template's dependencies.

Steps are filled in order. An independent step takes any entry of its function. A dependent step
reads, for each dependency argument, the value at `from_field` in the response chosen for the
step it depends on, keeps the entries of its function whose argument equals that value (all
dependency arguments at once) and takes one of them. An empty choice is a dead end: the chain
restarts from the first step, up to a bound. Every step of a finished chain is a recorded call,
so it is answerable, and its dependent values are the ones the earlier responses hold.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from orchestra.data.types import WorkflowTemplate
from orchestra.env.cache import ApiCache
from orchestra.synth.index import ReverseIndex, value_key
from orchestra.synth.paths import MISSING, read_field


def _matches(function: str, args: list[tuple[str, str]], response, index: ReverseIndex) -> set[int]:
    """Entries of `function` whose arguments `args` [(name, from_field)] equal the values in `response`."""
    allowed: set[int] | None = None
    for arg, field in args:
        value = read_field(response, field)
        if value is MISSING or value is None:
            return set()
        found = set(index.matching(function, arg, value))
        allowed = found if allowed is None else allowed & found
        if not allowed:
            return set()
    return allowed if allowed is not None else set()


def _by_source(step) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    for arg, dep in sorted(step.dependency_args.items()):
        out.setdefault(dep.from_step, []).append((arg, dep.from_field))
    return out


def step_domains(template: WorkflowTemplate, cache: ApiCache, index: ReverseIndex) -> list[frozenset[int]]:
    """For each step, the entries that can appear there in some chain as far as each single
    dependency (source step -> reading step) can tell: entries that feed no reader, or that no
    source can feed, are removed, repeatedly, until nothing changes (arc consistency). An empty
    domain means the template has no chain; otherwise chains are drawn inside the domains, which
    cuts dead ends without losing any chain."""
    domains = [set(index.entries(s.function)) for s in template.steps]
    groups = [_by_source(s) for s in template.steps]
    changed = True
    while changed:
        changed = False
        for k, step in enumerate(template.steps):
            for j, args in groups[k].items():
                fed = {e: _matches(step.function, args, cache.responses[e], index) & domains[k] for e in domains[j]}
                keep_j = {e for e, found in fed.items() if found}
                keep_k = set().union(*fed.values()) if fed else set()
                if keep_j != domains[j] or keep_k != domains[k]:
                    domains[j], domains[k] = keep_j, keep_k
                    changed = True
    return [frozenset(d) for d in domains]


def candidates(template: WorkflowTemplate, k: int, chain: list[int], cache: ApiCache,
               index: ReverseIndex, domains: list[frozenset[int]] | None = None) -> tuple[int, ...]:
    """Entries that can fill step `k` of `template` given the entries `chain` chose for steps < k
    (inside `domains[k]` when given)."""
    step = template.steps[k]
    if not step.dependency_args:
        return tuple(sorted(domains[k])) if domains is not None else index.entries(step.function)
    found = None
    for j, args in _by_source(step).items():
        got = _matches(step.function, args, cache.responses[chain[j]], index)
        found = got if found is None else found & got
        if not found:
            return ()
    if domains is not None:
        found &= domains[k]
    return tuple(sorted(found))


def chain_ok(template: WorkflowTemplate, chain: list[int], cache: ApiCache) -> bool:
    """Every dependency argument of `chain` equals the value at its `from_field` (the check the
    sampler builds in; the unconstrained baseline must pass it after the fact)."""
    for k, step in enumerate(template.steps):
        for arg, dep in step.dependency_args.items():
            value = read_field(cache.responses[chain[dep.from_step]], dep.from_field)
            got = cache.arguments[chain[k]].get(arg)
            if value is MISSING or value is None or got is None or value_key(got) != value_key(value):
                return False
    return True


@dataclasses.dataclass
class DrawStats:
    attempts: int = 0   # chain attempts started (a restart is a new attempt)
    dead_ends: int = 0


def sample_chain(template: WorkflowTemplate, cache: ApiCache, index: ReverseIndex, rng: np.random.Generator,
                 max_restarts: int, distinct_calls: bool = True, stats: DrawStats | None = None,
                 domains: list[frozenset[int]] | None = None) -> tuple[int, ...] | None:
    """One chain of entry indices for `template`, or None after `max_restarts` dead ends.
    `domains` (from `step_domains`, computed when not given) narrows each step's choices."""
    stats = stats if stats is not None else DrawStats()
    domains = domains if domains is not None else step_domains(template, cache, index)
    free = {k: tuple(sorted(domains[k])) for k, s in enumerate(template.steps) if not s.dependency_args}
    for _ in range(max_restarts):
        stats.attempts += 1
        chain: list[int] = []
        for k in range(len(template.steps)):
            options = free[k] if k in free else candidates(template, k, chain, cache, index, domains)
            if distinct_calls and chain:
                taken = set(chain)
                options = tuple(e for e in options if e not in taken)
            if not options:
                break
            chain.append(int(options[rng.integers(len(options))]))
        if len(chain) == len(template.steps):
            return tuple(chain)
        stats.dead_ends += 1
    return None


def count_chains(template: WorkflowTemplate, cache: ApiCache, index: ReverseIndex, distinct_calls: bool = True,
                 budget: int = 200_000) -> tuple[int, bool]:
    """How many distinct chains `template` has in the cache: (count, exact).

    A step that no later step reads from (and, with `distinct_calls`, whose function no other step
    calls) is counted, not branched on. Partial chains that agree on everything later steps can
    see share one count (memoised). After `budget` expansions the search stops and the count is a
    lower bound (exact=False)."""
    n = len(template.steps)
    fns = [s.function for s in template.steps]
    readers = [set() for _ in range(n)]  # steps reading step j
    for k, s in enumerate(template.steps):
        for d in s.dependency_args.values():
            readers[d.from_step].add(k)
    branched = {j for j in range(n) if readers[j] or (distinct_calls and fns.count(fns[j]) > 1)}
    # what the steps from k on can see of the earlier choices
    visible = [tuple(j for j in range(k) if j in branched and (any(r >= k for r in readers[j]) or (
        distinct_calls and fns[j] in fns[k:]))) for k in range(n + 1)]
    domains = step_domains(template, cache, index)
    memo: dict[tuple, int] = {}
    expansions, exact = 0, True

    def go(k: int, chain: list[int]) -> int:
        nonlocal expansions, exact
        if k == n:
            return 1
        key = (k,) + tuple(chain[j] for j in visible[k])
        if key in memo:
            return memo[key]
        expansions += 1
        if expansions > budget:
            exact = False
            return 0
        options = candidates(template, k, chain, cache, index, domains)
        if distinct_calls:
            options = tuple(e for e in options if e not in chain)
        if not options:
            total = 0
        elif k not in branched:
            total = len(options) * go(k + 1, chain + [-1])
        else:
            total = sum(go(k + 1, chain + [e]) for e in options)
        if exact:  # a count cut short by the budget is not remembered
            memo[key] = total
        return total

    count = go(0, [])
    return count, exact
