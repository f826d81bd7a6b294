"""Loaders for the Booking.com data: `tasks.jsonl`, `workflow_templates.json`, `exact_match_values.json`.

Everything is validated before anything is returned: a malformed record raises `DataError` naming
the file, the line and the field, and no partially loaded list is ever handed out.
"""

from __future__ import annotations

import dataclasses
import os

from orchestra.data.errors import DataError
from orchestra.data.io import read_json, read_jsonl, require
from orchestra.data.schemas import load_tools
from orchestra.data.types import (Call, CacheEntry, DependencyArg, Step, Task, TemplateStep, ToolSpec,
                                  WorkflowTemplate)


def parse_task(obj: dict, *, task_id: str, path: str = "<memory>", line: int | None = None) -> Task:
    """One line of `tasks.jsonl`."""
    query = require(obj, "query", str, path=path, line=line)
    raw_steps = require(obj, "steps", list, path=path, line=line)
    if not raw_steps:
        raise DataError("a task needs at least one step", path=path, line=line, field="steps")
    steps, candidates = [], []
    for i, s in enumerate(raw_steps):
        pre = f"steps[{i}]."
        if not isinstance(s, dict):
            raise DataError("expected an object", path=path, line=line, field=f"steps[{i}]")
        gt = require(s, "ground_truth", dict, path=path, line=line, prefix=pre)
        function = require(gt, "function", str, path=path, line=line, prefix=pre + "ground_truth.")
        arguments = require(gt, "arguments", dict, path=path, line=line, prefix=pre + "ground_truth.")
        depends = s.get("depends_on", []) or []
        if not isinstance(depends, list) or not all(isinstance(d, int) and 0 <= d < i for d in depends):
            raise DataError("expected indices of earlier steps", path=path, line=line, field=pre + "depends_on")
        result = s.get("execution_result")
        if result is None:
            response, success = None, False
        else:
            if not isinstance(result, dict):
                raise DataError("expected an object", path=path, line=line, field=pre + "execution_result")
            response = result.get("execution_result")
            success = bool(result.get("success", False))
        tools = s.get("candidate_tools", []) or []
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise DataError("expected a list of tool names", path=path, line=line, field=pre + "candidate_tools")
        for t in tools:
            if t not in candidates:
                candidates.append(t)
        steps.append(Step(i, Call(function, arguments), tuple(depends), response, success, tuple(tools)))
    for s in steps:
        if s.call.function not in candidates:
            candidates.append(s.call.function)
    workflow = obj.get("workflow_id")
    return Task(task_id, query, tuple(steps), tuple(candidates),
                workflow if isinstance(workflow, str) else None, obj.get("metadata"))


def load_tasks(path: str | os.PathLike, tools: dict[str, ToolSpec] | None = None) -> list[Task]:
    """Tasks from a `tasks.jsonl` file; with `tools`, every gold function must be one of them."""
    path = os.fspath(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    tasks = []
    for line, obj in read_jsonl(path):
        task_id = obj.get("id") if isinstance(obj.get("id"), str) else f"{stem}-{line}"
        task = parse_task(obj, task_id=task_id, path=path, line=line)
        if tools is not None:
            for s in task.steps:
                if s.call.function not in tools:
                    raise DataError(f"unknown function '{s.call.function}' (not in the tool schemas)",
                                    path=path, line=line, field=f"steps[{s.index}].ground_truth.function")
        tasks.append(task)
    return tasks


def load_templates(path: str | os.PathLike) -> list[WorkflowTemplate]:
    """Workflow templates from `workflow_templates.json` (`{"workflows": [...]}`)."""
    path = os.fspath(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("workflows"), list):
        raise DataError("expected an object with a 'workflows' list", path=path, field="workflows")
    out = []
    for w_i, w in enumerate(data["workflows"]):
        pre = f"workflows[{w_i}]."
        if not isinstance(w, dict):
            raise DataError("expected an object", path=path, field=pre[:-1])
        wid = require(w, "id", str, path=path, prefix=pre)
        deps = require(w, "dependencies", dict, path=path, prefix=pre)
        steps = []
        for k in range(len(deps)):
            d = deps.get(str(k))
            spre = f"{pre}dependencies.{k}."
            if not isinstance(d, dict):
                raise DataError("missing or not an object (steps must be numbered 0..n-1)", path=path,
                                field=spre[:-1])
            function = require(d, "function", str, path=path, prefix=spre)
            depends = d.get("depends_on", []) or []
            if not all(isinstance(x, int) and 0 <= x < k for x in depends):
                raise DataError("expected indices of earlier steps", path=path, field=spre + "depends_on")
            dep_args = {}
            for arg, spec in (d.get("dependency_args") or {}).items():
                apre = f"{spre}dependency_args.{arg}."
                if not isinstance(spec, dict):
                    raise DataError("expected an object", path=path, field=apre[:-1])
                from_step = require(spec, "from_step", int, path=path, prefix=apre)
                if not 0 <= from_step < k:
                    raise DataError(f"must name an earlier step, got {from_step}", path=path, field=apre + "from_step")
                from_field = require(spec, "from_field", str, path=path, prefix=apre)
                dep_args[arg] = DependencyArg(from_step, from_field, spec.get("value"))
            steps.append(TemplateStep(function, dict(d.get("arguments") or {}), tuple(depends), dep_args))
        if not steps:
            raise DataError("a workflow needs at least one step", path=path, field=pre + "dependencies")
        examples = tuple(e.get("query", "") for e in w.get("examples", []) if isinstance(e, dict))
        out.append(WorkflowTemplate(wid, tuple(steps), int(w.get("frequency", 1) or 1),
                                    tuple(w.get("domains", []) or []), examples))
    return out


def cache_entries_from_tasks(tasks: list[Task]) -> list[CacheEntry]:
    """Every recorded gold call of `tasks` with its response (duplicates kept; the cache dedups)."""
    return [CacheEntry(s.call.function, s.call.arguments, s.response)
            for t in tasks for s in t.steps if s.response is not None]


def load_exact_match_values(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """Per function, the parameters whose values must match exactly (ComplexFuncBench)."""
    path = os.fspath(path)
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DataError("expected an object of function -> list of parameter names", path=path)
    return {k: tuple(v) for k, v in data.items()}


@dataclasses.dataclass(frozen=True)
class Ecosystem:
    """Everything the environment and the synthesizer need about one API ecosystem."""
    root: str
    tools: dict[str, ToolSpec]
    tasks: list[Task]
    templates: list[WorkflowTemplate]
    cache_entries: list[CacheEntry]
    exact_match: dict[str, tuple[str, ...]]


def load_booking(root: str | os.PathLike) -> Ecosystem:
    """The Booking.com data folder: tools, tasks, templates, and the cache entries the tasks record."""
    root = os.fspath(root)
    tools = load_tools(os.path.join(root, "tools.jsonl"))
    tasks = load_tasks(os.path.join(root, "tasks.jsonl"), tools)
    templates_path = os.path.join(root, "workflow_templates.json")
    templates = load_templates(templates_path) if os.path.exists(templates_path) else []
    exact_path = os.path.join(root, "exact_match_values.json")
    exact = load_exact_match_values(exact_path) if os.path.exists(exact_path) else {}
    return Ecosystem(root, tools, tasks, templates, cache_entries_from_tasks(tasks), exact)
