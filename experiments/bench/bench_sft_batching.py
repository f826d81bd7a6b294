"""SFT warm-start batching: rows grouped by length (`orchestra.rl.sft.batches`) against the shuffled
batches it replaced, on the main job's own training tasks and the shipped small base.

Both pad each batch to `256 * 2**k` of its longest row; they differ only in which episodes share a
batch. Reported: padded tokens per epoch (what the compiled steps compute on) and, with `--steps N`,
the wall time of N SFT steps of each, run one after the other in this process after one untimed step
per shape (compilation excluded).

Tasks, views, batch size and episode cap come from the main job's config (conf/config.yaml, with
any Hydra overrides given after the options), so the figures are those of `experiments.run`.

With `--micro 1,4` (and `--steps N`), the same N length-grouped batches are also timed with the
forward and backward passes run in that many micro-batches (`rl.sft.micro_batch_size` = batch size
over it), one setting after the other in this process, compilation excluded.

    python -m experiments.bench.bench_sft_batching [--steps 8] [--micro 1,4] [seed=1 synth.count=800 ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import optax
from flax import nnx
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.synthesize import RUN_KEYS
from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root
from orchestra.env.config import env_config
from orchestra.model.chat import load_tokenizer
from orchestra.model.loader import load_model
from orchestra.rl.sft import batches, encode_gold_episodes, pad_batch, sft_step
from orchestra.rl.trainer import padded_length
from orchestra.synth import SynthConfig, read_seen_values, split_tasks, synthesize

REPO = Path(__file__).resolve().parents[2]


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
    parser.add_argument("--steps", type=int, default=0, help="also time this many SFT steps of each")
    parser.add_argument("--micro", default="", help="comma-separated micro-batch counts to time (with --steps)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the main job's config")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        plain = OmegaConf.to_container(compose("config", overrides=args.overrides), resolve=True)
    model_path, sft, seed = str(REPO / plain["model"]["path"]), plain["rl"]["sft"], plain["seed"]

    # The main job's tasks and episodes (experiments/run.py): same synthesis, split and views.
    eco = load_booking(resolve_data_root(plain["data"]["root"]))
    config = SynthConfig.from_dict({k: v for k, v in plain["synth"].items() if k not in RUN_KEYS})
    tasks = split_tasks(synthesize(eco, config, seed=seed).tasks, config.split, seed=seed,
                        seen_values=read_seen_values(model_path)).train
    _, view, tool_view, _ = env_config(plain["env"])
    tokenizer = load_tokenizer(model_path)
    ids, masks, _ = encode_gold_episodes(tasks, eco.tools, tokenizer, view, tool_view, sft["max_len"])
    batch_size = sft["batch_size"]
    lengths = np.array([len(x) for x in ids])
    print(f"{len(ids)} gold episodes, tokens min/median/max {lengths.min()}/{int(np.median(lengths))}/"
          f"{lengths.max()}, {lengths.sum():,} in all")

    per_epoch = len(ids) // batch_size
    streams = {"shuffled": shuffled_batches, "by length": batches}
    padded = {}
    for name, make in streams.items():
        stream = make(ids, masks, batch_size, np.random.default_rng(seed))
        shapes = [next(stream).tokens.shape for _ in range(10 * per_epoch)]
        padded[name] = sum(b * t for b, t in shapes) / 10
        print(f"{name:>10}: {padded[name]:,.0f} padded tokens per epoch "
              f"({lengths.sum() / padded[name]:.0%} real)")
    print(f"padded tokens, by length / shuffled: {padded['by length'] / padded['shuffled']:.2f}")

    if args.steps:
        seconds = {}
        for name, make in streams.items():
            model = load_model(model_path)
            optimizer = nnx.Optimizer(model, optax.adamw(1e-4), wrt=nnx.Param)
            stream = make(ids, masks, batch_size, np.random.default_rng(seed))
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

    counts = [int(m) for m in args.micro.split(",") if m]
    if counts and args.steps:
        todo = [b for b, _ in zip(batches(ids, masks, batch_size, np.random.default_rng(seed)), range(args.steps))]
        seconds = {}
        for m in counts:
            model = load_model(model_path)
            optimizer = nnx.Optimizer(model, optax.adamw(1e-4), wrt=nnx.Param)
            for shape in sorted({b.tokens.shape for b in todo}):  # compile each shape once, untimed
                b = next(x for x in todo if x.tokens.shape == shape)
                sft_step(model, optimizer, b.tokens, b.loss_mask, b.segment_ids, m)[0].block_until_ready()
            start = time.perf_counter()
            for b in todo:
                loss, _ = sft_step(model, optimizer, b.tokens, b.loss_mask, b.segment_ids, m)
            loss.block_until_ready()
            seconds[m] = time.perf_counter() - start
            print(f"{m} micro-batch(es) of {batch_size // m} rows: {args.steps} steps in {seconds[m]:.1f} s "
                  f"({seconds[m] / args.steps:.1f} s/step, {seconds[counts[0]] / seconds[m]:.2f}x the first)")


if __name__ == "__main__":
    main()
