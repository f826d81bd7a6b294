"""The reverse index, the constrained sampler and the exact chain counter, against brute force."""

import itertools

import numpy as np
import pytest

from orchestra.data.types import DependencyArg, TemplateStep, WorkflowTemplate
from orchestra.data.canonical import normalise_value
from orchestra.synth.index import value_key
from orchestra.synth.sampler import DrawStats, chain_ok, count_chains, sample_chain, step_domains


def test_reverse_index_lists_exactly_the_entries_with_that_argument_value(cache, index):
    for function in index.functions:
        for param, by_value in index.table[function].items():
            for key, entries in by_value.items():
                expected = tuple(i for i, (f, a) in enumerate(zip(cache.functions, cache.arguments))
                                 if f == function and a.get(param) is not None and value_key(a[param]) == key)
                assert entries == expected
    # a string that parses as a number matches the number, as in the cache's canonical keys
    e = next(i for i, a in enumerate(cache.arguments) if isinstance(a.get("dest_id"), str))
    value = cache.arguments[e]["dest_id"]
    assert e in index.matching(cache.functions[e], "dest_id", normalise_value(value))


def _brute_force(template, cache, index):
    """Every chain, by enumerating all entry combinations (small templates only)."""
    pools = [index.entries(s.function) for s in template.steps]
    return {c for c in itertools.product(*pools) if len(set(c)) == len(c) and chain_ok(template, list(c), cache)}


def _small_templates(booking, index, limit=20000):
    out = []
    for t in booking.templates:
        sizes = [len(index.entries(s.function)) for s in t.steps]
        if all(sizes) and np.prod(sizes, dtype=float) <= limit:
            out.append(t)
    return out


def test_count_chains_equals_brute_force_enumeration(booking, cache, index):
    templates = _small_templates(booking, index)
    assert len(templates) >= 15
    nonzero = 0
    for t in templates:
        expected = _brute_force(t, cache, index)
        count, exact = count_chains(t, cache, index)
        assert exact and count == len(expected), t.workflow_id
        nonzero += bool(expected)
    assert nonzero >= 10


def test_step_domains_keep_every_chain(booking, cache, index):
    for t in _small_templates(booking, index):
        domains = step_domains(t, cache, index)
        for chain in _brute_force(t, cache, index):
            assert all(e in domains[k] for k, e in enumerate(chain)), t.workflow_id


def test_sampled_chains_follow_every_dependency_and_cover_the_chains(booking, cache, index):
    templates = [x for x in _small_templates(booking, index) if count_chains(x, cache, index)[0] > 0]
    rng = np.random.default_rng(0)
    for t in templates:
        all_chains = _brute_force(t, cache, index)
        seen = set()
        for _ in range(30 * len(all_chains)):
            chain = sample_chain(t, cache, index, rng, max_restarts=500)
            assert chain is not None and chain in all_chains, t.workflow_id
            seen.add(chain)
        assert seen == all_chains, t.workflow_id  # every chain is reachable


def test_a_template_without_chains_yields_none_after_its_restarts(cache, index):
    # Search_Attractions fed from a field no Search_Attraction_Location response holds
    t = WorkflowTemplate("dead", (
        TemplateStep("Search_Attraction_Location", {}, (), {}),
        TemplateStep("Search_Attractions", {}, (0,), {"id": DependencyArg(0, "destinations[0].no_such_key")})))
    stats = DrawStats()
    assert sample_chain(t, cache, index, np.random.default_rng(0), max_restarts=5, stats=stats,
                        domains=[frozenset(index.entries(s.function)) for s in t.steps]) is None
    assert stats.attempts == 5 and stats.dead_ends == 5
    assert count_chains(t, cache, index) == (0, True)


@pytest.mark.parametrize("distinct", [True, False])
def test_count_chains_counts_repeated_functions_with_and_without_distinct_calls(booking, cache, index, distinct):
    t = WorkflowTemplate("two_lookups", (TemplateStep("Search_Car_Location", {}, (), {}),
                                         TemplateStep("Search_Car_Location", {}, (), {})))
    n = len(index.entries("Search_Car_Location"))
    assert count_chains(t, cache, index, distinct_calls=distinct) == (n * (n - 1) if distinct else n * n, True)
