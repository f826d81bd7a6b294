"""Which tools belong together (a domain), for same-domain distractors and the domain filter.

Declared template domains win when there are any (other than "unknown"). Otherwise domains are
inferred from how the tools are used, then from their names:
1. every tool links to the tool it shares most template dependencies with (either direction;
   ties go to the tool co-occurring in more templates, then by name);
2. a tool with no dependency links to the tool sharing most of its distinctive name tokens;
3. the linked groups are the domains, each named after the name token most of its tools share
   (among tokens used by at most a quarter of all tools).
A tool with no link at all has no domain; its distractors are drawn from any tool.
"""

from __future__ import annotations

import re
from collections import Counter

from orchestra.data.types import ToolSpec, WorkflowTemplate

UNKNOWN = "unknown"


def name_tokens(name: str) -> list[str]:
    """`Search_Hotels_By_Coordinates` -> ["search", "hotel", "by", "coordinate"]: split on "_" and
    camel case, lower case, a plural "s" dropped."""
    parts = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    return [p.lower()[:-1] if len(p) > 3 and p.lower().endswith("s") and not p.lower().endswith("ss")
            else p.lower() for p in parts]


def infer_domains(tools: dict[str, ToolSpec], templates: list[WorkflowTemplate]) -> dict[str, str | None]:
    """Tool name -> domain name (or None), for every tool."""
    names = sorted(tools)
    declared = _declared(names, templates)
    if declared is not None:
        return declared

    dep, co = Counter(), Counter()
    for t in templates:
        fns = sorted(set(t.pattern))
        for i, a in enumerate(fns):
            for b in fns[i + 1:]:
                co[(a, b)] += 1
                co[(b, a)] += 1
        for s in t.steps:
            for d in s.dependency_args.values():
                a = t.steps[d.from_step].function
                if a != s.function:
                    dep[(a, s.function)] += 1
                    dep[(s.function, a)] += 1

    # Tokens shared by many tools ("get", "search", "location") say nothing about a domain.
    tokens = {n: set(name_tokens(n)) for n in names}
    share = Counter(tok for n in names for tok in tokens[n])
    limit = max(2, len(names) // 8)
    distinctive = {n: {tok for tok in tokens[n] if 2 <= share[tok] <= limit} for n in names}

    parent = {n: n for n in names}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for n in names:
        # min over (-strength, name): the strongest link, ties to the alphabetically first tool
        best = min(((-dep[(n, m)], -co[(n, m)], m) for m in names if m != n and dep[(n, m)] > 0), default=None)
        if best is None:
            best = min(((-len(distinctive[n] & distinctive[m]), m) for m in names
                        if m != n and distinctive[n] & distinctive[m]), default=None)
        if best is not None:
            parent[find(n)] = find(best[-1])

    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(find(n), []).append(n)
    out: dict[str, str | None] = {}
    used: Counter = Counter()
    for members in sorted(groups.values(), key=lambda g: (-len(g), g)):
        if len(members) == 1:
            out[members[0]] = None
            continue
        counts = Counter(tok for m in members for tok in tokens[m] if share[tok] <= max(2, len(names) // 4))
        label = min(counts, key=lambda tok: (-counts[tok], tok)) if counts else members[0].lower()
        used[label] += 1
        label = label if used[label] == 1 else f"{label}_{used[label]}"
        for m in members:
            out[m] = label
    return out


def _declared(names: list[str], templates: list[WorkflowTemplate]) -> dict[str, str | None] | None:
    """Domains named by the templates themselves (the most frequent one per tool), if any."""
    votes: dict[str, Counter] = {}
    for t in templates:
        for d in t.domains:
            if d and d != UNKNOWN:
                for f in t.pattern:
                    votes.setdefault(f, Counter())[d] += t.frequency
    if not votes:
        return None
    return {n: (min(votes[n], key=lambda d: (-votes[n][d], d)) if n in votes else None) for n in names}
