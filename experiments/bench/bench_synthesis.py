"""Synthesis benchmark: constrained against unconstrained sampling on the same templates, and how
many distinct valid traces the shipped cache holds at each length.

Samplers, each given the same number of attempts on every template whose functions all have cache
entries (an attempt is one pass over the template's steps, so a restart is a new attempt):
- constrained: the sampler of `orchestra.synth.sampler`, choices narrowed by `step_domains`;
- constrained (no pruning): the same without the narrowing (the plain restart sampler);
- unconstrained: every argument value proposed freely (`orchestra.synth.unconstrained`).
Every proposed trace is replayed through the jitted environment; a trace is valid when every step
succeeds and every dependency argument equals the value at its `from_field`. Times cover proposing
and replaying.

Counts: for every template, its distinct chains in the cache (`count_chains`, exhaustive); and the
distinct composed chains with one root where every later step reads an earlier response
(`DependencyGraph.count_connected`, exhaustive up to --max-connected steps).

    python experiments/bench/bench_synthesis.py --attempts 500 --max-connected 5 --out bench_synthesis.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np
from rich.console import Console
from rich.table import Table

from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root
from orchestra.data.serialize import atomic_writer
from orchestra.data.types import Call
from orchestra.env.build import Environment
from orchestra.env.env import EnvConfig
from orchestra.synth.graph import DependencyGraph, structure_key
from orchestra.synth.index import ReverseIndex
from orchestra.synth.pipeline import replay_ok
from orchestra.synth.sampler import chain_ok, count_chains, sample_chain, step_domains
from orchestra.synth.unconstrained import FreeProposer


def run_sampler(kind: str, templates, env, index, attempts: int, seed: int, batch: int) -> dict:
    cache = env.cache
    rng = np.random.default_rng(seed)
    proposer = FreeProposer(cache, index)
    start = time.perf_counter()
    proposals = []  # (template, calls)
    for t in templates:
        domains = (step_domains(t, cache, index) if kind == "constrained" else
                   [frozenset(index.entries(s.function)) for s in t.steps])
        for _ in range(attempts):
            if kind == "unconstrained":
                proposals.append((t, proposer.propose(t, rng)))
            else:
                chain = sample_chain(t, cache, index, rng, max_restarts=1, domains=domains)
                if chain is not None:
                    proposals.append((t, [Call(cache.functions[e], cache.arguments[e]) for e in chain]))
    ran = replay_ok(env, [calls for _, calls in proposals], batch)
    valid, distinct, per_template = 0, set(), Counter()
    for (t, calls), ok in zip(proposals, ran):
        if not ok:
            continue
        chain = [cache.lookup(c.function, c.arguments) for c in calls]
        if chain_ok(t, chain, cache):
            valid += 1
            distinct.add((t.workflow_id, tuple(chain)))
            per_template[t.workflow_id] += 1
    seconds = time.perf_counter() - start
    total = attempts * len(templates)
    return {"attempts": total, "replayed": len(proposals), "executed_fully": int(sum(ran)), "valid": valid,
            "valid_per_attempt": valid / total, "seconds": round(seconds, 3),
            "valid_per_second": valid / seconds, "distinct_valid": len(distinct),
            "templates_with_a_valid_trace": len(per_template)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--attempts", type=int, default=500, help="attempts per template and sampler")
    ap.add_argument("--max-connected", type=int, default=5, help="longest composed chain to enumerate")
    ap.add_argument("--batch", type=int, default=256, help="traces replayed at once")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    console = Console(width=150)

    eco = load_booking(resolve_data_root(args.data_root))
    recorded = {e.function for e in eco.cache_entries}
    templates = [t for t in eco.templates if all(s.function in recorded for s in t.steps)]
    longest = max(len(t.steps) for t in templates)
    env = Environment.from_ecosystem(eco, config=EnvConfig(max_turns=longest, max_calls=longest,
                                                           max_calls_per_turn=1))
    index = ReverseIndex(env.cache)
    env.replay([[Call("", {})] * longest] * (args.batch + 1))  # compile outside the timings
    console.print(f"[bold]cache[/] {len(env.cache)} distinct calls over {len(index.functions)} functions; "
                  f"{len(templates)} of {len(eco.templates)} templates have cache entries for every step")

    results = {}
    for kind in ("constrained", "constrained_no_pruning", "unconstrained"):
        results[kind] = run_sampler(kind, templates, env, index, args.attempts, args.seed, args.batch)
    table = Table(title=f"valid traces, {args.attempts} attempts per template on {len(templates)} templates")
    for col in ("sampler", "attempts", "executed fully", "valid", "valid / attempt", "valid / s", "distinct valid",
                "templates hit", "seconds"):
        table.add_column(col, justify="right")
    for kind, r in results.items():
        table.add_row(kind, str(r["attempts"]), str(r["executed_fully"]), str(r["valid"]),
                      f"{r['valid_per_attempt']:.4f}", f"{r['valid_per_second']:.1f}", str(r["distinct_valid"]),
                      str(r["templates_with_a_valid_trace"]), f"{r['seconds']:.2f}")
    console.print(table)
    c, u = results["constrained"], results["unconstrained"]
    ratio = {key: (c[key] / u[key] if u[key] else None) for key in ("valid_per_attempt", "valid_per_second")}
    console.print("[bold]constrained / unconstrained[/] " + (
        ", ".join(f"{k}: {v:.0f}x" for k, v in ratio.items()) if u["valid"] else
        f"unconstrained found no valid trace in {u['attempts']} attempts"))

    # distinct valid traces the cache holds, by length
    by_len: dict[int, dict] = {}
    exact_all = True
    for t in eco.templates:
        row = by_len.setdefault(len(t.steps), {"templates": 0, "with_entries": 0, "with_a_chain": 0, "traces": 0})
        row["templates"] += 1
        if t not in templates:
            continue
        row["with_entries"] += 1
        n, exact = count_chains(t, env.cache, index)
        exact_all &= exact
        row["traces"] += n
        row["with_a_chain"] += n > 0
    kind = "exhaustive count" if exact_all else "exhaustive count, some lower bounds"
    table = Table(title=f"template chains in the cache ({kind})")
    for col in ("steps", "templates", "with cache entries", "with a valid chain", "distinct valid traces"):
        table.add_column(col, justify="right")
    for n, row in sorted(by_len.items()):
        table.add_row(str(n), str(row["templates"]), str(row["with_entries"]), str(row["with_a_chain"]),
                      f"{row['traces']:,}")
    console.print(table)

    graph = DependencyGraph.mine(eco.tools, eco.templates, env.cache, index)
    t0 = time.perf_counter()
    connected, finished = graph.count_connected(args.max_connected, env.cache, index,
                                                forbidden={structure_key(t) for t in eco.templates})
    table = Table(title=f"composed connected chains (one root, every later step reads an earlier response), "
                        f"{'exhaustive' if finished else 'lower bounds'}, {time.perf_counter() - t0:.1f} s")
    for col in ("steps", "distinct traces", "of a shape no template lists"):
        table.add_column(col, justify="right")
    for n, row in sorted(connected.items()):
        table.add_row(str(n), f"{row['traces']:,}", f"{row['novel']:,}")
    console.print(table)
    console.print(f"[bold]graph[/] {graph.summary()}")

    if args.out:
        with atomic_writer(args.out) as f:
            json.dump({"args": vars(args), "samplers": results, "ratio": ratio, "template_chains": by_len,
                       "template_counts_exact": exact_all, "composed_connected": connected,
                       "composed_exhaustive": finished, "graph": graph.summary()}, f, indent=1)
        console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
