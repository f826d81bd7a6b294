"""How SFT batches are cut into passes, on the main job's own gold episodes and the shipped small base.

Three ways to run the same SFT steps, one after the other in this process:
- `one pass`: batches of episodes of similar length, each padded to `256 * 2**k` of its longest
  row, in one forward/backward pass (the warm start until stop 14);
- `grouped 2^k`: the same batches in passes of `--micro` rows, every pass padded to its batch's
  length (stop 14);
- `own length` (the main job now, `orchestra.rl.sft`): batches in random order, each cut into
  passes of `--micro` rows of similar length, every pass padded to a multiple of 128 of its own
  longest row.
Reported per way: padded tokens per epoch (what the compiled steps compute on), distinct pass shapes
(one compilation each) and, with `--steps N`, the wall time of N steps after one untimed step per
shape (compilation excluded), with the ratio to the first way.

Tasks, views, batch size and episode cap come from the main job's config (conf/config.yaml, with
any Hydra overrides given after the options), so the figures are those of `experiments.run`.

    python -m experiments.bench.bench_sft_batching [--steps 8] [--micro 2] [seed=1 synth.count=800 ...]
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
from orchestra.rl.trainer import micro_batches
from orchestra.synth import SynthConfig, read_seen_values, split_tasks, synthesize

REPO = Path(__file__).resolve().parents[2]


def power_of_two_length(length: int, bucket: int = 256) -> int:
    out = bucket
    while out < length:
        out *= 2
    return out


def grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator):
    """The earlier batches: each epoch's episodes sorted by length (ties at random) and cut in
    order, the batches in random order."""
    while True:
        order = np.lexsort((rng.permutation(len(lengths)), lengths))[: len(lengths) - len(lengths) % batch_size]
        cut = [order[s: s + batch_size] for s in range(0, len(order), batch_size)]
        for i in rng.permutation(len(cut)):
            yield cut[i]


def steps_of(way: str, ids, masks, lengths, batch_size: int, micro: int, n: int, seed: int):
    """n steps, each a list of padded passes (TokenBatch), cut the given way."""
    rng = np.random.default_rng(seed)
    stream = batches(len(ids), batch_size, rng) if way == "own length" else grouped_batches(lengths, batch_size, rng)
    out = []
    for _ in range(n):
        rows = next(stream)
        if way == "own length":
            cuts = micro_batches(rows, lengths, micro, 128)
        else:
            length = power_of_two_length(int(lengths[rows].max()))
            size = batch_size if way == "one pass" else micro
            cuts = [(rows[i: i + size], length) for i in range(0, len(rows), size)]
        out.append([pad_batch([ids[i] for i in r if i >= 0], [masks[i] for i in r if i >= 0], length)
                    for r, length in cuts])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=0, help="also time this many SFT steps of each way")
    parser.add_argument("--micro", type=int, default=2, help="rows per pass")
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
    ids, masks, _, _ = encode_gold_episodes(tasks, eco.tools, tokenizer, view, tool_view, sft["max_len"])
    batch_size = sft["batch_size"]
    if batch_size % args.micro:
        raise SystemExit(f"--micro {args.micro} must divide rl.sft.batch_size {batch_size}")
    lengths = np.array([len(x) for x in ids])
    print(f"{len(ids)} gold episodes, tokens min/median/max {lengths.min()}/{int(np.median(lengths))}/"
          f"{lengths.max()}, {lengths.sum():,} in all; batches of {batch_size}, passes of {args.micro} rows")

    ways = ("one pass", "grouped 2^k", "own length")
    per_epoch = len(ids) // batch_size
    for way in ways:
        steps = steps_of(way, ids, masks, lengths, batch_size, args.micro, 10 * per_epoch, seed)
        padded = sum(p.tokens.size for parts in steps for p in parts) / 10
        shapes = {p.tokens.shape for parts in steps for p in parts}
        print(f"{way:>12}: {padded:,.0f} padded tokens per epoch ({lengths.sum() / padded:.0%} real), "
              f"{len(shapes)} pass shapes")

    if args.steps:
        seconds = {}
        for way in ways:
            model = load_model(model_path)
            optimizer = nnx.Optimizer(model, optax.adamw(1e-4), wrt=nnx.Param)
            todo = steps_of(way, ids, masks, lengths, batch_size, args.micro, args.steps, seed)
            done = set()
            for parts in todo:  # compile each pass shape once, untimed
                new = [p for p in parts if p.tokens.shape not in done]
                if new:
                    sft_step(model, optimizer, new)
                    done |= {p.tokens.shape for p in new}
            start = time.perf_counter()
            for parts in todo:
                sft_step(model, optimizer, parts)   # returns floats: each step is waited for
            seconds[way] = time.perf_counter() - start
            print(f"{way:>12}: {args.steps} steps in {seconds[way]:.1f} s ({seconds[way] / args.steps:.1f} s/step, "
                  f"{seconds[ways[0]] / seconds[way]:.2f}x {ways[0]})", flush=True)


if __name__ == "__main__":
    main()
