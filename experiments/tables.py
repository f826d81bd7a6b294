"""The paper's tables from a sweep: python -m experiments.tables [RUN_DIR ...] [--out DIR]

Reads every run directory below the given folders (default: the newest folder under multirun/) that
holds a results.json written by experiments.run, and writes into --out (default: the first folder):
- tables.md / tables.tex: the main table (held-out metrics before training, after SFT, after RL, for
  the graduated reward) and the ablation table (after RL, one row per reward variant), each cell the
  mean and standard deviation over seeds;
- learning_curves.png: RL reward per step, mean over seeds with the spread shaded, per reward variant;
and, where the runs kept their evaluated episodes (eval/{sft,rl}/samples.jsonl), a paired comparison of
RL with its SFT start (the base in a run without SFT) on the same tasks: gold steps gained and lost per
seed, and an exact sign test over the tasks that changed, so that a gain can be told from the noise of a
32-task evaluation; and, where the runs also kept held_out_tasks.jsonl and config.yaml, the room RL had:
the evaluated gold calls at RL's start split into right already, passing a value the response view hid
(`orchestra.rl.episodes.hidden_value_steps`), calling a function the run gets right at no stage, and open;
and, from the same episodes, how many calls of a gold function leave out one of its parameters, before and
after RL.
A run directory that also holds bfcl/scores.json (experiments.bfcl) adds its BFCL columns.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
from collections import defaultdict

import numpy as np
from omegaconf import OmegaConf

from experiments.plots import read_metrics
from orchestra.data.booking import load_tasks
from orchestra.env.config import env_config
from orchestra.eval.report import SAMPLES_FILE
from orchestra.reward.reference import given_arguments
from orchestra.rl.episodes import hidden_value_steps

METRICS = ("turn_accuracy", "call_accuracy", "success_rate")
STAGES = ("base", "sft", "rl")


def find_runs(roots: list[str]) -> list[dict]:
    runs = []
    for root in roots:
        for path in sorted(glob.glob(os.path.join(root, "**", "results.json"), recursive=True)):
            with open(path, encoding="utf-8") as f:
                run = json.load(f)
            run["dir"] = os.path.dirname(path)
            bfcl = os.path.join(run["dir"], "bfcl", "scores.json")
            if os.path.exists(bfcl):
                with open(bfcl, encoding="utf-8") as f:
                    run["bfcl"] = json.load(f)
            runs.append(run)
    return runs


def mean_std(values: list[float]) -> tuple[float, float, int]:
    a = np.asarray(values, float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, len(a)


def cell(values: list[float], latex: bool = False) -> str:
    if not values:
        return "–"
    m, s, n = mean_std(values)
    pm = r"$\pm$" if latex else "±"
    return f"{100 * m:.1f} {pm} {100 * s:.1f}" if n > 1 else f"{100 * m:.1f}"


def render(header: list[str], rows: list[list[str]], latex: bool) -> str:
    if latex:
        lines = [r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
                 " & ".join(header) + r" \\", r"\midrule"]
        lines += [" & ".join(r) + r" \\" for r in rows]
        return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def read_samples(run_dir: str, stage: str) -> dict[str, dict] | None:
    """The evaluated episodes of one stage by task id, or None if the run kept none."""
    path = os.path.join(run_dir, "eval", stage, SAMPLES_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return {s["task_id"]: s for s in map(json.loads, f)}


def completed_steps(run_dir: str, stage: str) -> dict[str, int] | None:
    """Gold steps completed per evaluated task at one stage, or None if the run kept no episodes."""
    samples = read_samples(run_dir, stage)
    return None if samples is None else {t: s["completed_steps"] for t, s in samples.items()}


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven if either way were as likely."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_change(before: dict[str, int], after: dict[str, int]) -> dict:
    """Gold steps completed per task at two stages, compared on the tasks both evaluated."""
    diffs = [after[t] - before[t] for t in before if t in after]
    better, worse = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return {"gained": sum(d for d in diffs if d > 0), "lost": -sum(d for d in diffs if d < 0),
            "better": better, "worse": worse, "same": len(diffs) - better - worse,
            "sign_test_p": sign_test(better, worse)}


def paired(runs: list[dict], latex: bool) -> list[str]:
    """RL against its start (SFT, or the base in a run without SFT), task by task: gained minus lost
    is the change in completed gold steps."""
    per_seed = []
    for run in sorted(runs, key=lambda r: r["seed"]):
        start = run.get("paired", {}).get("against", "sft")  # results.json names it; older runs had SFT
        before, rl = completed_steps(run["dir"], start), completed_steps(run["dir"], "rl")
        if before is not None and rl is not None:
            per_seed.append((run, before, rl))
    if not per_seed:
        return []
    # pooled over runs, each (run, task) pair counting as a task
    pooled_before = {(run["dir"], t): v for run, before, _ in per_seed for t, v in before.items()}
    pooled_rl = {(run["dir"], t): v for run, _, rl in per_seed for t, v in rl.items()}
    rows = []
    labelled = [(str(run["seed"]), before, rl) for run, before, rl in per_seed]
    for label, before, rl in labelled + [("all", pooled_before, pooled_rl)]:
        c = paired_change(before, rl)
        rows.append([label, str(c["gained"]), str(c["lost"]), f"{c['better']} / {c['worse']} / {c['same']}",
                     f"{c['sign_test_p']:.2f}"])
    header = ["seed", "gold steps gained", "lost", "tasks better / worse / same", "sign test p"]
    return ["Paired: RL against its start (SFT, or the base without SFT) on the same evaluated tasks", "",
            render(header, rows, latex), ""]


def room_counts(run: dict) -> dict[str, int] | None:
    """The evaluated gold calls at RL's start (SFT, or the base without SFT), each counted once, first
    that applies: right; passing a value the run's response view hid, which no policy can write;
    calling a function the run gets right at no stage; open (what RL could still gain). None when the
    run kept no episodes, tasks or config."""
    stages = {s: read_samples(run["dir"], s) for s in STAGES if s in run["evaluations"]}
    tasks_path, config_path = (os.path.join(run["dir"], n) for n in ("held_out_tasks.jsonl", "config.yaml"))
    start = stages.get(run.get("paired", {}).get("against", "sft"))
    if start is None or None in stages.values() or not all(map(os.path.exists, (tasks_path, config_path))):
        return None
    view = env_config(OmegaConf.to_container(OmegaConf.load(config_path).env, resolve=True))[1]
    hidden = {t.task_id: hidden_value_steps(t, view) for t in load_tasks(tasks_path)}
    unknown = sorted(set(start) - set(hidden))
    if unknown:
        raise ValueError(f"{run['dir']}: evaluated tasks {unknown[:3]} are not in {tasks_path}")
    ever_right = {g["function"] for samples in stages.values() for s in samples.values() for g in s["gold"]
                  if g["matched_turn"] is not None}
    counts = dict.fromkeys(("right", "hidden_value", "never_right_function", "open"), 0)
    for task_id, sample in start.items():
        for g in sample["gold"]:
            if g["matched_turn"] is not None:
                counts["right"] += 1
            elif hidden[task_id][g["index"]]:
                counts["hidden_value"] += 1
            elif g["function"] not in ever_right:
                counts["never_right_function"] += 1
            else:
                counts["open"] += 1
    return counts


def room(runs: list[dict], latex: bool) -> list[str]:
    rows = []
    for run in sorted(runs, key=lambda r: r["seed"]):
        c = room_counts(run)
        if c is not None:
            rows.append([str(run["seed"]), str(sum(c.values()))] + [str(v) for v in c.values()])
    if not rows:
        return []
    header = ["seed", "gold calls", "right", "value hidden by the view", "function right at no stage", "open"]
    return ["Room: the evaluated gold calls at RL's start, each counted under the first that applies", "",
            render(header, rows, latex), ""]


def dropped_parameters(samples: dict[str, dict]) -> tuple[int, int]:
    """(calls that leave out a parameter, calls) over the parsed calls of a task's gold functions, each
    against the first gold call of its name (as paper-mode matching pairs them), in every turn."""
    dropped = calls = 0
    for sample in samples.values():
        if "turns" not in sample:  # an episode kept without its turns
            continue
        gold = {}
        for g in sample["gold"]:
            gold.setdefault(g["function"], given_arguments(g["arguments"]).keys())
        for turn in sample["turns"]:
            for call in turn["calls"]:
                if call["function"] in gold and call["arguments"] is not None:
                    calls += 1
                    dropped += not gold[call["function"]] <= given_arguments(call["arguments"]).keys()
    return dropped, calls


def dropped(runs: list[dict], latex: bool) -> list[str]:
    """Calls that leave a parameter out, at RL's start and after RL: partial credit for a call with the
    right name (`reward.w_name`, `reward.w_params`) can pay a policy to drop the values it copies badly."""
    rows = []
    for run in sorted(runs, key=lambda r: r["seed"]):
        start, rl = (read_samples(run["dir"], s) for s in (run.get("paired", {}).get("against", "sft"), "rl"))
        counts = [dropped_parameters(s) for s in (start, rl) if s is not None]
        if len(counts) == 2 and counts[0][1] + counts[1][1] > 0:
            rows.append([str(run["seed"])] + [f"{d} / {n}" for d, n in counts])
    if not rows:
        return []
    return ["Dropped parameters: calls of a gold function that leave out a parameter its first gold call passes", "",
            render(["seed", "at RL's start", "after RL"], rows, latex), ""]


def tables(runs: list[dict], latex: bool) -> str:
    by_reward: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        by_reward[run.get("reward", "?")].append(run)
    main_runs = by_reward.get("graduated") or next(iter(by_reward.values()))
    bfcl_keys = sorted({k for r in runs for k in r.get("bfcl", {})})
    header = ["stage"] + [m.replace("_", " ") for m in METRICS]
    rows = [[stage] + [cell([r["evaluations"][stage][m] for r in main_runs if stage in r["evaluations"]], latex)
                       for m in METRICS] for stage in STAGES]
    seeds = sorted({r["seed"] for r in main_runs})
    out = [f"Main table: held-out metrics (%), reward={main_runs[0].get('reward')}, seeds {seeds}", "",
           render(header, rows, latex), ""]
    header = ["reward"] + [f"RL {m.replace('_', ' ')}" for m in METRICS] + [f"BFCL {k}" for k in bfcl_keys]
    rows = []
    for reward, group in sorted(by_reward.items()):
        rows.append([reward] + [cell([r["evaluations"]["rl"][m] for r in group if "rl" in r["evaluations"]], latex)
                                for m in METRICS]
                    + [cell([r["bfcl"][k] for r in group if k in r.get("bfcl", {})], latex) for k in bfcl_keys])
    out += ["Ablation: held-out metrics after RL (%), mean ± std over seeds", "", render(header, rows, latex), ""]
    return "\n".join(out + paired(main_runs, latex) + room(main_runs, latex) + dropped(main_runs, latex))


def plot_curves(runs: list[dict], out_png: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by_reward: dict[str, list[list[float]]] = defaultdict(list)
    for run in runs:
        path = os.path.join(run["dir"], "metrics.jsonl")
        if os.path.exists(path):
            curve = [m["reward"] for m in read_metrics(path) if m.get("phase") == "rl"]
            if curve:
                by_reward[run.get("reward", "?")].append(curve)
    fig, ax = plt.subplots(figsize=(6, 4))
    for reward, curves in sorted(by_reward.items()):
        n = min(len(c) for c in curves)
        a = np.asarray([c[:n] for c in curves])
        steps = np.arange(1, n + 1)
        ax.plot(steps, a.mean(0), label=f"{reward} ({len(curves)} seeds)")
        ax.fill_between(steps, a.min(0), a.max(0), alpha=0.2)
    ax.set(xlabel="RL step", ylabel="training reward (own definition)", title="Learning curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="*", help="folders holding run directories (default: newest under multirun/)")
    ap.add_argument("--out", help="where to write the tables and plot (default: the first folder)")
    args = ap.parse_args(argv)
    roots = args.roots or sorted(glob.glob(os.path.join("multirun", "*", "*")))[-1:]
    if not roots:
        raise SystemExit("no run folders given and none under multirun/; run a sweep first "
                         "(python -m experiments.run -m reward=graduated,atomic_only,orchestration_only,binary seed=0,1,2)")
    runs = find_runs(roots)
    if not runs:
        raise SystemExit(f"no results.json under {roots}: those runs did not finish")
    out = args.out or roots[0]
    os.makedirs(out, exist_ok=True)
    for name, latex in (("tables.md", False), ("tables.tex", True)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(tables(runs, latex))
    plot_curves(runs, os.path.join(out, "learning_curves.png"))
    print(tables(runs, latex=False))
    print(f"wrote tables.md, tables.tex and learning_curves.png to {out} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
