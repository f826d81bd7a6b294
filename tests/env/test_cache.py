import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orchestra.data.types import CacheEntry
from orchestra.data.types import response_succeeded
from orchestra.env.cache import ApiCache, CacheConflictError, CacheTable, HashCollisionError
from orchestra.data.canonical import canonical_key, hash64, split_hash


def query(function, arguments):
    return jnp.asarray([split_hash(hash64(canonical_key(function, arguments)))], jnp.uint32)


def test_shipped_cache_has_305_distinct_calls(booking):
    cache = ApiCache.from_entries(booking.cache_entries)
    assert len(booking.cache_entries) == 356 and len(cache) == 305


def test_device_lookup_finds_every_entry_and_misses_unknown_calls(booking):
    cache = ApiCache.from_entries(booking.cache_entries)
    table = cache.device_table()
    words = np.array([split_hash(hash64(k)) for k in cache.keys], np.uint32)
    assert np.array_equal(np.asarray(jax.jit(table.lookup)(jnp.asarray(words))), np.arange(len(cache)))
    assert int(table.lookup(query("Search_Flights", {"fromId": "NOWHERE"}))[0]) == -1


def test_lookup_uses_canonical_form(booking):
    cache = ApiCache.from_entries(booking.cache_entries)
    e = next(x for x in booking.cache_entries if any(isinstance(v, (int, float)) for v in x.arguments.values()))
    as_strings = {k: str(v) for k, v in e.arguments.items()}
    assert cache.lookup(e.function, as_strings) == cache.lookup(e.function, e.arguments) is not None


def test_conflicting_responses_are_refused_or_first_wins():
    entries = [CacheEntry("f", {"a": 1}, {"x": 1}), CacheEntry("f", {"a": "1"}, {"x": 2})]
    with pytest.raises(CacheConflictError, match="two different recorded responses"):
        ApiCache.from_entries(entries)
    assert ApiCache.from_entries(entries, on_conflict="first").responses == [{"x": 1}]


def test_identical_duplicates_are_merged():
    entries = [CacheEntry("f", {"a": 1}, {"x": 1}), CacheEntry("f", {"a": 1, "b": None}, {"x": 1})]
    assert len(ApiCache.from_entries(entries)) == 1


def test_hash_collision_is_refused(monkeypatch):
    import orchestra.env.cache as cache_module
    monkeypatch.setattr(cache_module, "hash64", lambda text: 42)
    with pytest.raises(HashCollisionError, match="hash collision"):
        CacheTable.build(["f:[1]", "f:[2]"])


def test_equal_high_words_are_resolved_by_the_probe(monkeypatch):
    import orchestra.env.cache as cache_module
    fake = {"a": (7 << 32) | 1, "b": (7 << 32) | 2, "c": (3 << 32) | 9}
    monkeypatch.setattr(cache_module, "hash64", lambda text: fake[text])
    table = CacheTable.build(["a", "b", "c"])
    assert table.probe == 2
    q = jnp.asarray([split_hash(fake[k]) for k in "bca"] + [(7, 3)], jnp.uint32)
    assert np.asarray(table.lookup(q)).tolist() == [1, 2, 0, -1]


@pytest.mark.parametrize("response,ok", [
    ({"status": True, "data": []}, True), ({"error": "x"}, False), ({"status": False, "data": 1}, False),
    ({}, False), ([], False), ([{"a": 1}], True), (None, False)])
def test_success_flag(response, ok):
    assert response_succeeded(response) is ok
