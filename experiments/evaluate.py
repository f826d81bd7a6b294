"""Score any policy under the ComplexFuncBench protocol: python -m experiments.evaluate model.path=DIR

`model.path` is an HF checkpoint directory or a run directory of experiments.run (whose trained
policy is saved in `policy/`). `tasks` is a file in the Booking task format or ComplexFuncBench's
official jsonl (told apart by their records); by default the data root's tasks. Writes
`summary.json` and `samples.jsonl` into the run directory and prints the table.
"""

from __future__ import annotations

import json
import os

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from orchestra.data.booking import Ecosystem, load_booking, load_tasks
from orchestra.data.complexfuncbench import load_complexfuncbench
from orchestra.data.errors import DataError
from orchestra.data.paths import resolve_data_root
from orchestra.eval import eval_config, evaluate, summary_table
from orchestra.model.chat import load_tokenizer
from orchestra.model.presets import build_model
from orchestra.rl.policy import SamplerPolicy


def policy_dir(path: str) -> str:
    """The checkpoint directory itself, or a run directory's `policy/`."""
    for candidate in (path, os.path.join(path, "policy")):
        if os.path.isfile(os.path.join(candidate, "config.json")):
            return candidate
    raise FileNotFoundError(f"model.path={path!r} holds no config.json, neither itself nor in policy/: "
                            "give an HF checkpoint directory or a finished run directory of experiments.run")


def task_source(tasks: str | None, eco: Ecosystem) -> Ecosystem:
    if tasks is None:
        return eco
    with open(tasks, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    try:
        is_cfb = "conversations" in json.loads(first)
    except json.JSONDecodeError:
        raise DataError("not valid JSON", path=tasks, line=1) from None
    if is_cfb:
        return load_complexfuncbench(tasks)
    return Ecosystem(eco.root, eco.tools, load_tasks(tasks, eco.tools), eco.templates, eco.cache_entries,
                     eco.exact_match)


@hydra.main(config_path="../conf", config_name="evaluate", version_base=None)
def main(cfg: DictConfig) -> None:
    console = Console()
    run_dir = HydraConfig.get().runtime.output_dir
    if not cfg.model.path:
        raise ValueError("model.path is required: an HF checkpoint directory or a run directory")
    path = policy_dir(hydra.utils.to_absolute_path(cfg.model.path))
    # With a preset the checkpoint's shape is checked against it; model.preset=null loads any shape.
    model = build_model(cfg.model.preset, path, cfg.model.dtype)
    tokenizer = load_tokenizer(path)
    eco = load_booking(resolve_data_root(cfg.data.root))
    source = task_source(hydra.utils.to_absolute_path(cfg.tasks) if cfg.tasks else None, eco)
    tasks = source.tasks[: cfg.limit] if cfg.limit else source.tasks
    policy = SamplerPolicy(model, tokenizer, max_new_tokens=cfg.max_new_tokens)
    summary, _ = evaluate(policy, tasks, source.tools, eval_config(OmegaConf.to_container(cfg.eval, resolve=True)),
                          exact_match=source.exact_match or eco.exact_match, cache_entries=source.cache_entries,
                          out_dir=run_dir)
    console.print(summary_table(summary))
    console.print(f"{len(tasks)} tasks; results in {run_dir}")


if __name__ == "__main__":
    main()
