"""The policy interface of the evaluation, and scripted policies for tests and sanity checks.

A policy is anything with `generate(conversations, tools) -> texts`, batched: conversation k is a
list of OpenAI-style messages and `tools[k]` its offered tools as OpenAI function schemas; text k is
the assistant's next turn, with tool calls as Qwen-style `<tool_call>{json}</tool_call>` blocks.

In the conversations the evaluator builds, an assistant message's `content` is the policy's raw
text (its tool-call blocks included, so a chat template renders exactly what was written; there is
no separate `tool_calls` key), and each call is answered by one `{"role": "tool", "name", "content"}`
message, in order. Policies must not modify the messages they are given.

Scripted policies find their task by the conversation's first user message (the query) and their
place by the number of assistant messages so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from orchestra.data.types import Task
from orchestra.env.codec import format_tool_call
from orchestra.eval.protocol import gold_steps


class Policy(Protocol):
    def generate(self, conversations: list[list[dict]], tools: list[list[dict]]) -> list[str]:
        ...


def conversation_query(conversation: Sequence[dict]) -> str:
    for m in conversation:
        if m.get("role") == "user":
            return m["content"]
    raise ValueError("conversation has no user message")


def assistant_turns(conversation: Sequence[dict]) -> int:
    return sum(m.get("role") == "assistant" for m in conversation)


def calls_text(task: Task, indices: Sequence[int]) -> str:
    """The gold calls `indices` of `task`, as one turn of parallel calls."""
    return "\n".join(format_tool_call(task.steps[i].call) for i in indices)


class _ByQuery:
    def __init__(self, tasks: Sequence[Task]):
        self._tasks: dict[str, Task] = {}
        for t in tasks:
            other = self._tasks.setdefault(t.query, t)
            if other is not t:
                raise ValueError(f"{type(self).__name__}: tasks {other.task_id} and {t.task_id} share a query; "
                                 "a scripted policy finds its task by the query")

    def _task(self, conversation: Sequence[dict]) -> Task:
        query = conversation_query(conversation)
        if query not in self._tasks:
            raise ValueError(f"{type(self).__name__}: no task has the query {query[:80]!r}")
        return self._tasks[query]


class OraclePolicy(_ByQuery):
    """Makes the gold calls, one golden step per turn (its calls in parallel), then answers."""
    answer = "Here is everything you asked for, based on the results above."

    def generate(self, conversations, tools):
        out = []
        for conv in conversations:
            task = self._task(conv)
            groups, k = gold_steps(task).groups, assistant_turns(conv)
            out.append(calls_text(task, groups[k]) if k < len(groups) else self.answer)
        return out


class StopAfterFirstStepPolicy(_ByQuery):
    """Makes the calls of the first golden step, then answers without going further."""
    answer = "I found the first results; that is as far as I got."

    def generate(self, conversations, tools):
        out = []
        for conv in conversations:
            task = self._task(conv)
            out.append(calls_text(task, gold_steps(task).groups[0]) if assistant_turns(conv) == 0 else self.answer)
        return out


class ReplayPolicy:
    """Replays scripted texts: turn k gets `texts[k]`. `texts` is one script for every
    conversation, or a mapping from query to script."""

    def __init__(self, texts: Sequence[str] | Mapping[str, Sequence[str]]):
        if isinstance(texts, str):
            raise TypeError("ReplayPolicy takes a list of texts (one per turn), not a single string")
        self.texts = texts

    def generate(self, conversations, tools):
        out = []
        for conv in conversations:
            if isinstance(self.texts, Mapping):
                query = conversation_query(conv)
                if query not in self.texts:
                    raise ValueError(f"ReplayPolicy: no script for the query {query[:80]!r}")
                script = self.texts[query]
            else:
                script = self.texts
            k = assistant_turns(conv)
            if k >= len(script):
                raise ValueError(f"ReplayPolicy: the script has {len(script)} turn(s); turn {k} was asked for")
            out.append(script[k])
        return out
