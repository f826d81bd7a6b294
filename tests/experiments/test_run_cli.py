"""The main job end to end in miniature: a tiny random policy, one SFT step, one RL step on fresh tasks."""

import json
import os
import subprocess
import sys

import pytest

from experiments.checkpoint_curve import checkpoint_curve
from experiments.run import calls_by_function_table, evaluated_reach, first_errors_table
from orchestra.data.booking import load_tasks
from orchestra.data.types import Call, Step, Task
from orchestra.env.views import ResponseView
from orchestra.model.chat import CHAT_TEMPLATE
from orchestra.model.config import ModelConfig
from orchestra.model.loader import save_model
from orchestra.model.modeling import init_model
from orchestra.model.tokenizer import build_tokenizer
from orchestra.synth import read_seen_values, task_values

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_RUN = ["synth.count=60", "eval_tasks=3", "rl.steps=1", "rl.tasks_per_step=1", "rl.rollout.group_size=2",
            "rl.minibatch_size=2", "rl.rollout.turn_tokens=8", "rl.rollout.max_turns=2", "rl.sft.steps=1",
            "rl.sft.batch_size=2", "eval.max_turns=2", "logger=none", "model.preset=null"]


def _main_job(tmp_path, run_dir, *overrides):
    return subprocess.run([sys.executable, "-m", "experiments.run", f"model.path={tmp_path / 'policy'}", *TINY_RUN,
                           f"hydra.run.dir={run_dir}", *overrides],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_first_errors_table_puts_the_usual_categories_first_and_fills_gaps_with_zero():
    table = first_errors_table({"sft": {"first_errors": {"unjudged": 1, "parse_error": 2, "none": 1}},
                                "rl": {"first_errors": {"parse_error": 1, "stopped": 3}}})
    assert table.splitlines() == ["| stage | none | parse_error | stopped | unjudged |", "|---|---|---|---|---|",
                                  "| sft | 1 | 2 | 0 | 1 |", "| rl | 0 | 1 | 3 | 0 |"]


def test_calls_by_function_table_lists_the_most_called_first_with_what_each_stage_trained_on():
    def stage(flights, cars):
        return {"by_function": {"Search_Car_Rentals": {"gold_calls": 2, "matched_calls": cars},
                                "Search_Flights": {"gold_calls": 5, "matched_calls": flights}}}
    def calling(*functions):
        return Task("t", "q", tuple(Step(i, Call(f, {}), (), {}, True) for i, f in enumerate(functions)), functions)
    trained = {"sft": [calling("Search_Car_Rentals")], "rl": [calling("Search_Flights", "Search_Car_Rentals")]}
    table = calls_by_function_table({"sft": stage(0, 1), "rl": stage(2, 1)}, trained)
    assert table.splitlines() == [
        "| function | gold calls | in sft tasks | in rl tasks | sft matched | rl matched |", "|---|---|---|---|---|---|",
        "| Search_Flights | 5 | no | yes | 0 | 2 |", "| Search_Car_Rentals | 2 | yes | yes | 1 | 1 |"]


def test_evaluated_reach_counts_steps_no_training_stage_covers_and_values_the_view_hid():
    token = "t" * 80

    def task(query, *calls):  # each call's response holds the token
        return Task(query, query, tuple(Step(i, Call(f, a), (), {"token": token}, True)
                                        for i, (f, a) in enumerate(calls)), tuple(f for f, _ in calls))
    evaluated = [task("find flights", ("Search_Flights", {"fromId": "A"}), ("Get_Flight_Details", {"token": token})),
                 task(f"details of {token}", ("Search_Flights", {"fromId": "A"}),
                      ("Get_Flight_Details", {"token": token}))]  # the request holds it
    sft = [task("cars", ("Search_Car_Rentals", {"x": "1"}))]
    rl = [task("flights", ("Search_Flights", {"fromId": "B"}))]
    assert evaluated_reach(evaluated, {"sft": sft, "rl": rl}, ResponseView(max_string_chars=64)) == {
        "steps": 4, "function_not_in_sft": 4, "function_not_in_rl": 2, "value_hidden_by_view": 1}
    # the full view hides nothing
    assert evaluated_reach(evaluated, {"sft": sft}, ResponseView(kind="full"))["value_hidden_by_view"] == 0


def _tiny_policy(tmp_path, booking):
    tok = build_tokenizer([t.query for t in booking.tasks], 1500, CHAT_TEMPLATE)
    config = ModelConfig(model_type="qwen2", vocab_size=len(tok), hidden_size=32, num_layers=1, num_heads=2,
                         num_kv_heads=1, intermediate_size=64, max_position_embeddings=8192, dtype="float32")
    save_model(init_model(config), tmp_path / "policy", tok)


def test_main_job_trains_on_fresh_tasks_and_writes_its_table(tmp_path, booking):
    _tiny_policy(tmp_path, booking)
    run = tmp_path / "run"
    proc = _main_job(tmp_path, run, "rl_tasks=fresh")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(run / "results.json"))
    assert list(results["evaluations"]) == ["base", "sft", "rl"]
    for evaluation in results["evaluations"].values():  # every held-out episode has one first-error category
        assert sum(evaluation["first_errors"].values()) == 3
    # RL paired with its SFT start task by task: the net of the gold steps is the change in completed steps
    paired, evals = results["paired"], results["evaluations"]
    assert paired["against"] == "sft" and paired["better"] + paired["worse"] + paired["same"] == 3
    assert paired["gained"] - paired["lost"] == evals["rl"]["completed_steps"] - evals["sft"]["completed_steps"]
    tables = open(run / "results.md").read()
    assert "| stage | turn_accuracy" in tables and "Held-out episodes by how they first went wrong" in tables
    # the per-function counts add up to the overall gold and matched calls
    by_function = evals["rl"]["by_function"]
    assert sum(c["gold_calls"] for c in by_function.values()) == evals["rl"]["gold_calls"]
    assert sum(c["matched_calls"] for c in by_function.values()) == evals["rl"]["matched_calls"]
    assert "| function | gold calls | in sft tasks | in rl tasks | base matched | sft matched | rl matched |" in tables
    assert f"RL against its sft start, task by task: better on {paired['better']} tasks" in tables
    assert "\n| rl | " in tables  # the first-errors table's last row
    last = sorted(by_function, key=lambda f: (-by_function[f]["gold_calls"], f))[-1]  # least called, then by name
    assert tables.rstrip().splitlines()[-1].startswith(f"| {last} | ")  # the file is whole
    held_out = load_tasks(run / "held_out_tasks.jsonl")
    fresh = load_tasks(run / "fresh_tasks.jsonl")
    train = load_tasks(run / "train_tasks.jsonl")
    assert len(held_out) == 3 and fresh and train
    ids = [{t.task_id for t in part} for part in (held_out, fresh, train)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert os.path.exists(run / "learning_curve.png") and os.path.isdir(run / "policy")
    # the trained policy records the values it trained on: SFT's train tasks and RL's fresh ones
    assert read_seen_values(run / "policy") == set().union(*map(task_values, train + fresh))

    # the held-out curve over the kept RL checkpoints: the last one is the policy the run scored after RL
    curve = checkpoint_curve(str(run))
    assert [c["step"] for c in curve] == [1]
    assert curve[0]["turn_accuracy"] == results["evaluations"]["rl"]["turn_accuracy"]
    texts = lambda d: [[t["text"] for t in json.loads(line)["turns"]] for line in open(d / "samples.jsonl")]
    assert texts(run / "eval" / "checkpoint-1") == texts(run / "eval" / "rl")
    assert json.load(open(run / "checkpoint_curve.json")) == curve
    with pytest.raises(FileNotFoundError, match="policy has no config.yaml: give a finished run directory"):
        checkpoint_curve(str(tmp_path / "policy"))

    bad = _main_job(tmp_path, tmp_path / "bad", "rl_tasks=both")
    assert bad.returncode != 0 and ("rl_tasks must be one of ('train', 'fresh', 'redrawn', 'redrawn_all'), got 'both'"
                                    in bad.stderr)
    assert not os.path.exists(tmp_path / "bad" / "config.yaml")  # refused before anything is written


def test_main_job_trains_on_redrawn_tasks_with_values_no_evaluated_task_uses(tmp_path, booking):
    _tiny_policy(tmp_path, booking)
    run = tmp_path / "run"
    proc = _main_job(tmp_path, run, "rl_tasks=redrawn", "rl_redraws=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    train = load_tasks(run / "train_tasks.jsonl")
    redrawn = load_tasks(run / "redrawn_tasks.jsonl")
    held_out = load_tasks(run / "held_out_tasks.jsonl")
    assert len(train) <= len(redrawn) <= 2 * len(train)
    assert {t.metadata["redrawn_from"] for t in redrawn} <= {t.task_id for t in train}
    # redrawn values are new: none is an evaluated task's (a value a redraw kept may be a train task's)
    train_values = set().union(*map(task_values, train))
    assert not (set().union(*map(task_values, redrawn)) - train_values) & set().union(*map(task_values, held_out))
    assert read_seen_values(run / "policy") == set().union(*map(task_values, train + redrawn))
    assert json.load(open(run / "results.json"))["evaluations"]["rl"]["turn_accuracy"] is not None

    bad = _main_job(tmp_path, tmp_path / "bad", "rl_tasks=redrawn", "rl_redraws=0")
    assert bad.returncode != 0 and "rl_redraws must be a positive integer, got 0" in bad.stderr


def test_main_job_warm_starts_and_trains_on_every_task_but_the_evaluated_ones_redrawn(tmp_path, booking):
    _tiny_policy(tmp_path, booking)
    run = tmp_path / "run"
    proc = _main_job(tmp_path, run, "rl_tasks=redrawn_all", "rl_redraws=1", "sft_tasks=rl")
    assert proc.returncode == 0, proc.stderr[-3000:]
    train, held_out, fresh, redrawn = (load_tasks(run / f"{name}_tasks.jsonl")
                                       for name in ("train", "held_out", "fresh", "redrawn"))
    sources = {t.metadata["redrawn_from"] for t in redrawn}
    assert not sources & {t.task_id for t in held_out}
    assert sources & {t.task_id for t in fresh}  # not only the SFT tasks: those held out but not evaluated too
    # no redrawn task uses an evaluated task's value, even one its source shared with an evaluated task
    assert not set().union(*map(task_values, redrawn)) & set().union(*map(task_values, held_out))
    assert read_seen_values(run / "policy") == set().union(*map(task_values, redrawn))  # SFT and RL: redrawn only
    reach = json.load(open(run / "results.json"))["evaluated_reach"]
    assert reach["steps"] == sum(len(t.steps) for t in held_out)

    bad = _main_job(tmp_path, tmp_path / "bad", "sft_tasks=held_out")
    assert bad.returncode != 0 and "sft_tasks must be one of ('train', 'rl'), got 'held_out'" in bad.stderr
