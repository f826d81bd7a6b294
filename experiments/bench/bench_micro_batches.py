"""The RL update in micro-batches against one pass, side by side in this process.

One GRPO update (`orchestra.rl.learner.update_step`) of a `--rows`-row minibatch of `--length`-token
rollouts (random tokens; the last 40% of each row are policy tokens), on the shipped small base (or
`--model`), split into 1 (the baseline), 2, 4, ... passes whose gradients are summed. Every variant
computes the same update; they differ in how much memory is live at once (the attention scores of
long rows dominate it). All rows have the same length here; what cutting each pass to its own
length adds is measured by `bench_sft_batching`. Compilation is excluded (one untimed update per variant); each figure is the
best of `--repeats` updates, wall-clock and process CPU time.

    python -m experiments.bench.bench_micro_batches [--rows 16 --length 2048 --micro 1,2,4,8]
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
from orchestra.rl.learner import Learner, LossConfig, make_optimizer, update_step
from orchestra.rl.trainer import data_mesh, take_rows

SHIPPED_BASE = Path(__file__).resolve().parents[2] / "checkpoints" / "small-base"


def minibatch(rows: int, length: int, vocab: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    mask = np.zeros((rows, length), np.int32)
    mask[:, int(length * 0.6):] = 1
    batch = {"tokens": rng.integers(0, vocab, (rows, length)).astype(np.int32), "loss_mask": mask,
             "segment_ids": np.ones((rows, length), np.int32),
             "old_logp": -rng.random((rows, length - 1)).astype(np.float32) * 4,
             "ref_logp": -rng.random((rows, length - 1)).astype(np.float32) * 4,
             "advantages": rng.normal(size=rows).astype(np.float32)}
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--micro", default="1,2,4,8", help="numbers of passes per update; the first is the baseline")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default=str(SHIPPED_BASE))
    args = parser.parse_args()

    policy = load_model(args.model)
    learner = Learner(policy, with_value_head=False)
    optimizer = make_optimizer(learner, 1e-6, 1, 100, 0.0, 1.0)
    mesh = data_mesh()  # placed as the trainer places them: state replicated, rows sharded
    for module in (learner, optimizer):
        nnx.update(module, jax.device_put(nnx.state(module), NamedSharding(mesh, P())))
    batch = minibatch(args.rows, args.length, policy.config.vocab_size)
    cfg = LossConfig()
    print(f"one GRPO update of {args.rows} rows x {args.length} tokens, {jax.device_count()} device(s)")
    baseline = None
    for passes in (int(x) for x in args.micro.split(",")):
        parts = [jax.device_put(take_rows(batch, np.arange(i, args.rows, passes), args.length),
                                NamedSharding(mesh, P("data"))) for i in range(passes)]
        jax.block_until_ready(update_step(learner, optimizer, parts, cfg))  # compile
        best_wall = best_cpu = float("inf")
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(update_step(learner, optimizer, parts, cfg))
            best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
        baseline = baseline or (best_wall, best_cpu)
        print(f"{passes} pass(es) of {args.rows // passes:3d} rows: {best_wall:6.1f} s wall "
              f"({baseline[0] / best_wall:.2f}x),"
              f" {best_cpu:6.1f} s CPU ({baseline[1] / best_cpu:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
