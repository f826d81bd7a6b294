"""Copy drills in isolation: how fast a small policy trained from scratch learns to copy, by drill kind.

The pretraining curriculum's `copy` skill (`orchestra.rl.curriculum`) was shaped by these runs (their
figures are in conf/pretrain.yaml). A plan is a list of phases `kind:steps`, trained one after the
other with the same optimizer; every `--eval-every` steps the loss on the copies of fixed
evaluation batches of each kind is printed, so a phase's effect on the others shows.

Kinds (5 to 24 random vocabulary tokens said back, as the curriculum draws them; loss on the copy):
- `bare`:   <|im_start|>, the tokens, a newline, the tokens: no chat frame (`bare_copy` drills).
- `framed`: the tokens after a random share of the chat frame of a "Repeat exactly:" request (what
            the curriculum's `copy` drills are).
- `whole`:  the tokens inside the whole frame: system prompt, user turn, assistant header.

    python -m experiments.copy_drills bare:400,framed:250
    python -m experiments.copy_drills bare:400,whole:250 --lr 2e-3 --rows 32 --length 128

The model is the `small` preset (or --preset); the tokenizer is the shipped base's (or --tokenizer).
The learning rate is constant after a 30-step warmup. On a 2-core CPU a step takes ~1.6 s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from flax import nnx
from omegaconf import OmegaConf

from experiments.pretrain import make_tx, train_step
from orchestra.model.chat import load_tokenizer
from orchestra.model.modeling import init_model
from orchestra.model.presets import preset_config
from orchestra.rl.curriculum import Example, copy_drill, copy_vocabulary
from orchestra.rl.sft import next_token_loss

KINDS = ("bare", "framed", "whole")
SHIPPED_TOKENIZER = Path(__file__).resolve().parents[1] / "checkpoints" / "small-base"
WARMUP = 30


def parse_plan(text: str) -> list[tuple[str, int]]:
    plan = []
    for part in text.split(","):
        kind, _, steps = part.partition(":")
        if kind not in KINDS or not steps.isdigit() or int(steps) < 1:
            raise argparse.ArgumentTypeError(f"plan phase {part!r}: expected KIND:STEPS with KIND one of {KINDS}")
        plan.append((kind, int(steps)))
    return plan


def drill(kind: str, vocabulary: list[str], rng: np.random.Generator) -> Example:
    return copy_drill(kind, vocabulary, {"bare": 0.0, "whole": 1.0}.get(kind), rng)


def batch(kind: str, vocabulary: list[str], tokenizer, rows: int, length: int, rng: np.random.Generator):
    ids, mask, segments = (np.zeros((rows, length), np.int32) for _ in range(3))
    for r in range(rows):
        encoded = drill(kind, vocabulary, rng).encode(tokenizer)
        n = len(encoded.token_ids)
        if n > length:
            raise ValueError(f"a {kind} drill has {n} tokens, more than --length {length}")
        ids[r, :n], mask[r, :n], segments[r, :n] = encoded.token_ids, encoded.policy_mask, 1
    return ids, mask, segments


@nnx.jit
def eval_loss(model, tokens, loss_mask, segment_ids):
    return next_token_loss(model, tokens, loss_mask, segment_ids)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", type=parse_plan, help="phases KIND:STEPS, comma-separated, e.g. bare:400,framed:250")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--tokenizer", default=str(SHIPPED_TOKENIZER))
    args = parser.parse_args(argv)

    tokenizer = load_tokenizer(args.tokenizer)
    vocabulary = copy_vocabulary(tokenizer)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = preset_config(args.preset).replace(eos_token_id=im_end, pad_token_id=tokenizer.pad_token_id)
    model = init_model(config, args.seed)
    tx = OmegaConf.create({"max_grad_norm": 1.0, "b1": 0.9, "b2": 0.95, "eps": 1e-8, "weight_decay": 0.1})
    optimizer = nnx.Optimizer(model, make_tx(tx), wrt=nnx.Param)
    evals = {k: batch(k, vocabulary, tokenizer, args.rows, args.length, np.random.default_rng([args.seed, 99]))
             for k in KINDS}
    rng = np.random.default_rng([args.seed, 1])
    step, start = 0, time.perf_counter()
    print(f"{len(vocabulary)} vocabulary tokens; eval: loss on the copies of {args.rows} fixed drills per kind", flush=True)
    for kind, steps in args.plan:
        for _ in range(steps):
            lr = args.lr * min(1.0, (step + 1) / WARMUP)
            loss, _, _ = train_step(model, optimizer, *batch(kind, vocabulary, tokenizer, args.rows, args.length, rng), lr)
            step += 1
            if step % args.eval_every == 0:
                losses = "  ".join(f"{k} {float(eval_loss(model, *b)):.2f}" for k, b in evals.items())
                print(f"step {step:5d} [{kind}] train {float(loss):.3f}  eval: {losses}  "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
