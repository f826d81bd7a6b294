"""Small hand-made tools and tasks for the protocol's mechanics (the real data comes from the
session-wide `booking` fixture in tests/conftest.py). Imported by the tests as `eval_helpers`."""

import json

from orchestra.data.types import Call, ParamSpec, Step, Task, ToolSpec
from orchestra.env.codec import format_tool_call
from orchestra.eval.protocol import EvalConfig, evaluate


def _tool(name, required, *optional):
    params = tuple(ParamSpec(p, "string") for p in (*required, *optional))
    return ToolSpec(name, f"{name} (test tool)", params, tuple(required))


TOOLS = {t.name: t for t in (
    _tool("Search_Place_Location", ["query"]),                      # free by name
    _tool("Get_Item", ["item_id"], "note", "languagecode"),
    _tool("Search_Items", ["dest_id"], "categories_filter", "sort_by"),
)}

# Must-match parameters of the test tools (as in exact_match_values.json).
MUST_MATCH = {"Get_Item": ["item_id"], "Search_Items": ["dest_id"]}


def step(index, function, deps=(), response=None, **arguments):
    response = {"answer_of": [function, index]} if response is None else response
    return Step(index, Call(function, arguments), tuple(deps), response, True)


def task(*steps, task_id="t", query="q", metadata=None):
    return Task(task_id, query, tuple(steps), tuple(TOOLS), metadata=metadata)


def calls(*pairs):
    """One turn of calls: calls(("Get_Item", {"item_id": "1"}), ...)."""
    return "\n".join(format_tool_call(Call(f, a)) for f, a in pairs)


def gold(t, *indices):
    return calls(*[(t.steps[i].call.function, t.steps[i].call.arguments) for i in indices])


def run(policy, tasks, tools=TOOLS, exact_match=None, judge=None, **config):
    config.setdefault("progress", False)
    return evaluate(policy, tasks, tools, EvalConfig(**config),
                    exact_match=MUST_MATCH if exact_match is None else exact_match, judge=judge)


def observation(sample, turn, k):
    return sample["turns"][turn]["calls"][k]["observation"]


def rendered(response):
    return json.dumps(response, ensure_ascii=False, separators=(",", ":"))


class ScriptedJudge:
    """A judge that answers from a function and records what it was asked."""

    def __init__(self, equivalent=lambda predicted, gold: True, scores=(2, 1)):
        self.equivalent, self.scores = equivalent, scores
        self.asked: list[tuple[Call, Call]] = []

    def calls_equivalent(self, functions, history, predicted, gold):
        self.asked.append((predicted, gold))
        return self.equivalent(predicted, gold)

    def score_answer(self, query, reference, answer):
        return {"complete": self.scores[0], "correct": self.scores[1], "reasons": {}}

    def describe(self):
        return {"model": "scripted"}

