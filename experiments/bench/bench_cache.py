"""Cache lookups per second: the jitted batched device lookup against a Python dict, same batch.

    python -m experiments.bench.bench_cache [--batch 65536] [--synthetic 1000000]

Both sides start from the same calls. The dict side canonicalises each call and looks it up; the
device side is timed twice: on hashes already computed (what `env.step` pays, since the host hashes
each call once when it parses it) and end to end (canonicalise + hash on the host, then the lookup).
A synthetic cache of `--synthetic` random keys shows build time, table size and lookup rate at scale.
"""

from __future__ import annotations

import argparse
import random
import time

import jax
import jax.numpy as jnp
import numpy as np

from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root
from orchestra.env.cache import ApiCache, CacheTable
from orchestra.data.canonical import canonical_key, hash64, split_hash


def best_of(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--synthetic", type=int, default=1_000_000)
    args = ap.parse_args()

    eco = load_booking(resolve_data_root())
    t0 = time.perf_counter()
    cache = ApiCache.from_entries(eco.cache_entries)
    table = cache.device_table()
    jax.block_until_ready(table)
    build = time.perf_counter() - t0
    print(f"shipped cache: {len(eco.cache_entries)} entries, {len(cache)} distinct keys, "
          f"built in {build * 1e3:.1f} ms, device table {table.nbytes} bytes (probe {table.probe})")

    rng = random.Random(0)
    calls = []
    for _ in range(args.batch):  # 3 in 4 hits (with arguments as strings, to exercise canonicalisation)
        i = rng.randrange(len(cache))
        arguments = {k: str(v) for k, v in cache.arguments[i].items()} if rng.random() < 0.5 else cache.arguments[i]
        if rng.random() < 0.25:
            arguments = dict(arguments, page=str(rng.randrange(10**6)))
        calls.append((cache.functions[i], arguments))

    index = {k: i for i, k in enumerate(cache.keys)}

    def dict_lookup():
        return [index.get(canonical_key(f, a), -1) for f, a in calls]

    def host_hashes():
        return np.array([split_hash(hash64(canonical_key(f, a))) for f, a in calls], np.uint32)

    lookup = jax.jit(table.lookup)
    words = jnp.asarray(host_hashes())
    expected = np.array(dict_lookup())
    assert np.array_equal(np.asarray(lookup(words)), expected), "device and dict lookups disagree"

    t_dict = best_of(dict_lookup)
    t_device = best_of(lambda: lookup(words).block_until_ready())
    t_end = best_of(lambda: lookup(jnp.asarray(host_hashes())).block_until_ready(), repeats=3)
    n = args.batch
    print(f"\nbatch of {n} calls ({(expected >= 0).mean():.0%} hits), {jax.devices()[0].platform}:")
    print(f"{'method':44s} {'lookups/s':>14s} {'vs dict':>8s}")
    for name, t in [("python dict + canonical key", t_dict),
                    ("jitted device lookup (hashes given)", t_device),
                    ("host canonical key + hash, device lookup", t_end)]:
        print(f"{name:44s} {n / t:14,.0f} {t_dict / t:7.2f}x")

    if args.synthetic:
        keys = [f"F{i % 40}:[[\"id\",{i}]]" for i in range(args.synthetic)]
        t0 = time.perf_counter()
        big = CacheTable.build(keys)
        jax.block_until_ready(big)
        t_build = time.perf_counter() - t0
        q = jnp.asarray(np.array([split_hash(hash64(keys[rng.randrange(len(keys))])) for _ in range(n)], np.uint32))
        big_lookup = jax.jit(big.lookup)
        big_lookup(q).block_until_ready()
        t_big = best_of(lambda: big_lookup(q).block_until_ready())
        print(f"\nsynthetic cache of {len(keys):,} keys: built in {t_build:.2f}s, table {big.nbytes / 1e6:.1f} MB, "
              f"probe {big.probe}, {n / t_big:,.0f} device lookups/s")


if __name__ == "__main__":
    main()
