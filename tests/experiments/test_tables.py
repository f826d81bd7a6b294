import json
import os

import pytest

from experiments import tables
from orchestra.eval import report


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


def write_samples(run_dir, stage, completed):
    report.write_samples(os.path.join(run_dir, "eval", stage, report.SAMPLES_FILE),
                         [{"task_id": task_id, "completed_steps": steps} for task_id, steps in completed.items()])


def test_sign_test_is_exact_and_two_sided():
    assert tables.sign_test(0, 0) == 1.0
    assert tables.sign_test(5, 0) == tables.sign_test(0, 5) == 2 / 32
    assert tables.sign_test(3, 3) == 1.0  # capped: the two tails overlap at the middle
    assert abs(tables.sign_test(8, 2) - 2 * (1 + 10 + 45) / 1024) < 1e-12


def test_tables_pair_rl_with_its_sft_start_task_by_task(tmp_path):
    root = str(tmp_path)
    write_run(root, "graduated", 0, 0.40, [0.1])
    write_run(root, "graduated", 1, 0.50, [0.1])
    write_run(root, "binary", 0, 0.20, [0.0])  # not the main variant: left out of the pairing
    seed0, seed1 = (os.path.join(root, f"reward=graduated,seed={s}") for s in (0, 1))
    write_samples(seed0, "sft", {"a": 1, "b": 0, "c": 2, "d": 1})
    write_samples(seed0, "rl", {"a": 3, "b": 0, "c": 1, "d": 2})
    write_samples(seed1, "sft", {"a": 0, "b": 1})
    write_samples(seed1, "rl", {"a": 1, "b": 2})
    md = tables.tables(tables.find_runs([root]), latex=False)
    assert "| 0 | 3 | 1 | 2 / 1 / 1 | 1.00 |" in md
    assert "| 1 | 2 | 0 | 2 / 0 / 0 | 0.50 |" in md
    assert f"| all | 5 | 1 | 4 / 1 / 1 | {2 * 6 / 32:.2f} |" in md


def test_tables_leave_the_pairing_out_when_runs_kept_no_episodes(tmp_path):
    write_run(str(tmp_path), "graduated", 0, 0.40, [0.1])
    assert "Paired" not in tables.tables(tables.find_runs([str(tmp_path)]), latex=False)


def test_tables_pair_a_run_without_sft_against_its_base_and_pool_same_seed_runs_apart(tmp_path):
    root = str(tmp_path)
    write_run(root, "graduated", 0, 0.40, [0.1])
    d = os.path.join(root, "no_sft")
    os.makedirs(d)
    with open(os.path.join(d, "results.json"), "w") as f:  # rl.sft.steps=0: the same seed, RL against the base
        json.dump({"seed": 0, "reward": "graduated", "paired": {"against": "base"},
                   "evaluations": {s: {"turn_accuracy": 0.2, "call_accuracy": 0.1, "success_rate": 0.0}
                                   for s in ("base", "rl")}}, f)
    write_samples(os.path.join(root, "reward=graduated,seed=0"), "sft", {"a": 1, "b": 1})
    write_samples(os.path.join(root, "reward=graduated,seed=0"), "rl", {"a": 2, "b": 1})
    write_samples(d, "base", {"a": 2, "b": 2})
    write_samples(d, "rl", {"a": 0, "b": 1})
    md = tables.tables(tables.find_runs([root]), latex=False)
    assert "| 0 | 1 | 0 | 1 / 0 / 1 | 1.00 |" in md and "| 0 | 0 | 3 | 0 / 2 / 0 | 0.50 |" in md
    assert "| all | 1 | 3 | 1 / 2 / 1 | 1.00 |" in md  # four tasks: the two runs' task a and b kept apart


def test_room_counts_each_gold_call_at_the_start_under_the_first_that_applies(tmp_path):
    from orchestra.data.serialize import write_tasks_jsonl
    from orchestra.data.types import Call, Step, Task
    from tests.rl import tiny

    tok = tiny.token_task()  # its second call passes a token the default view cuts: a hidden value
    ok = {"status": True, "data": {"t": "9"}}
    other = Task("other", "Two of the other.", (Step(0, Call("other", {"x": "1"}), (), ok, True),
                                               Step(1, Call("other", {"x": "2"}), (), ok, True)), ("other",))
    root = str(tmp_path)
    write_run(root, "graduated", 0, 0.40, [0.1])
    d = os.path.join(root, "reward=graduated,seed=0")
    write_tasks_jsonl([tok, other], os.path.join(d, "held_out_tasks.jsonl"))
    with open(os.path.join(d, "config.yaml"), "w") as f:
        f.write("env: {}\n")

    def episodes(stage, tok_matched, other_matched):
        rows = [{"task_id": t.task_id, "completed_steps": 0,
                 "gold": [{"index": i, "function": s.call.function, "matched_turn": i if m else None}
                          for i, (s, m) in enumerate(zip(t.steps, matched))]}
                for t, matched in ((tok, tok_matched), (other, other_matched))]
        report.write_samples(os.path.join(d, "eval", stage, report.SAMPLES_FILE), rows)

    episodes("base", [True, False, False], [False, False])
    episodes("sft", [True, False, False], [False, False])
    # get_time right once after RL: its open call at the start counts as open, `other` never right
    episodes("rl", [True, False, True], [False, False])
    run = tables.find_runs([root])[0]
    assert tables.room_counts(run) == {"right": 1, "hidden_value": 1, "never_right_function": 2, "open": 1}
    assert "| 0 | 5 | 1 | 1 | 2 | 1 |" in tables.tables([run], latex=False)
    write_tasks_jsonl([tok], os.path.join(d, "held_out_tasks.jsonl"))  # a task file that is not the run's
    with pytest.raises(ValueError, match=r"evaluated tasks \['other'\] are not in .*held_out_tasks.jsonl"):
        tables.room_counts(run)
    os.remove(os.path.join(d, "config.yaml"))  # without the run's view the section is left out
    assert "Room" not in tables.tables(tables.find_runs([root]), latex=False)


def test_dropped_parameters_count_calls_that_leave_out_a_parameter_of_the_first_gold_call(tmp_path):
    root = str(tmp_path)
    write_run(root, "graduated", 0, 0.40, [0.1])
    d = os.path.join(root, "reward=graduated,seed=0")
    gold = [{"index": 0, "function": "f", "arguments": {"a": 1, "b": 2}, "matched_turn": 0},
            {"index": 1, "function": "f", "arguments": {"a": 3}, "matched_turn": None},
            {"index": 2, "function": "g", "arguments": {"x": "y", "z": None}, "matched_turn": None}]

    def episode(stage, *calls):
        turns = [{"turn": 0, "calls": [{"function": f, "arguments": a} for f, a in calls]}]
        report.write_samples(os.path.join(d, "eval", stage, report.SAMPLES_FILE),
                             [{"task_id": "t", "completed_steps": 1, "gold": gold, "turns": turns}])

    # f against its first gold call {a, b}; g's null z is absent; unparsed and non-gold calls are not counted
    episode("sft", ("f", {"a": 1, "b": 5}), ("g", {"x": "y"}), (None, None), ("h", {}))
    episode("rl", ("f", {"a": 3}), ("f", {"b": 2, "c": 0}), ("g", {"x": None}), ("g", {"x": "q"}))
    assert tables.dropped_parameters(tables.read_samples(d, "sft")) == (0, 2)
    assert tables.dropped_parameters(tables.read_samples(d, "rl")) == (3, 4)
    assert "| 0 | 0 / 2 | 3 / 4 |" in tables.tables(tables.find_runs([root]), latex=False)
