"""The protocol on the 81 real Booking tasks."""

import json
import os
import re

import pytest

from eval_helpers import calls, observation, rendered
from orchestra.data.types import Call
from orchestra.eval.metrics import DomainRule
from orchestra.eval.policy import OraclePolicy, ReplayPolicy, StopAfterFirstStepPolicy
from orchestra.eval.protocol import EvalConfig, evaluate, evaluate_ecosystem, gold_steps
from orchestra.eval.report import SAMPLES_FILE, SUMMARY_FILE

QUIET = EvalConfig(progress=False)


def gold_turn(task, indices):
    return calls(*[(task.steps[i].call.function, task.steps[i].call.arguments) for i in indices])


def oracle_script(task):
    return [gold_turn(task, g) for g in gold_steps(task).groups] + ["Done."]


def test_oracle_scores_full_marks_on_every_real_task(booking):
    assert len(booking.tasks) == 81
    summary, samples = evaluate_ecosystem(OraclePolicy(booking.tasks), booking, QUIET)
    for block in [summary["overall"], *summary["by_domain"].values()]:
        assert (block["success_rate"], block["call_accuracy"], block["turn_accuracy"]) == (1.0, 1.0, 1.0)
    assert summary["overall"]["gold_calls"] == sum(len(t.steps) for t in booking.tasks)
    assert summary["judge"] is None and summary["lower_bound"] is True


