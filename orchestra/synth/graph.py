"""A dependency graph mined from the templates and the tool schemas, and chains composed on it.

A *signature* says how one function's arguments can be fed from earlier responses: one or more
bindings, each naming a source function and, per argument, the response path it is read from.
Two sources feed it:
- templates: every dependent template step gives its signature as written;
- schemas: a parameter whose description names another tool (by name, by the name with spaces, or
  by an endpoint path that only that tool's description holds) is fed by that tool. Which response
  field feeds it is read off the cache: for each recorded pair (source call, target call) whose
  argument value occurs in the source's response, the path where it occurs. One signature per
  pair, keeping for each argument the path that matches in most pairs.

`compose` walks the graph over real cache entries: each new step is a root (a function the
templates call without dependencies) or a dependent step whose signature can be satisfied from
earlier steps' responses, so every composed chain is answerable by construction. Chains whose
shape (functions and depends_on) some template lists are rejected: composed chains are new.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from collections import Counter

import numpy as np

from orchestra.data.types import DependencyArg, TemplateStep, ToolSpec, WorkflowTemplate
from orchestra.env.cache import ApiCache
from orchestra.synth.index import ReverseIndex, value_key
from orchestra.synth.paths import MISSING, format_path, leaves, read_field
from orchestra.synth.sampler import DrawStats

DEPENDENT_SHARE = 0.6  # when a root and a dependent step are both possible, how often to depend
_PATH_TOKEN = re.compile(r"[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)+")


@dataclasses.dataclass(frozen=True)
class Binding:
    source: str                        # function of the step read from
    args: tuple[tuple[str, str], ...]  # (argument, from_field), sorted by argument


@dataclasses.dataclass(frozen=True)
class Signature:
    target: str
    bindings: tuple[Binding, ...]
    origin: str  # template | schema


def structure_key(template: WorkflowTemplate) -> tuple:
    """A chain's shape: its functions and what each step depends on."""
    return tuple((s.function, tuple(sorted(s.depends_on))) for s in template.steps)


def template_depth(template: WorkflowTemplate) -> int:
    """The longest dependency path, in edges (0 when no step depends on another)."""
    depth: list[int] = []
    for s in template.steps:
        depth.append(1 + max((depth[d] for d in s.depends_on), default=-1))
    return max(depth, default=0)


def schema_hints(tools: dict[str, ToolSpec]) -> dict[tuple[str, str], list[str]]:
    """(target function, parameter) -> source functions its description names."""
    owners: dict[str, list[str]] = {}
    for name, tool in sorted(tools.items()):
        for token in sorted(set(t.lstrip("/") for t in _PATH_TOKEN.findall(tool.description))):
            owners.setdefault(token, []).append(name)
    endpoint = {tok: names[0] for tok, names in owners.items() if len(names) == 1}
    hints: dict[tuple[str, str], list[str]] = {}
    for target, tool in sorted(tools.items()):
        for p in tool.parameters:
            text = p.description.lower()
            found = set()
            for source in tools:
                spaced = source.replace("_", " ").lower()
                if re.search(rf"(?<!\w){re.escape(source.lower())}(?!\w)|(?<!\w){re.escape(spaced)}(?!\w)", text):
                    found.add(source)
            for token in _PATH_TOKEN.findall(p.description):
                if token.lstrip("/") in endpoint:
                    found.add(endpoint[token.lstrip("/")])
            found.discard(target)
            if found:
                hints[(target, p.name)] = sorted(found)
    return hints


