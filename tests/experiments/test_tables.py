import json
import os

from experiments import tables


def write_run(root, reward, seed, rl_turn, curve):
    d = os.path.join(root, f"reward={reward},seed={seed}")
    os.makedirs(d)
    evals = {stage: {"turn_accuracy": v, "call_accuracy": v / 2, "success_rate": 0.0}
             for stage, v in (("base", 0.1), ("sft", 0.3), ("rl", rl_turn))}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump({"seed": seed, "reward": reward, "evaluations": evals}, f)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for step, r in enumerate(curve, 1):
            f.write(json.dumps({"step": step, "phase": "rl", "reward": r}) + "\n")


def test_tables_give_mean_and_std_over_seeds_per_reward_variant(tmp_path):
    root = str(tmp_path)
    write_run(root, "graduated", 0, 0.40, [0.1, 0.2])
    write_run(root, "graduated", 1, 0.50, [0.2, 0.3])
    write_run(root, "binary", 0, 0.20, [0.0, 0.1])
    tables.main([root])
    md = open(tmp_path / "tables.md").read()
    # graduated: mean 45.0, sample std of (40, 50) = 7.1
    assert "| graduated | 45.0 ± 7.1 | 22.5 ± 3.5 | 0.0 ± 0.0 |" in md
    assert "| binary | 20.0 | 10.0 | 0.0 |" in md
    assert "| sft | 30.0 ± 0.0 |" in md
    assert r"45.0 $\pm$ 7.1" in open(tmp_path / "tables.tex").read()
    assert os.path.getsize(tmp_path / "learning_curves.png") > 1000
