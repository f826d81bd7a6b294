"""The RL update with each group's prompt encoded once against micro-batches, side by side in this process.

One GRPO update (`orchestra.rl.learner.update_step`, plus the frozen reference's log-probs of every
pass, as `Trainer.train_step` computes them) of `--groups` groups of `--group-size` rows on the
shipped small base (or `--model`). Each group's rows share a `--prompt`-token prompt and continue
with their own random tokens, `--continuation` on average (uniform within +-50%; the last 40% of a
continuation are policy tokens, observations before them). Two ways of computing the same update:
- `micro-batches` (the baseline, `rl.share_prompt=false`): passes of `--micro` rows of similar
  length, each padded to a multiple of 128 tokens of its own longest row;
- `shared prompt` (`rl.share_prompt=true`): one pass per group, its prompt encoded once into a cache
  the group's rows attend to (`learner.part_hidden_states`), each padded to a multiple of 128.
Compilation is excluded (one untimed update per way); each figure is the best of `--repeats`.

    python -m experiments.bench.bench_shared_prompt [--prompt 1150 --continuation 60]   # one-turn rows
    python -m experiments.bench.bench_shared_prompt --prompt 900 --continuation 400     # multi-turn rows
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from orchestra.model.loader import load_model
from orchestra.rl.learner import Learner, LossConfig, make_optimizer, sequence_log_probs, update_step
from orchestra.rl.trainer import data_mesh, micro_batches, pad_rollouts, place_part, shared_prompt_part, take_rows
from orchestra.rl.rollout import Rollouts

SHIPPED_BASE = Path(__file__).resolve().parents[2] / "checkpoints" / "small-base"
BUCKET = 128


def rollouts(groups: int, group_size: int, prompt: int, continuation: int, vocab: int, seed: int = 0) -> Rollouts:
    rng = np.random.default_rng(seed)
    tokens, masks, logps = [], [], []
    for _ in range(groups):
        shared = rng.integers(0, vocab, prompt).tolist()
        for _ in range(group_size):
            n = int(rng.integers(continuation // 2, continuation * 3 // 2 + 1))
            policy = max(1, int(n * 0.4))
            tokens.append(shared + rng.integers(0, vocab, n).tolist())
            masks.append([0] * (prompt + n - policy) + [1] * policy)
            logps.append([0.0] * (prompt + n - policy) + (-rng.random(policy) * 4).tolist())
    n = len(tokens)
    return Rollouts(np.repeat(np.arange(groups), group_size), tokens, masks, logps, [[]] * n, [[]] * n,
                    np.ones(n, np.int32), np.zeros(n, np.int32), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=1150)
    parser.add_argument("--continuation", type=int, default=60)
    parser.add_argument("--micro", type=int, default=2, help="rows per pass of the baseline")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default=str(SHIPPED_BASE))
    args = parser.parse_args()

    policy = load_model(args.model)
    learner, reference = Learner(policy, with_value_head=False), nnx.clone(policy)
    optimizer = make_optimizer(learner, 1e-6, 1, 100, 0.0, 1.0)
    mesh = data_mesh()  # placed as the trainer places them: state replicated, rows sharded
    for module in (learner, reference, optimizer):
        nnx.update(module, jax.device_put(nnx.state(module), NamedSharding(mesh, P())))
    batch_rollouts = rollouts(args.groups, args.group_size, args.prompt, args.continuation, policy.config.vocab_size)
    batch = pad_rollouts(batch_rollouts, BUCKET)
    batch["advantages"] = np.random.default_rng(1).normal(size=len(batch["tokens"])).astype(np.float32)
    lengths = np.array([len(t) for t in batch_rollouts.tokens])
    rows = np.arange(len(lengths))
    ways = {
        "micro-batches": [take_rows(batch, r, n) for r, n in micro_batches(rows, lengths, args.micro, BUCKET)],
        "shared prompt": [shared_prompt_part(batch, r, lengths, BUCKET) for r in rows.reshape(-1, args.group_size)],
    }
    cfg = LossConfig()

    def update(parts):
        placed = []
        for part in parts:
            part = place_part(part, mesh)
            part["ref_logp"] = sequence_log_probs(reference, part)
            placed.append(part)
        return jax.block_until_ready(update_step(learner, optimizer, placed, cfg))

    print(f"one GRPO update of {args.groups} groups x {args.group_size} rows: prompt {args.prompt} tokens, "
          f"continuations {int(lengths.mean()) - args.prompt} on average; {jax.device_count()} device(s)")
    baseline = None
    for name, parts in ways.items():
        padded = sum(p["tokens"].size + p.get("prefix_tokens", np.zeros(0)).size for p in parts)
        update(parts)  # compile
        best_wall = best_cpu = float("inf")
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            update(parts)
            best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
        baseline = baseline or (best_wall, best_cpu)
        print(f"{name:14s}: {len(parts):2d} passes, {padded:6d} padded tokens, {best_wall:6.1f} s wall "
              f"({baseline[0] / best_wall:.2f}x), {best_cpu:6.1f} s CPU ({baseline[1] / best_cpu:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
