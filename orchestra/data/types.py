"""Typed records shared by every layer: tool schemas, tasks, steps and recorded calls.

Records are frozen dataclasses of plain Python values (JSON-like), so they hash, compare and
serialise trivially. Device-side encodings live in `orchestra.env`, never here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

JSON = Any  # a value as `json.loads` returns it


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str  # JSON-schema type as written in the schema: string, number, integer, boolean, array, object
    description: str = ""
    enum: tuple | None = None
    items: JSON = None  # the schema of an array's elements, as the source gives it


@dataclasses.dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: tuple[ParamSpec, ...]
    required: tuple[str, ...]
    response: JSON = None  # the response schema, when the source gives one

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def param(self, name: str) -> ParamSpec | None:
        for p in self.parameters:
            if p.name == name:
                return p
        return None

    def to_json(self) -> dict:
        """The schema in the `tools.jsonl` form (`type: dict`), the form the chat template shows."""
        props = {}
        for p in self.parameters:
            d: dict = {"type": p.type, "description": p.description}
            if p.enum is not None:
                d["enum"] = list(p.enum)
            if p.items is not None:
                d["items"] = p.items
            props[p.name] = d
        out = {"name": self.name, "description": self.description,
               "parameters": {"type": "dict", "properties": props, "required": list(self.required)}}
        if self.response is not None:
            out["response"] = self.response
        return out


@dataclasses.dataclass(frozen=True)
class Call:
    """A tool call: a function name and its arguments (a JSON object)."""
    function: str
    arguments: dict

    def to_json(self) -> dict:
        return {"function": self.function, "arguments": self.arguments}


@dataclasses.dataclass(frozen=True)
class Step:
    """One gold step of a task: the call, the steps it depends on, and what the API answered."""
    index: int
    call: Call
    depends_on: tuple[int, ...]
    response: JSON
    success: bool
    candidate_tools: tuple[str, ...] = ()
    # arg name -> (from_step, from_field): where a dependent argument's value came from, when known
    dependency_args: tuple[tuple[str, int, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Task:
    task_id: str
    query: str
    steps: tuple[Step, ...]
    candidate_tools: tuple[str, ...]  # tool names offered to the policy, gold and distractors
    workflow_id: str | None = None
    metadata: JSON = None

    @property
    def pattern(self) -> tuple[str, ...]:
        return tuple(s.call.function for s in self.steps)


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """A recorded API call and its response."""
    function: str
    arguments: dict
    response: JSON


@dataclasses.dataclass(frozen=True)
class DependencyArg:
    from_step: int
    from_field: str
    value: JSON = None


@dataclasses.dataclass(frozen=True)
class TemplateStep:
    function: str
    arguments: dict  # example arguments
    depends_on: tuple[int, ...]
    dependency_args: dict  # arg name -> DependencyArg


@dataclasses.dataclass(frozen=True)
class WorkflowTemplate:
    workflow_id: str
    steps: tuple[TemplateStep, ...]
    frequency: int = 1
    domains: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()  # example queries

    @property
    def pattern(self) -> tuple[str, ...]:
        return tuple(s.function for s in self.steps)


def response_succeeded(response) -> bool:
    """A response counts as a success: present, not empty, no `error` key, `status` not false."""
    if response is None:
        return False
    if isinstance(response, dict):
        return bool(response) and "error" not in response and response.get("status") is not False
    if isinstance(response, list | str):
        return len(response) > 0
    return True
