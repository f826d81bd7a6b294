"""Rewards per second: the plain-Python reference against the jitted batch reward, same batch.

    python -m experiments.bench.bench_reward [--batch 4096] [--mode paper|strict] [--repeats 5]

The batch is `--batch` rollouts built from the real tasks' gold traces (with their recorded
responses), each with one random perturbation (a call dropped, two swapped, a value changed, a
type changed, a parameter added or removed, an unknown function, a repeated call, a failed
response, a malformed block) or none. Timed, side by side:
- reference, from text: parse each rollout (calls and JSON responses), then score it in Python;
- reference, on parsed calls: the Python scoring alone, calls already extracted;
- JAX end to end from text: parse and encode each rollout on the host, gather the gold arrays,
  one jitted call for the whole batch;
- JAX from parsed calls: `encode_calls` on the blocks and success flags the environment already
  has (no response text to parse), the gather, the jitted call;
- JAX on encoded calls: the jitted call alone on arrays already on the device (what the trainer
  pays, since the environment encodes each call when it executes it).
Rows report rollouts per second and the ratio to each reference; JAX times are the best of
`--repeats` runs after a warm-up (compilation excluded), the reference is timed once.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root
from orchestra.data.types import Call
from orchestra.reward import (RewardConfig, RewardVocab, encode_calls, encode_rollout, encode_task, make_reward_fn,
                              reference_reward, render_rollout, rollout_calls, stack)
from orchestra.reward.reference import parse_rollout

MAX_CALLS, MAX_STEPS = 16, 8
MALFORMED = ['{"name": "Search_Hotels", "arguments": {', '["Search_Hotels"]', '{"arguments": {}}',
             '{"name": "Search_Hotels", "arguments": "dest_id=1"}']
KINDS = ("none", "drop", "swap", "corrupt_value", "change_type", "add_param", "remove_param", "unknown_function",
         "repeat", "fail_response", "malformed")


def perturb(items: list, rng: np.random.Generator) -> list:
    """One random perturbation of a list of (call, response) pairs."""
    items = list(items)
    kind = KINDS[rng.integers(len(KINDS))]
    at = int(rng.integers(len(items)))
    call, response = items[at]
    names = sorted(call.arguments)
    if kind == "drop":
        del items[at]
    elif kind == "swap":
        other = int(rng.integers(len(items)))
        items[at], items[other] = items[other], items[at]
    elif kind in ("corrupt_value", "change_type", "remove_param") and names:
        args = dict(call.arguments)
        name = names[rng.integers(len(names))]
        if kind == "remove_param":
            del args[name]
        elif kind == "change_type":
            args[name] = 7 if isinstance(args[name], str) else "7"
        else:
            args[name] = args[name] + "zz" if isinstance(args[name], str) else "zz"
        items[at] = (Call(call.function, args), response)
    elif kind == "add_param":
        items[at] = (Call(call.function, {**call.arguments, "extra": 1}), response)
    elif kind == "unknown_function":
        items.insert(at, (Call("Not_A_Tool", {}), {"error": "unknown function"}))
    elif kind == "repeat":
        items.insert(int(rng.integers(len(items) + 1)), items[at])
    elif kind == "fail_response":
        items[at] = (call, {"error": "No results found"})
    elif kind == "malformed":
        items.insert(at, (MALFORMED[rng.integers(len(MALFORMED))], {"error": "Invalid tool call"}))
    return items


def per_second(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--mode", choices=("paper", "strict"), default="paper")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    eco = load_booking(resolve_data_root())
    config = RewardConfig(mode=args.mode)
    vocab = RewardVocab.from_tools(eco.tools)
    rng = np.random.default_rng(args.seed)
    task_index = np.arange(args.batch) % len(eco.tasks)
    tasks = [eco.tasks[i] for i in task_index]
    texts = [render_rollout(perturb([(s.call, s.response) for s in t.steps], rng)) for t in tasks]
    gold_table = stack([encode_task(t, vocab, MAX_STEPS) for t in eco.tasks])  # once per task set
    reward_fn = make_reward_fn(config)
    print(f"{args.batch} rollouts over {len(eco.tasks)} tasks, mode={args.mode}, "
          f"{sum(map(len, texts)) / len(texts) / 1024:.1f} KiB of text per rollout, device {jax.devices()[0]}")

    # Reference, from text and on parsed calls.
    t0 = time.perf_counter()
    reference = [reference_reward(text, task, config).reward for text, task in zip(texts, tasks)]
    t_ref_text = time.perf_counter() - t0
    parsed = [rollout_calls(text) for text in texts]
    t0 = time.perf_counter()
    for calls, task in zip(parsed, tasks):
        reference_reward(calls, task, config)
    t_ref_calls = time.perf_counter() - t0

    # JAX end to end from text.
    def end_to_end():
        calls = stack([encode_rollout(text, vocab, MAX_CALLS) for text in texts])
        gold = jax.tree.map(lambda table: table[task_index], gold_table)
        return jax.block_until_ready(reward_fn(calls, gold))

    out = end_to_end()  # compiles
    error = float(np.max(np.abs(np.asarray(out.reward) - np.asarray(reference))))
    t_e2e = best_of(end_to_end, max(1, args.repeats // 2))

    # JAX from the parsed blocks and success flags the environment holds.
    blocks = [parse_rollout(text) for text in texts]

    def from_parsed():
        calls = stack([encode_calls([b for b, _ in bs], [ok for _, ok in bs], vocab, MAX_CALLS) for bs in blocks])
        gold = jax.tree.map(lambda table: table[task_index], gold_table)
        return jax.block_until_ready(reward_fn(calls, gold))

    from_parsed()
    t_parsed = best_of(from_parsed, max(1, args.repeats // 2))

    # JAX on encoded calls already on the device.
    calls = jax.device_put(stack([encode_rollout(text, vocab, MAX_CALLS) for text in texts]))
    gold = jax.device_put(jax.tree.map(lambda table: table[task_index], gold_table))
    jax.block_until_ready(reward_fn(calls, gold))
    t_encoded = best_of(lambda: jax.block_until_ready(reward_fn(calls, gold)), args.repeats)

    rows = [("reference, from text", t_ref_text), ("reference, on parsed calls", t_ref_calls),
            ("JAX end to end from text", t_e2e), ("JAX from parsed calls", t_parsed),
            ("JAX on encoded calls", t_encoded)]
    print(f"\n{'path':<28} {'seconds':>9} {'rollouts/s':>12} {'x ref (text)':>13} {'x ref (calls)':>14}")
    for name, seconds in rows:
        print(f"{name:<28} {seconds:>9.4f} {per_second(args.batch, seconds):>12,.0f} "
              f"{t_ref_text / seconds:>13.1f} {t_ref_calls / seconds:>14.1f}")
    print(f"\nlargest |JAX - reference| over the batch: {error:.2e}")
    print(f"mean reward {np.mean(reference):.4f}; rewards of 1: {np.mean(np.isclose(reference, 1.0)):.1%}")


if __name__ == "__main__":
    main()
