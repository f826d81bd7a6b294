"""The main job: python -m experiments.run [Hydra overrides].

What runs today: load the data, build the cache-backed environment, and replay recorded tasks
through the jitted environment (gold calls get the recorded responses; a malformed and an invalid
call get their errors). The RL trainer plugs in here as it lands.
"""

from __future__ import annotations

import json
import os
import time

import hydra
import jax
import jax.numpy as jnp
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root
from orchestra.env.codec import format_tool_call
from orchestra.env.config import environment_from_config


def replay_recorded(env, tasks, seed: int) -> list[dict]:
    """Replay each task's gold calls, one per turn, through the jitted environment."""
    reset, step = jax.jit(env.env.reset), jax.jit(env.env.step)
    rows = []
    for t_i, task in enumerate(tasks):
        state, _ = reset(jax.random.key(seed), env.params, jnp.array([t_i]))
        for s in task.steps:
            calls, _ = env.encoder.encode_text(format_tool_call(s.call))
            state, ts = step(state, calls, env.params)
            entry = int(ts.entry[0])
            recorded = env.cache.lookup(s.call.function, s.call.arguments)
            rows.append(dict(task=task.task_id, step=s.index, function=s.call.function, entry=entry,
                             success=bool(ts.success[0]), matches_recording=entry == recorded,
                             observation_tokens=int(ts.obs_lengths[0])))
    return rows


@hydra.main(config_path="../conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    console = Console()
    run_dir = HydraConfig.get().runtime.output_dir
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))

    root = resolve_data_root(cfg.data.root)
    eco = load_booking(root)
    t0 = time.perf_counter()
    env, _ = environment_from_config(OmegaConf.to_container(cfg.env, resolve=True), eco)
    jax.block_until_ready(env.params)
    build_s = time.perf_counter() - t0
    console.print(f"[bold]data[/] {root}: {len(eco.tools)} tools, {len(eco.tasks)} tasks, "
                  f"{len(eco.templates)} templates, {len(eco.cache_entries)} recorded calls")
    table_bytes = env.params.cache.nbytes + env.params.obs_tokens.nbytes + env.params.obs_lengths.nbytes
    console.print(f"[bold]cache[/] {len(env.cache)} distinct keys, {len(env.errors)} error messages, "
                  f"built in {build_s:.2f}s, device tables {table_bytes / 1e6:.2f} MB "
                  f"(observations {env.params.obs_tokens.shape})")

    rows = replay_recorded(env, eco.tasks[: cfg.replay_tasks], cfg.seed)
    table = Table(title=f"replay of {min(cfg.replay_tasks, len(eco.tasks))} recorded tasks")
    for col in ("task", "step", "function", "entry", "success", "matches recording", "obs tokens"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["task"], str(r["step"]), r["function"], str(r["entry"]), str(r["success"]),
                      str(r["matches_recording"]), str(r["observation_tokens"]))
    console.print(table)
    ok = sum(r["success"] and r["matches_recording"] for r in rows)
    console.print(f"{ok}/{len(rows)} gold calls answered with their recorded response")

    bad = ('<tool_call>{"name": "Search_Hotels", "arguments": {"dest_id": "-2092174", '
           '"arrival_date": "2024-11-20", "departure_date": "2024-11-18", "search_type": "city"}}</tool_call>'
           '<tool_call>{"name": oops}</tool_call>')
    calls, _ = env.encoder.encode_text(bad)
    state, _ = env.env.reset(jax.random.key(cfg.seed), env.params, jnp.array([0]))
    _, ts = env.env.step(state, calls, env.params)
    for i in range(2):
        text = bytes(np.asarray(ts.obs_tokens[i, : ts.obs_lengths[i]], np.uint8)).decode()
        console.print(f"[bold]invalid call {i}[/] -> {text.splitlines()[1]}")
    with open(os.path.join(run_dir, "replay.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    console.print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
