"""The response-path reader, on small cases and on every real `from_field` of the shipped templates."""

import re

import pytest

from orchestra.synth.index import value_key
from orchestra.synth.paths import MISSING, PathError, format_path, leaves, parse_path, read_field

WRAPPED = {"status": True, "message": "Success",
           "data": {"destinations": [{"id": "a"}, {"id": "b"}], "search_key": "k",
                    "search_results": [{"vehicle_id": 1}, {"vehicle_id": 2}, {"vehicle_id": 3}]}}
LISTED = [{"coordinates": {"latitude": 1.5, "longitude": 2.5}}, {"coordinates": {"latitude": 3.5}}]


@pytest.mark.parametrize("response, path, expected", [
    (WRAPPED, "destinations[0].id", "a"),
    (WRAPPED, "destinations[1].id", "b"),
    (WRAPPED, "search_results[2].vehicle_id", 3),
    (WRAPPED, "search_key", "k"),
    (LISTED, "[0].coordinates.latitude", 1.5),
    (LISTED, "[1].coordinates.latitude", 3.5),
    ({"products": [{"slug": "s"}]}, "products[0].slug", "s"),  # not a wrapper: read as it is
    ({"a": [[1, 2], [3, 4]]}, "a[1][0]", 3),
])
def test_read_field_follows_keys_and_indices_inside_the_data_wrapper(response, path, expected):
    assert read_field(response, path) == expected


@pytest.mark.parametrize("response, path", [
    (WRAPPED, "destinations[5].id"), (WRAPPED, "status"), (LISTED, "[1].coordinates.longitude"),
    (LISTED, "coordinates"), ({"a": "text"}, "a[0]"), ({"a": [1]}, "a.b"),
])
def test_read_field_returns_missing_where_the_path_leads_nowhere(response, path):
    assert read_field(response, path) is MISSING


@pytest.mark.parametrize("bad", ["", "a..b", "a[x]", "a[1", "a.[0]", "a]", ".a", "a."])
def test_malformed_paths_raise_an_error_naming_the_path(bad):
    with pytest.raises(PathError, match=re.escape(repr(bad))):
        parse_path(bad)


def test_parse_and_format_are_inverse_on_every_real_from_field(booking):
    fields = {d.from_field for t in booking.templates for s in t.steps for d in s.dependency_args.values()}
    assert len(fields) > 50
    for f in fields:
        assert format_path(parse_path(f)) == f


def _other_elements(path: str, response, value) -> bool:
    """Whether `value` sits at `path` with its first list index changed (the template's example
    picked another element of the same list)."""
    m = re.search(r"\[(\d+)\]", path)
    if not m:
        return False
    for j in range(50):
        alt = path[:m.start()] + f"[{j}]" + path[m.end():]
        got = read_field(response, alt)
        if got is not MISSING and value_key(got) == value_key(value):
            return True
    return False


def test_real_from_fields_read_the_templates_recorded_values(booking, cache):
    """Where a template's source call is in the cache, reading its `from_field` from the recorded
    response gives the template's recorded value. The exceptions are explained: coordinates the
    recorded calls rounded, examples whose value sits in another element of the same list, and
    examples whose value the recorded response does not hold at all (it was recorded another time)."""
    exact = rounded = other = absent = 0
    for t in booking.templates:
        for s in t.steps:
            for d in s.dependency_args.values():
                src = t.steps[d.from_step]
                e = cache.lookup(src.function, src.arguments)
                if e is None:
                    continue
                got = read_field(cache.responses[e], d.from_field)
                assert got is not MISSING, (t.workflow_id, d.from_field)
                if value_key(got) == value_key(d.value):
                    exact += 1
                elif isinstance(got, float) and isinstance(d.value, int | float) and abs(got - d.value) < 1e-3:
                    rounded += 1
                elif _other_elements(d.from_field, cache.responses[e], d.value):
                    other += 1
                else:
                    held = {value_key(v) for _, v in leaves(cache.responses[e])}
                    assert value_key(d.value) not in held, (t.workflow_id, d)
                    absent += 1
    assert exact >= 70 and exact > 2 * (rounded + other + absent)
