"""Held-out turn accuracy at every kept RL checkpoint of a run: python -m experiments.checkpoint_curve RUN_DIR

RUN_DIR is a finished run directory of experiments.run. Each checkpoint under its `checkpoints/` is
restored into the run's policy and scored on the run's own held-out tasks (`held_out_tasks.jsonl`),
with the run's saved config, exactly as the run scored its stages. Keep more checkpoints with
`rl.checkpoint_every` / `rl.checkpoint_keep` when launching the run. Writes `checkpoint_curve.json`
and `eval/checkpoint-STEP/` into RUN_DIR and prints the curve after the run's SFT row.
"""

from __future__ import annotations

import argparse
import json
import os

from omegaconf import OmegaConf

from experiments.run import METRICS
from orchestra.data.booking import load_booking, load_tasks
from orchestra.data.paths import resolve_data_root
from orchestra.data.serialize import atomic_writer
from orchestra.env.config import environment_from_config
from orchestra.eval import eval_config, evaluate
from orchestra.model.chat import load_tokenizer
from orchestra.model.presets import build_model
from orchestra.reward import RewardConfig
from orchestra.rl.config import rl_config
from orchestra.rl.policy import SamplerPolicy
from orchestra.rl.trainer import Trainer


def checkpoint_curve(run_dir: str) -> list[dict]:
    """[{step, turn_accuracy, call_accuracy, success_rate}] for every kept checkpoint, oldest first."""
    for name in ("config.yaml", "policy", "held_out_tasks.jsonl", "checkpoints"):
        if not os.path.exists(os.path.join(run_dir, name)):
            raise FileNotFoundError(f"{run_dir} has no {name}: give a finished run directory of experiments.run")
    cfg = OmegaConf.load(os.path.join(run_dir, "config.yaml"))
    plain = OmegaConf.to_container(cfg, resolve=True)
    eco = load_booking(resolve_data_root(cfg.data.root))
    policy_dir = os.path.join(run_dir, "policy")
    model = build_model(cfg.model.preset, policy_dir, cfg.model.dtype)  # the run's shapes; weights come next
    tokenizer = load_tokenizer(policy_dir)
    env, tool_view = environment_from_config(plain["env"], eco,
                                             tokenize=lambda s: tokenizer.encode(s, add_special_tokens=False))
    rl = rl_config(plain["rl"], cfg.seed)
    rl_tasks = load_tasks(os.path.join(run_dir, f"{cfg.rl_tasks}_tasks.jsonl"))
    held_out = load_tasks(os.path.join(run_dir, "held_out_tasks.jsonl"))
    # The run's own checkpoint folder, read only: this trainer restores and never trains or saves.
    trainer = Trainer(model, tokenizer, env, tool_view, rl_tasks, RewardConfig.from_dict(plain["reward"]), rl.loss,
                      rl.rollout, rl.train, run_dir)
    steps = trainer.checkpointer.steps()
    if not steps:
        raise FileNotFoundError(f"{run_dir}/checkpoints holds no checkpoint")
    evaluation = eval_config({**plain["eval"], "progress": False})
    policy = SamplerPolicy(trainer.learner.policy, tokenizer, max_new_tokens=rl.rollout.turn_tokens)
    curve = []
    for step in steps:
        trainer.restore(step)
        policy.update(trainer.learner.policy)
        summary, _ = evaluate(policy, held_out, eco.tools, evaluation, exact_match=eco.exact_match,
                              out_dir=os.path.join(run_dir, "eval", f"checkpoint-{step}"))
        curve.append({"step": step, **{m: summary["overall"][m] for m in METRICS}})
        print(f"step {step}: " + ", ".join(f"{m} {curve[-1][m]:.3f}" for m in METRICS), flush=True)
    # renamed into place when whole: an interrupted run leaves no partial curve
    with atomic_writer(os.path.join(run_dir, "checkpoint_curve.json")) as f:
        json.dump(curve, f, indent=2)
    return curve


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a finished run directory of experiments.run")
    run_dir = ap.parse_args(argv).run_dir
    results = os.path.join(run_dir, "results.json")
    if os.path.exists(results):
        with open(results, encoding="utf-8") as f:
            sft = json.load(f)["evaluations"].get("sft")
        if sft:
            print("sft (RL start): " + ", ".join(f"{m} {sft[m]:.3f}" for m in METRICS))
    checkpoint_curve(run_dir)


if __name__ == "__main__":
    main()
