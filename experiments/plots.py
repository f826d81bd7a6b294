"""Plots a person would rather look at than read: learning curves of runs."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_learning_curve(metrics: list[dict], evaluations: dict[str, dict], out_png: str, title: str = "") -> None:
    """Left: SFT loss. Right: RL reward and its parts per step, with held-out turn accuracy of each
    evaluated stage drawn as labelled horizontal lines."""
    sft = [m for m in metrics if m.get("phase") == "sft"]
    rl = [m for m in metrics if m.get("phase") == "rl"]
    fig, (ax_sft, ax_rl) = plt.subplots(1, 2, figsize=(11, 4))
    if sft:
        ax_sft.plot([m["step"] for m in sft], [m["loss"] for m in sft], color="tab:gray")
    ax_sft.set(title="SFT warm start", xlabel="step", ylabel="loss (policy tokens)")
    for key, label in (("reward", "reward"), ("reward_atomic", "atomic"), ("reward_orch", "orchestration")):
        if rl:
            ax_rl.plot([m["step"] for m in rl], [m[key] for m in rl], label=label)
    for (stage, summary), style in zip(evaluations.items(), (":", "--", "-.")):
        ax_rl.axhline(summary["turn_accuracy"], linestyle=style, color="black", linewidth=1,
                      label=f"held-out turn acc., {stage}")
    ax_rl.set(title="GRPO", xlabel="RL step", ylim=(0, 1))
    ax_rl.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