class DependencyGraph:
    def __init__(self, signatures: list[Signature], roots: list[str]):
        self.signatures = signatures
        self.roots = roots

    @property
    def edges(self) -> list[tuple[str, str, str, str, str]]:
        """(source, from_field, target, argument, origin), distinct."""
        out = {(b.source, field, s.target, arg, s.origin) for s in self.signatures for b in s.bindings
               for arg, field in b.args}
        return sorted(out)

    def summary(self) -> dict:
        return {"signatures": dict(Counter(s.origin for s in self.signatures)),
                "edges": dict(Counter(e[-1] for e in self.edges)),
                "roots": list(self.roots)}

    @classmethod
    def mine(cls, tools: dict[str, ToolSpec], templates: list[WorkflowTemplate], cache: ApiCache,
             index: ReverseIndex) -> "DependencyGraph":
        signatures: dict[Signature, None] = {}  # ordered set
        for t in templates:
            for s in t.steps:
                if not s.dependency_args:
                    continue
                by_step: dict[int, list[tuple[str, str]]] = {}
                for arg, d in sorted(s.dependency_args.items()):
                    by_step.setdefault(d.from_step, []).append((arg, d.from_field))
                bindings = tuple(Binding(t.steps[k].function, tuple(args)) for k, args in sorted(by_step.items()))
                signatures[Signature(s.function, bindings, "template")] = None
        for sig in _schema_signatures(tools, cache, index):
            if Signature(sig.target, sig.bindings, "template") not in signatures:
                signatures[sig] = None

        in_templates = {s.function for t in templates for s in t.steps}
        free = {s.function for t in templates for s in t.steps if not s.dependency_args}
        targeted = {s.target for s in signatures}
        roots = sorted(f for f in index.functions
                       if f in free or (f not in in_templates and f not in targeted))
        return cls(list(signatures), roots)

    def compose(self, length: int, depth: int | None, rng: np.random.Generator, cache: ApiCache,
                index: ReverseIndex, *, allowed: set[str] | None = None, distinct_calls: bool = True,
                forbidden: set | None = None, max_restarts: int = 20,
                stats: DrawStats | None = None) -> tuple[WorkflowTemplate, tuple[int, ...]] | None:
        """A new chain of exactly `length` steps (and dependency depth `depth`, when given) with its
        entries, or None after `max_restarts` walks that dead-ended or matched a `forbidden` shape."""
        stats = stats if stats is not None else DrawStats()
        if depth is not None and depth > length - 1:
            return None
        for _ in range(max_restarts):
            stats.attempts += 1
            walked = self._walk(length, depth, rng, cache, index, allowed, distinct_calls)
            if walked is not None and (forbidden is None or structure_key(walked[0]) not in forbidden):
                return walked
            stats.dead_ends += 1
        return None

    def options(self, steps: list[TemplateStep], chain: list[int], depths: list[int], cache: ApiCache,
                index: ReverseIndex, allowed: set[str] | None, distinct_calls: bool,
                roots: bool = True) -> tuple[list, list]:
        """What can come next after `steps` (entries `chain`, dependency depths `depths`): roots
        and dependent steps, each (function, entries, dependency args, depth), in a fixed order."""
        k = len(steps)
        root_opts, dependent_opts = [], []
        for f in self.roots if roots else ():
            if allowed is None or f in allowed:
                entries = _unused(index.entries(f), chain, distinct_calls)
                if entries:
                    root_opts.append((f, entries, {}, 0))
        for sig in self.signatures if k else ():
            if allowed is not None and sig.target not in allowed:
                continue
            sources = [[j for j in range(k) if steps[j].function == b.source] for b in sig.bindings]
            for assign in itertools.product(*sources):
                if len(set(assign)) < len(assign):
                    continue
                entries, dep_args = _satisfy(sig, assign, chain, cache, index)
                entries = _unused(entries, chain, distinct_calls)
                if entries:
                    dependent_opts.append((sig.target, entries, dep_args, 1 + max(depths[j] for j in assign)))
        return root_opts, dependent_opts

    def _walk(self, length, depth, rng, cache, index, allowed, distinct_calls):
        steps: list[TemplateStep] = []
        chain: list[int] = []
        depths: list[int] = []
        for k in range(length):
            cur = max(depths, default=-1)
            # exact depth: deepen now if the steps left are just enough to reach it
            must_deepen = depth is not None and depth - cur >= length - k
            roots, dependents = self.options(steps, chain, depths, cache, index, allowed, distinct_calls,
                                             roots=not must_deepen or cur < 0)
            if depth is not None:
                dependents = [o for o in dependents if o[3] <= depth and (not must_deepen or o[3] == cur + 1)]
            if not roots and not dependents:
                return None
            pool = dependents if dependents and (not roots or rng.random() < DEPENDENT_SHARE) else roots
            function, options, dep_args, d = pool[rng.integers(len(pool))]
            entry = int(options[rng.integers(len(options))])
            _append(steps, chain, depths, function, entry, dep_args, d, cache)
        if depth is not None and max(depths) != depth:
            return None
        template = WorkflowTemplate(_composed_id(steps), tuple(steps), frequency=1, domains=(), examples=())
        return template, tuple(chain)

    def count_connected(self, max_length: int, cache: ApiCache, index: ReverseIndex,
                        forbidden: set | None = None, distinct_calls: bool = True,
                        budget: int = 2_000_000) -> tuple[dict[int, dict[str, int]], bool]:
        """Exhaustively, the distinct traces (entry sequences) of composed chains with one root where
        every later step reads an earlier response, by length 2..`max_length`: {length: {"traces",
        "novel"}}, novel = of a shape no template lists; and whether the search finished within
        `budget` expansions (else the counts are lower bounds)."""
        found: dict[int, set] = {n: set() for n in range(2, max_length + 1)}
        novel: dict[int, set] = {n: set() for n in range(2, max_length + 1)}
        expansions = 0

        def go(steps, chain, depths):
            nonlocal expansions
            if len(steps) >= 2:
                key = tuple(chain)
                found[len(steps)].add(key)
                if forbidden is None or structure_key(WorkflowTemplate("", tuple(steps))) not in forbidden:
                    novel[len(steps)].add(key)
            if len(steps) == max_length or expansions >= budget:
                return
            expansions += 1
            roots, dependents = self.options(steps, chain, depths, cache, index, None, distinct_calls,
                                             roots=not steps)
            for function, entries, dep_args, d in roots + dependents:
                for e in entries:
                    _append(steps, chain, depths, function, int(e), dep_args, d, cache)
                    go(steps, chain, depths)
                    steps.pop(), chain.pop(), depths.pop()

        go([], [], [])
        return ({n: {"traces": len(found[n]), "novel": len(novel[n])} for n in found}, expansions < budget)


