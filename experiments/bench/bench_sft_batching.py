"""SFT warm-start batching: rows grouped by length (`orchestra.rl.sft.batches`) against the shuffled
batches it replaced, on the main job's own training tasks and the shipped small base.

Both pad each batch to `256 * 2**k` of its longest row; they differ only in which episodes share a
batch. Reported: padded tokens per epoch (what the compiled steps compute on) and, with `--steps N`,
the wall time of N SFT steps of each, run one after the other in this process after one untimed step
per shape (compilation excluded).

    python -m experiments.bench.bench_sft_batching [--count 400 --batch 8 --steps 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optax
from flax import nnx

from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root
from orchestra.env.views import ResponseView, ToolView
from orchestra.model.chat import load_tokenizer
from orchestra.model.loader import load_model
from orchestra.rl.sft import batches, encode_gold_episodes, pad_batch, sft_step
from orchestra.synth import SynthConfig, read_seen_values, split_tasks, synthesize
from orchestra.rl.trainer import padded_length


def shuffled_batches(ids, masks, batch_size: int, rng: np.random.Generator, bucket: int = 256):
    """The baseline: each epoch shuffled and cut in order, whatever the lengths."""
    while True:
        order = rng.permutation(len(ids))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            rows = order[start: start + batch_size]
            length = padded_length(max(len(ids[i]) for i in rows), bucket)
            yield pad_batch([ids[i] for i in rows], [masks[i] for i in rows], length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints/small-base")
    parser.add_argument("--count", type=int, default=400, help="tasks synthesized (the main job's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=0, help="also time this many SFT steps of each")
    args = parser.parse_args()

    eco = load_booking(resolve_data_root())
    config = SynthConfig.from_dict({"count": args.count, "source": "mixed", "complexity": {"steps": [2, 3]},
                                    "split": {"by": "values"}})
    tasks = split_tasks(synthesize(eco, config, seed=args.seed).tasks, config.split, seed=args.seed,
                        seen_values=read_seen_values(args.model)).train
    tokenizer = load_tokenizer(args.model)
    ids, masks, _ = encode_gold_episodes(tasks, eco.tools, tokenizer, ResponseView(max_chars=300), ToolView(),
                                         max_len=2048)
    lengths = np.array([len(x) for x in ids])
    print(f"{len(ids)} gold episodes, tokens min/median/max {lengths.min()}/{int(np.median(lengths))}/"
          f"{lengths.max()}, {lengths.sum():,} in all")

    per_epoch = len(ids) // args.batch
    streams = {"shuffled": shuffled_batches, "by length": batches}
    padded = {}
    for name, make in streams.items():
        stream = make(ids, masks, args.batch, np.random.default_rng(args.seed))
        shapes = [next(stream).tokens.shape for _ in range(10 * per_epoch)]
        padded[name] = sum(b * t for b, t in shapes) / 10
        print(f"{name:>10}: {padded[name]:,.0f} padded tokens per epoch "
              f"({lengths.sum() / padded[name]:.0%} real)")
    print(f"padded tokens, by length / shuffled: {padded['by length'] / padded['shuffled']:.2f}")

    if args.steps:
        seconds = {}
        for name, make in streams.items():
            model = load_model(args.model)
            optimizer = nnx.Optimizer(model, optax.adamw(1e-4), wrt=nnx.Param)
            stream = make(ids, masks, args.batch, np.random.default_rng(args.seed))
            todo = [next(stream) for _ in range(args.steps)]
            for shape in sorted({b.tokens.shape for b in todo}):  # compile each shape once, untimed
                b = next(x for x in todo if x.tokens.shape == shape)
                sft_step(model, optimizer, b.tokens, b.loss_mask, b.segment_ids)[0].block_until_ready()
            start = time.perf_counter()
            for b in todo:
                loss, _ = sft_step(model, optimizer, b.tokens, b.loss_mask, b.segment_ids)
            loss.block_until_ready()
            seconds[name] = time.perf_counter() - start
            print(f"{name:>10}: {args.steps} steps in {seconds[name]:.1f} s ({seconds[name] / args.steps:.1f} s/step)")
        print(f"time, by length / shuffled: {seconds['by length'] / seconds['shuffled']:.2f}")


if __name__ == "__main__":
    main()
