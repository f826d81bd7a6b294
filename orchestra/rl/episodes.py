"""Tasks as conversations: the prompt a policy sees and the gold episode SFT imitates.

A gold episode is: the user's query; for each turn, one assistant message holding that turn's tool
calls and one tool message per call holding the recorded response (rendered by the response view);
then a short final answer. Steps are grouped into turns by `task.metadata["turns"]` (a turn index
per step, written by the synthesizer) when present, else one call per turn.
"""

from __future__ import annotations

import dataclasses
import json

from orchestra.data.types import Task, ToolSpec
from orchestra.env.views import ResponseView, ToolView

FINAL_ANSWER = "All requested steps are done; the results are above."


def tool_schemas(task: Task, tools: dict[str, ToolSpec], view: ToolView) -> list[dict]:
    """The candidate tools offered for `task`, in the task's order, as the chat template takes them."""
    missing = [name for name in task.candidate_tools if name not in tools]
    if missing:
        raise KeyError(f"task {task.task_id}: candidate tools without a schema: {missing}")
    return [view.schema(tools[name]) for name in task.candidate_tools]


def prompt_messages(task: Task) -> list[dict]:
    return [{"role": "user", "content": task.query}]


def step_turns(task: Task) -> list[list[int]]:
    """Step indices grouped into assistant turns, in order."""
    turns = (task.metadata or {}).get("turns") if isinstance(task.metadata, dict) else None
    if not turns or len(turns) != len(task.steps):
        return [[s.index] for s in task.steps]
    grouped: dict[int, list[int]] = {}
    for step, turn in enumerate(turns):
        grouped.setdefault(int(turn), []).append(step)
    return [grouped[t] for t in sorted(grouped)]


def gold_prefix_messages(task: Task, view: ResponseView, turns: int) -> list[dict]:
    """The query and the first `turns` gold turns (calls and rendered responses) as chat messages."""
    messages = prompt_messages(task)
    for turn in step_turns(task)[:turns]:
        steps = [task.steps[i] for i in turn]
        messages.append({"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": s.call.function, "arguments": s.call.arguments}} for s in steps]})
        messages.extend({"role": "tool", "content": view.render(s.response)} for s in steps)
    return messages


def gold_messages(task: Task, view: ResponseView, final_answer: str = FINAL_ANSWER) -> list[dict]:
    """The whole gold episode as chat messages."""
    return gold_prefix_messages(task, view, len(step_turns(task))) + [{"role": "assistant", "content": final_answer}]


def turn_window(task: Task, start: int, turns: int) -> Task:
    """The task cut to its gold turns `start .. start + turns - 1`: what a policy that was given the
    first `start` gold turns can still do in `turns` turns. Dependencies on the given steps count as
    met (they are dropped); steps are renumbered from 0."""
    keep = [i for turn in step_turns(task)[start: start + turns] for i in turn]
    new_index = {old: new for new, old in enumerate(keep)}
    steps = tuple(dataclasses.replace(task.steps[old], index=new_index[old],
                                      depends_on=tuple(new_index[d] for d in task.steps[old].depends_on
                                                       if d in new_index),
                                      dependency_args=tuple((arg, new_index[src], field) for arg, src, field
                                                            in task.steps[old].dependency_args if src in new_index))
                  for old in keep)
    metadata = task.metadata
    if isinstance(metadata, dict) and metadata.get("turns") and len(metadata["turns"]) == len(task.steps):
        metadata = {**metadata, "turns": [metadata["turns"][old] for old in keep]}
    return dataclasses.replace(task, steps=steps, metadata=metadata)


def hidden_value_steps(task: Task, view: ResponseView) -> list[bool]:
    """For each step: whether its call passes a string that an earlier turn's response held but the
    view did not show (a token cut to `max_string_chars`, an item past `max_list_items` or past
    `max_chars`) and the request does not state. No policy can write such a value from what it saw."""
    shown = [task.query]   # what the policy has seen before the turn, as text
    held = []              # the raw responses before the turn, as JSON text
    hidden = [False] * len(task.steps)
    for turn in step_turns(task):
        for i in turn:
            for value in task.steps[i].call.arguments.values():
                if isinstance(value, str) and value:
                    quoted = json.dumps(value, ensure_ascii=False)
                    if any(quoted in h for h in held) and not any(value in s or quoted[1:-1] in s for s in shown):
                        hidden[i] = True
        shown.extend(view.render(task.steps[i].response) for i in turn)
        held.extend(json.dumps(task.steps[i].response, ensure_ascii=False) for i in turn)
    return hidden


def hidden_value_turns(task: Task, view: ResponseView) -> list[bool]:
    """For each turn: whether one of its steps passes a value the view hid (`hidden_value_steps`)."""
    hidden = hidden_value_steps(task, view)
    return [any(hidden[i] for i in turn) for turn in step_turns(task)]
