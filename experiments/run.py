"""The main job: python -m experiments.run [Hydra overrides].

1. synthesize tasks from the real cache and split them (held-out tasks use argument values that
   never appear in training; of those, `eval_tasks` are evaluated and the ones sharing no value with
   them are fresh tasks; RL trains on the train, fresh or redrawn tasks: `rl_tasks`);
2. load the policy (`model.path`, an HF checkpoint directory; with `model.path=null` a randomly
   initialised `model.preset` and a tokenizer built from the data);
3. evaluate it on held-out tasks (ComplexFuncBench protocol), warm-start it with SFT on gold
   episodes, evaluate, train it with GRPO (or PPO) against the cache-backed environment and the
   graduated reward, evaluate again;
4. write the table (Markdown + JSON), a learning-curve PNG, metrics.jsonl and checkpoints into the
   run directory. A run directory that already holds RL checkpoints resumes from the latest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import hydra
import jax
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from experiments.plots import plot_learning_curve, read_metrics
from experiments.synthesize import RUN_KEYS
from experiments.tables import completed_steps, paired_change, render
from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root
from orchestra.data.serialize import write_tasks_jsonl
from orchestra.data.types import Task
from orchestra.env.config import environment_from_config
from orchestra.env.views import ResponseView
from orchestra.eval import eval_config, evaluate
from orchestra.eval.metrics import copy_accuracy
from orchestra.model.chat import CHAT_TEMPLATE, load_tokenizer
from orchestra.model.loader import save_model
from orchestra.model.presets import build_model
from orchestra.reward import RewardConfig
from orchestra.rl.config import rl_config
from orchestra.rl.episodes import hidden_value_steps
from orchestra.rl.metrics_logger import MetricsLogger
from orchestra.rl.policy import SamplerPolicy
from orchestra.rl.redraw import redrawn_tasks
from orchestra.rl.sft import run_sft
from orchestra.rl.trainer import Trainer
from orchestra.synth import (SynthConfig, read_seen_values, split_evaluated, split_tasks, synthesize, task_values,
                             write_seen_values)

RL_TASKS = ("train", "fresh", "redrawn", "redrawn_all")
SFT_TASKS = ("train", "rl")
METRICS = ("turn_accuracy", "call_accuracy", "success_rate")
# gold argument values written exactly, by where they come from: the request, an earlier response
COPY_METRICS = ("copy_query", "copy_response")


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def load_policy(model_cfg, eco, vocab_size: int, seed: int, console: Console):
    """(model, tokenizer, description, seen values) from `model.path`, or a random preset with a
    built tokenizer. Seen values: the argument values the checkpoint was trained on, if it says."""
    if model_cfg.path:
        path = hydra.utils.to_absolute_path(model_cfg.path)
        model = build_model(model_cfg.preset, path, model_cfg.dtype)
        return model, load_tokenizer(path), f"{model_cfg.preset} from {path}", read_seen_values(path)
    from experiments.build_tokenizer import corpus_from_ecosystem
    from orchestra.model.tokenizer import build_tokenizer
    console.print(f"[yellow]model.path is null: training a randomly initialised '{model_cfg.preset}' policy "
                  "(set model.path to an HF checkpoint directory to start from trained weights)")
    tokenizer = build_tokenizer(corpus_from_ecosystem(eco), vocab_size, CHAT_TEMPLATE)
    model = build_model(model_cfg.preset, None, model_cfg.dtype, seed=seed)
    if model.config.vocab_size < len(tokenizer):
        raise ValueError(f"model.preset {model_cfg.preset!r} has {model.config.vocab_size} embeddings but the "
                         f"tokenizer has {len(tokenizer)} tokens; lower tokenizer_vocab")
    return model, tokenizer, f"{model_cfg.preset}, random init, tokenizer of {len(tokenizer)} tokens", set()


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), console=console)


def results_table(evaluations: dict[str, dict]) -> str:
    columns = METRICS + COPY_METRICS
    rows = [[stage] + [_fmt(summary.get(m)) for m in columns] for stage, summary in evaluations.items()]
    return render(["stage", *columns], rows, latex=False)


# the usual categories first; any other verdict follows in alphabetical order
FIRST_ERRORS = ("none", "parse_error", "format_error", "value_error", "wrong_function", "stopped")


def called_functions(tasks: list[Task]) -> set[str]:
    return {f for t in tasks for f in t.pattern}


def evaluated_reach(evaluated: list[Task], trained: dict[str, list[Task]], view: ResponseView) -> dict:
    """How many evaluated gold steps call a function no task of a training stage calls, and how many
    pass a value an earlier response held but the view hid (`hidden_value_steps`): steps the policy
    cannot learn from training or cannot write at all."""
    steps = [(t, s) for t in evaluated for s in t.steps]
    out = {"steps": len(steps)}
    for stage, tasks in trained.items():
        called = called_functions(tasks)
        out[f"function_not_in_{stage}"] = sum(s.call.function not in called for _, s in steps)
    out["value_hidden_by_view"] = sum(sum(hidden_value_steps(t, view)) for t in evaluated)
    return out


def first_errors_table(evaluations: dict[str, dict]) -> str:
    """Episodes per stage by how they first went wrong (`orchestra.eval.metrics.first_error`)."""
    seen = set().union(*(e["first_errors"] for e in evaluations.values()))
    columns = [c for c in FIRST_ERRORS if c in seen] + sorted(seen - set(FIRST_ERRORS))
    rows = [[stage] + [str(summary["first_errors"].get(c, 0)) for c in columns]
            for stage, summary in evaluations.items()]
    return render(["stage", *columns], rows, latex=False)


def calls_by_function_table(evaluations: dict[str, dict], trained: dict[str, list[Task]]) -> str:
    """Matched gold calls per evaluated function and stage, most called first, with whether any task
    of each training stage calls the function."""
    gold = next(iter(evaluations.values()))["by_function"]
    functions = sorted(gold, key=lambda f: (-gold[f]["gold_calls"], f))
    called = {stage: called_functions(tasks) for stage, tasks in trained.items()}
    rows = [[f, str(gold[f]["gold_calls"])] + ["yes" if f in called[stage] else "no" for stage in trained]
            + [str(e["by_function"][f]["matched_calls"]) for e in evaluations.values()] for f in functions]
    return render(["function", "gold calls", *(f"in {stage} tasks" for stage in trained),
                   *(f"{stage} matched" for stage in evaluations)], rows, latex=False)


@hydra.main(config_path="../conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    console = Console()
    if cfg.rl_tasks not in RL_TASKS:
        raise ValueError(f"rl_tasks must be one of {RL_TASKS}, got {cfg.rl_tasks!r}")
    if cfg.sft_tasks not in SFT_TASKS:
        raise ValueError(f"sft_tasks must be one of {SFT_TASKS}, got {cfg.sft_tasks!r}")
    if not isinstance(cfg.rl_redraws, int) or isinstance(cfg.rl_redraws, bool) or cfg.rl_redraws < 1:
        raise ValueError(f"rl_redraws must be a positive integer, got {cfg.rl_redraws!r}")
    run_dir = HydraConfig.get().runtime.output_dir
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))
    plain = OmegaConf.to_container(cfg, resolve=True)
    rl = rl_config(plain["rl"], cfg.seed)
    rl.distributed.initialize()
    reward = RewardConfig.from_dict(plain["reward"])
    evaluation = eval_config({**plain["eval"], "progress": False})
    t_start = time.perf_counter()

    eco = load_booking(resolve_data_root(cfg.data.root))
    model, tokenizer, description, seen_values = load_policy(cfg.model, eco, cfg.tokenizer_vocab, cfg.seed, console)
    console.print(f"[bold]policy[/] {description}; {model.config.num_parameters() / 1e6:.1f}M parameters; "
                  f"{jax.device_count()} device(s): {jax.devices()[0].platform}")

    # The synth group's run settings (its own seed, output folder, formats) belong to experiments.synthesize.
    synth_cfg = SynthConfig.from_dict({k: v for k, v in plain["synth"].items() if k not in RUN_KEYS})
    synth = synthesize(eco, synth_cfg, seed=cfg.seed)
    # Held-out tasks use no value seen in training, the policy's pretraining included.
    split = split_tasks(synth.tasks, synth_cfg.split, seed=cfg.seed, seen_values=seen_values)
    # The evaluated tasks and the fresh ones (held out too, sharing no value with those evaluated).
    evaluated = split_evaluated(split.held_out, cfg.eval_tasks, synth_cfg.split, seed=cfg.seed)
    held_out, fresh = evaluated.held_out, evaluated.train
    write_tasks_jsonl(split.train, os.path.join(run_dir, "train_tasks.jsonl"))
    write_tasks_jsonl(held_out, os.path.join(run_dir, "held_out_tasks.jsonl"))
    write_tasks_jsonl(fresh, os.path.join(run_dir, "fresh_tasks.jsonl"))
    console.print(f"[bold]tasks[/] {len(synth.tasks)} synthesized -> {len(split.train)} train, "
                  f"{len(split.held_out)} held out by {split.report.get('by', 'values')} "
                  f"({len(held_out)} evaluated, {len(fresh)} fresh"
                  + (f"; {split.report['eligible_for_held_out']} tasks use no value the checkpoint was trained on"
                     if seen_values else "") + ")")
    if cfg.rl_tasks in ("redrawn", "redrawn_all"):
        # The SFT tasks (or every synthesized task but the evaluated ones, whose workflows the value split
        # keeps out of train) with new values, never an evaluated one, answered from new cache entries.
        evaluated_ids = {t.task_id for t in held_out}
        source = (split.train if cfg.rl_tasks == "redrawn"
                  else [t for t in synth.tasks if t.task_id not in evaluated_ids])
        evaluated_values = set().union(*map(task_values, held_out))
        rl_tasks, entries = redrawn_tasks(source, eco.tools, cfg.rl_redraws, evaluated_values, cfg.seed,
                                          known=eco.cache_entries)
        eco = dataclasses.replace(eco, cache_entries=eco.cache_entries + entries)
        write_tasks_jsonl(rl_tasks, os.path.join(run_dir, "redrawn_tasks.jsonl"))
        which = "train" if cfg.rl_tasks == "redrawn" else "synthesized, not evaluated,"
        console.print(f"[bold]redrawn[/] {len(rl_tasks)} RL tasks: the {which} tasks with new values")
    else:
        rl_tasks = {"train": split.train, "fresh": fresh}[cfg.rl_tasks]
    if not split.train or not held_out or not rl_tasks:
        raise ValueError(f"synthesis left no train, held-out or {cfg.rl_tasks} tasks; "
                         "raise synth.count or change synth.split")
    sft_tasks = split.train if cfg.sft_tasks == "train" else rl_tasks
    env, tool_view = environment_from_config(plain["env"], eco,
                                             tokenize=lambda s: tokenizer.encode(s, add_special_tokens=False))
    reach = evaluated_reach(held_out, {"sft": sft_tasks, "rl": rl_tasks}, env.view)
    console.print(f"[bold]evaluated[/] {reach['steps']} gold steps: {reach['function_not_in_sft']} call a function "
                  f"no SFT task calls ({reach['function_not_in_rl']}: no RL task), "
                  f"{reach['value_hidden_by_view']} pass a value the response view hid")

    logger = MetricsLogger(run_dir, cfg.logger.kind, cfg.logger.project, plain)
    policy = SamplerPolicy(model, tokenizer, max_new_tokens=rl.rollout.turn_tokens)
    evaluations: dict[str, dict] = {}

    def run_eval(stage: str):
        policy.update(model)
        summary, samples = evaluate(policy, held_out, eco.tools, evaluation, exact_match=eco.exact_match,
                                    out_dir=os.path.join(run_dir, "eval", stage))
        copy = copy_accuracy(held_out, samples)
        evaluations[stage] = {**summary["overall"], "copy_query": copy["query"]["exact"],
                              "copy_response": copy["response"]["exact"], "copy": copy,
                              "first_errors": summary["first_errors"], "by_function": summary["by_function"]}
        logger.log({f"eval_{stage}_{m}": evaluations[stage][m] for m in METRICS + COPY_METRICS}, step=0)
        console.print(f"[bold]held-out ({stage})[/] " + ", ".join(
            f"{m} {_fmt(evaluations[stage][m])}" for m in METRICS + COPY_METRICS))

    trainer = Trainer(model, tokenizer, env, tool_view, rl_tasks, reward, rl.loss, rl.rollout, rl.train,
                      run_dir, logger)
    resumed = trainer.restore()
    if resumed:
        console.print(f"[bold]resumed[/] from the RL checkpoint at step {trainer.step}")
    else:
        run_eval("base")
        if rl.sft.steps:
            with progress_bar(console) as bar:
                task = bar.add_task("SFT warm start", total=rl.sft.steps, info="")

                def on_step(step, loss, tokens):
                    logger.log({"phase": "sft", "loss": loss, "tokens": tokens}, step)
                    bar.update(task, advance=1, info=f"loss {loss:.3f}")
                sft = run_sft(model, tokenizer, sft_tasks, eco.tools, env.view, tool_view, rl.sft.steps,
                              rl.sft.batch_size, rl.sft.lr, rl.sft.warmup_steps, rl.sft.max_len, cfg.seed, on_step,
                              rl.sft.micro_batch_size, mask_hidden=rl.sft.mask_hidden)
            console.print(f"SFT on {sft['episodes']} gold episodes ({sft['skipped_too_long']} too long, skipped; "
                          f"{sft['masked_turns']} turns that pass a value the view hid kept out of the loss)")
            trainer.reset_reference()
            run_eval("sft")

    with progress_bar(console) as bar:
        task = bar.add_task(f"RL ({rl.loss.algorithm})", total=rl.train.steps, completed=trainer.step, info="")
        while trainer.step < rl.train.steps:
            m = trainer.train_step()
            bar.update(task, completed=trainer.step,
                       info=f"reward {m['reward']:.3f} (atomic {m['reward_atomic']:.2f}, orch {m['reward_orch']:.2f})"
                            f" kl {m['kl']:.4f} ent {m['entropy']:.2f} {m['tokens_per_second']:.0f} tok/s")
    trainer.save(force=True)
    save_model(model, os.path.join(run_dir, "policy"), tokenizer)  # HF format: experiments.evaluate/serve load it
    # so a run started from this policy never holds out what it trained on (SFT: sft_tasks; RL: rl_tasks)
    write_seen_values(os.path.join(run_dir, "policy"), sft_tasks + rl_tasks, earlier=seen_values)
    run_eval("rl")
    # task by task from the episodes on disk, which a resumed run kept from before its interruption
    start = "sft" if rl.sft.steps else "base"
    paired = {"against": start, **paired_change(completed_steps(run_dir, start), completed_steps(run_dir, "rl"))}

    table = results_table(evaluations)
    with open(os.path.join(run_dir, "results.md"), "w") as f:
        f.write(f"Held-out turn accuracy ({len(held_out)} tasks, values never seen in training), seed {cfg.seed}\n\n")
        f.write(table + "\n\n")
        f.write(f"RL against its {start} start, task by task: better on {paired['better']} tasks, worse on "
                f"{paired['worse']}, the same on {paired['same']}; gold steps {paired['gained']} gained, "
                f"{paired['lost']} lost (exact sign test over the tasks that changed: "
                f"p = {paired['sign_test_p']:.2f})\n\n")
        f.write(f"Of the {reach['steps']} evaluated gold steps, {reach['function_not_in_sft']} call a function that no "
                f"SFT task calls ({reach['function_not_in_rl']}: no RL task), and {reach['value_hidden_by_view']} pass a "
                "value that an earlier response held but the response view hid (a string cut to "
                "env.response_view.max_string_chars, an item or text past its limits)\n\n")
        f.write("Held-out episodes by how they first went wrong: the verdict of the first call neither matched "
                "nor free; stopped: answered (or ran out of turns) with required calls left undone; none: "
                "nothing went wrong\n\n")
        f.write(first_errors_table(evaluations) + "\n\n")
        f.write("Evaluated gold calls by function: matched at each stage, and whether any SFT or RL task calls "
                "the function\n\n")
        f.write(calls_by_function_table(evaluations, {"sft": sft_tasks, "rl": rl_tasks}) + "\n")
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        choices = HydraConfig.get().runtime.choices
        json.dump({"seed": cfg.seed, "reward": choices["reward"], "rl": choices["rl"], "model": choices["model"],
                   "evaluations": evaluations, "paired": paired, "evaluated_reach": reach,
                   "minutes": (time.perf_counter() - t_start) / 60, "policy": description}, f, indent=2)
    plot_learning_curve(read_metrics(logger.path), evaluations, os.path.join(run_dir, "learning_curve.png"),
                        title=f"{rl.loss.algorithm}, reward={HydraConfig.get().runtime.choices['reward']}, seed {cfg.seed}")
    logger.close()
    out = Table(title="held-out evaluation")
    out.add_column("stage")
    for m in METRICS + COPY_METRICS:
        out.add_column(m)
    for stage, summary in evaluations.items():
        out.add_row(stage, *(_fmt(summary.get(m)) for m in METRICS + COPY_METRICS))
    console.print(out)
    console.print(f"{(time.perf_counter() - t_start) / 60:.1f} min; run directory: {run_dir}")


if __name__ == "__main__":
    main()
