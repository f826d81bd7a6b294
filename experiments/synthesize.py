"""Synthesize training tasks: python -m experiments.synthesize [Hydra overrides].

    python -m experiments.synthesize synth.count=500 synth.seed=3
    python -m experiments.synthesize synth.source=mixed synth.complexity.steps=[3,5] synth.complexity.depth=2
    python -m experiments.synthesize synth.complexity.distractors=4 synth.complexity.calls_per_turn=2
    python -m experiments.synthesize data.root=/path/to/booking synth.output_dir=/tmp/synth

Writes `train.jsonl` and `held_out.jsonl` (the `tasks.jsonl` format), a TFDS array_record dataset
under `tfds/`, `report.json` (what was produced and why not more) and the resolved `config.yaml`
into `synth.output_dir`, and prints the distribution of what it produced.
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from orchestra.data.booking import load_booking
from orchestra.data.errors import DataError
from orchestra.data.paths import resolve_data_root
from orchestra.data.serialize import atomic_writer
from orchestra.synth import ConfigError, SynthConfig, SynthesisError, split_tasks, synthesize, write_outputs

RUN_KEYS = ("seed", "output_dir", "formats", "dataset_name")  # settings of the run, not of synthesis


def _table(title: str, counts: dict, limit: int | None = None) -> Table:
    table = Table(title=title)
    table.add_column("value")
    table.add_column("tasks", justify="right")
    items = list(counts.items())
    if limit is not None:
        items = sorted(items, key=lambda kv: -kv[1])[:limit]
    for k, v in items:
        table.add_row(str(k), str(v))
    return table


@hydra.main(config_path="../conf", config_name="synthesize", version_base=None)
def main(cfg: DictConfig) -> None:
    console = Console()
    settings = OmegaConf.to_container(cfg.synth, resolve=True)
    seed, out_dir, formats, name = (settings.pop(k) for k in RUN_KEYS)
    try:
        config = SynthConfig.from_dict(settings)
        eco = load_booking(resolve_data_root(cfg.data.root))
        result = synthesize(eco, config, seed, progress=True)
        split = split_tasks(result.tasks, config.split, seed)
        out_dir = to_absolute_path(out_dir)
        written = write_outputs(result, split, out_dir, tuple(formats), name)
    except (ConfigError, SynthesisError, DataError) as e:
        console.print(f"[bold red]error[/] {e}")
        sys.exit(2)
    with atomic_writer(os.path.join(out_dir, "config.yaml")) as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))

    rep = result.report
    t = rep["templates"]
    console.print(f"[bold]templates[/] {t['total']}: {t['usable']} sampled, "
                  f"{len(t['skipped_no_cache_entries'])} skipped (a function without cache entries), "
                  f"{len(t['excluded_by_complexity'])} excluded by complexity, "
                  f"{len(t['no_valid_chain'])} without a valid chain in the cache")
    console.print(f"[bold]produced[/] {rep['produced']} of {rep['requested']} tasks "
                  f"({rep['distinct_workflows']} workflows) in {rep['seconds']['total']} s; "
                  f"{rep['attempts']} chain attempts, {rep['dead_ends']} dead ends, {rep['duplicates']} duplicates, "
                  f"{rep['failed_replay']} failed replay, {rep['dropped_leak']} dropped for a leaking query")
    for key, title in (("by_length", "steps"), ("by_depth", "dependency depth"),
                       ("by_distractors", "distractors"), ("by_turns", "turns"), ("by_source", "source")):
        console.print(_table(title, rep[key]))
    console.print(_table("workflows (top 15)", rep["by_workflow"], limit=15))
    s = split.report
    console.print(f"[bold]split[/] by {s['by']}: {s['train']} train, {s['held_out']} held out"
                  + (f", {s['dropped']} dropped (they share a value with a held-out task)" if "dropped" in s else ""))
    for kind, path in written.items():
        console.print(f"[bold]{kind}[/] {path}")


if __name__ == "__main__":
    main()