def _depth_counts(path):
    """Per task: (number of distinct dependency depths, calls at depth 0), from the raw file."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            steps = json.loads(line)["steps"]
            memo = {}

            def depth(i):
                if i not in memo:
                    memo[i] = max((1 + depth(d) for d in steps[i].get("depends_on") or []), default=0)
                return memo[i]

            depths = [depth(i) for i in range(len(steps))]
            out.append((len(set(depths)), depths.count(0)))
    return out


def test_stopping_after_the_first_step_gets_the_expected_turn_accuracy(booking):
    counts = _depth_counts(os.path.join(booking.root, "tasks.jsonl"))
    # One golden step completed per task, over all golden steps; the first step's calls matched.
    expected_turn = len(counts) / sum(n for n, _ in counts)
    expected_call = sum(c for _, c in counts) / sum(len(t.steps) for t in booking.tasks)
    summary, samples = evaluate_ecosystem(StopAfterFirstStepPolicy(booking.tasks), booking, QUIET)
    assert summary["overall"]["turn_accuracy"] == pytest.approx(expected_turn)
    assert summary["overall"]["call_accuracy"] == pytest.approx(expected_call)
    assert expected_turn < 1.0


def _first(booking, pred):
    return next(t for t in booking.tasks if pred(t))


def test_a_malformed_call_gets_the_format_message_and_the_model_may_correct_it(booking):
    task = _first(booking, lambda t: booking.tools[t.steps[gold_steps(t).groups[0][0]].call.function].required)
    first = task.steps[gold_steps(task).groups[0][0]].call
    missing = booking.tools[first.function].required[0]
    broken = {k: v for k, v in first.arguments.items() if k != missing}
    script = [calls((first.function, broken)),
              calls((first.function, {**first.arguments, "colour": "red"})),
              "<tool_call>\n{\"name\": oops}\n</tool_call>",
              *oracle_script(task)]
    _, [sample] = evaluate(ReplayPolicy(script), [task], booking.tools, QUIET, exact_match=booking.exact_match)
    assert json.loads(observation(sample, 0, 0)) == {
        "error": f"Missing required parameter '{missing}' for {first.function}."}
    assert sample["turns"][1]["calls"][0]["verdict"] == "format_error"
    assert json.loads(observation(sample, 1, 0))["error"].startswith(f"Unknown parameter for {first.function}.")
    assert sample["turns"][2]["calls"][0]["parse_error"] == "INVALID_JSON"
    assert sample["success"] and sample["completed_steps"] == sample["gold_steps"]


def _plain_string_must_match(booking, call):
    """A must-match parameter of `call` holding a plain string (no date, time or enum to keep valid)."""
    tool = booking.tools[call.function]
    for k in sorted(set(booking.exact_match.get(call.function, ())) & set(call.arguments)):
        v = call.arguments[k]
        if isinstance(v, str) and not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", v) and tool.param(k).enum is None:
            return k
    return None


def test_a_wrong_value_ends_the_episode_with_the_right_turn_accuracy(booking):
    def candidate(t):
        groups = gold_steps(t).groups
        return len(groups) >= 3 and any(_plain_string_must_match(booking, t.steps[i].call) for i in groups[1])
    task = _first(booking, candidate)
    groups = gold_steps(task).groups
    call = next(task.steps[i].call for i in groups[1] if _plain_string_must_match(booking, task.steps[i].call))
    param = _plain_string_must_match(booking, call)
    wrong = {**call.arguments, param: call.arguments[param] + "-other"}
    script = [gold_turn(task, groups[0]), calls((call.function, wrong)), "unused"]
    summary, [sample] = evaluate(ReplayPolicy(script), [task], booking.tools, QUIET, exact_match=booking.exact_match)
    assert sample["end_reason"] == "no_match" and not sample["success"]
    assert sample["turns"][1]["calls"][0]["verdict"] == "value_error"
    assert sample["matched_calls"] == len(groups[0])
    assert summary["overall"]["turn_accuracy"] == pytest.approx(1 / len(groups))


def test_parallel_calls_in_one_turn_match_regardless_of_order(booking):
    task = _first(booking, lambda t: any(len({t.steps[i].call.function for i in g}) < len(g) >= 3
                                         for g in gold_steps(t).groups))
    groups = gold_steps(task).groups
    script = [gold_turn(task, tuple(reversed(g))) for g in groups] + ["Done."]
    _, [sample] = evaluate(ReplayPolicy(script), [task], booking.tools, QUIET, exact_match=booking.exact_match)
    assert sample["success"]
    for turn, g in zip(sample["turns"], groups):
        for entry, i in zip(turn["calls"], reversed(g)):
            assert entry["gold"] == i and entry["observation"] == rendered(task.steps[i].response)


def test_free_calls_outside_the_gold_path_do_not_end_the_episode(booking):
    task = booking.tasks[0]
    first = task.steps[0].call
    assert first.function == "Search_Attraction_Location"  # the data's first task starts with a lookup
    other = next(s for t in booking.tasks for s in t.steps
                 if s.call.function == first.function and s.call.arguments != first.arguments)
    unknown = Call(first.function, {"query": "a place nobody recorded"})
    script = [calls((other.call.function, other.call.arguments)), calls((unknown.function, unknown.arguments)),
              *oracle_script(task)]
    _, [sample] = evaluate(ReplayPolicy(script), [task], booking.tools, QUIET, exact_match=booking.exact_match,
                           cache_entries=booking.cache_entries)
    assert sample["turns"][0]["calls"][0]["verdict"] == "free"
    assert observation(sample, 0, 0) == rendered(other.response)
    assert json.loads(observation(sample, 1, 0)) == {"error": "No results found"}
    assert sample["success"] and sample["matched_calls"] == len(task.steps)


class RecordingOracle(OraclePolicy):
    def __init__(self, tasks):
        super().__init__(tasks)
        self.batch_sizes = []

    def generate(self, conversations, tools):
        self.batch_sizes.append(len(conversations))
        return super().generate(conversations, tools)


def test_active_episodes_generate_together(booking):
    policy = RecordingOracle(booking.tasks)
    summary, _ = evaluate_ecosystem(policy, booking, EvalConfig(progress=False, batch_size=16))
    assert policy.batch_sizes[0] == 16 and max(policy.batch_sizes) == 16
    assert summary["overall"]["success_rate"] == 1.0


def test_results_are_written_as_jsonl_and_json(booking, tmp_path):
    tasks = booking.tasks[:5]
    summary, samples = evaluate(StopAfterFirstStepPolicy(tasks), tasks, booking.tools, QUIET,
                                exact_match=booking.exact_match, out_dir=str(tmp_path / "run"))
    assert sorted(os.listdir(tmp_path / "run")) == [SAMPLES_FILE, SUMMARY_FILE]  # no temporary files left
    lines = (tmp_path / "run" / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == samples
    first_turn = samples[0]["turns"][0]
    assert first_turn["text"] and {"verdict", "observation", "function", "arguments"} <= set(first_turn["calls"][0])
    assert json.loads((tmp_path / "run" / SUMMARY_FILE).read_text(encoding="utf-8")) == summary


def test_complexfuncbench_samples_are_replayed_by_their_gold_turns(tmp_path):
    from orchestra.data.complexfuncbench import load_complexfuncbench

    def fn(name, *params):
        return {"name": name, "description": name, "parameters": {
            "type": "object", "properties": {p: {"type": "string", "description": p} for p in params},
            "required": list(params)}}

    def fc(name, **arguments):
        return {"name": name, "arguments": arguments}

    sample = {"id": "Hotels-7",
              "functions": [fn("Search_Hotel_Destination", "query"), fn("Get_Hotel_Policies", "hotel_id")],
              "conversations": [
                  {"role": "user", "content": "Policies of two hotels in Rome?"},
                  {"role": "assistant", "function_call": [fc("Search_Hotel_Destination", query="Rome")]},
                  {"role": "observation", "content": [{"data": [{"hotel_id": "h-123"}, {"hotel_id": "h-456"}]}]},
                  {"role": "assistant", "function_call": [fc("Get_Hotel_Policies", hotel_id="h-456"),
                                                          fc("Get_Hotel_Policies", hotel_id="h-123")]},
                  {"role": "observation", "content": [{"data": "no pets"}, {"data": "pets welcome"}]},
                  {"role": "assistant", "content": "One allows pets, one does not."}]}
    path = tmp_path / "cfb.jsonl"
    path.write_text(json.dumps(sample) + "\n", encoding="utf-8")
    eco = load_complexfuncbench(path)
    [task] = eco.tasks
    assert gold_steps(task).groups == ((0,), (1, 2))
    config = EvalConfig(progress=False, domain=DomainRule(by="id_prefix"))
    summary, [s] = evaluate_ecosystem(OraclePolicy(eco.tasks), eco, config)
    assert s["success"] and s["domain"] == "Hotels" and len(s["turns"]) == 3
    summary, [s] = evaluate_ecosystem(StopAfterFirstStepPolicy(eco.tasks), eco, config)
    assert (s["completed_steps"], s["gold_steps"], s["matched_calls"]) == (1, 2, 1)


def test_the_summary_table_shows_each_domain_in_percent(booking):
    from rich.console import Console

    from orchestra.eval.report import summary_table

    tasks = booking.tasks[:3]
    summary, _ = evaluate(OraclePolicy(tasks), tasks, booking.tools, QUIET, exact_match=booking.exact_match)
    console = Console(record=True, width=120)
    console.print(summary_table(summary))
    text = console.export_text()
    assert "strict lower bound" in text and "100.0" in text
    assert all(domain in text for domain in summary["by_domain"])