def _append(steps, chain, depths, function, entry, dep_args, depth, cache) -> None:
    depends = tuple(sorted({a.from_step for a in dep_args.values()}))
    steps.append(TemplateStep(function, dict(cache.arguments[entry]), depends, dep_args))
    chain.append(entry)
    depths.append(depth)


def _unused(options, chain, distinct_calls):
    return tuple(e for e in options if e not in chain) if distinct_calls else tuple(options)


def _satisfy(sig: Signature, assign, chain, cache, index) -> tuple[tuple[int, ...], dict]:
    allowed = None
    dep_args = {}
    for b, j in zip(sig.bindings, assign):
        for arg, field in b.args:
            value = read_field(cache.responses[chain[j]], field)
            if value is MISSING or value is None:
                return (), {}
            found = set(index.matching(sig.target, arg, value))
            allowed = found if allowed is None else allowed & found
            if not allowed:
                return (), {}
            dep_args[arg] = DependencyArg(j, field, value)
    return tuple(sorted(allowed)), dep_args


def _writable(path: tuple) -> bool:
    # a key holding ".", "[" or "]" cannot be written as a path
    return all(isinstance(t, int) or (t and not re.search(r"[.\[\]]", t)) for t in path)


def _composed_id(steps: list[TemplateStep]) -> str:
    shape = repr([(s.function, sorted((a, d.from_step, d.from_field) for a, d in s.dependency_args.items()))
                  for s in steps])
    return "composed_" + hashlib.blake2b(shape.encode(), digest_size=5).hexdigest()


def _schema_signatures(tools, cache: ApiCache, index: ReverseIndex) -> list[Signature]:
    hints = schema_hints(tools)
    by_source: dict[str, list[tuple[str, str]]] = {}
    for (target, param), sources in hints.items():
        for s in sources:
            by_source.setdefault(s, []).append((target, param))
    pairs = []  # (source entry, target entry, param, candidate paths)
    support: Counter = Counter()
    for source in sorted(by_source):
        for e_s in index.entries(source):
            where: dict[str, list[tuple]] = {}
            for path, leaf in leaves(cache.responses[e_s]):
                if leaf is None or isinstance(leaf, bool) or leaf == "" or not _writable(path):
                    continue
                where.setdefault(value_key(leaf), []).append(path)
            for target, param in by_source[source]:
                for key, e_ts in index.table.get(target, {}).get(param, {}).items():
                    paths = where.get(key)
                    if not paths:
                        continue
                    for e_t in e_ts:
                        pairs.append((e_s, e_t, target, param, paths))
                        support.update((source, target, param, p) for p in paths)
    grouped: dict[tuple[int, int], dict[str, str]] = {}
    for e_s, e_t, target, param, paths in pairs:
        source = cache.functions[e_s]
        best = min(paths, key=lambda p: (-support[(source, target, param, p)], len(p), format_path(p)))
        grouped.setdefault((e_s, e_t), {})[param] = format_path(best)
    out = {}
    for (e_s, e_t), args in sorted(grouped.items()):
        sig = Signature(cache.functions[e_t], (Binding(cache.functions[e_s], tuple(sorted(args.items()))),), "schema")
        out[sig] = None
    return list(out)
