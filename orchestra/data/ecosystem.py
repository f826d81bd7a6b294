"""A user's own API ecosystem: tool schemas, recorded calls, and optionally templates and tasks.

Files:
- tools: `tools.jsonl` form or OpenAI's `{"type": "function", "function": {...}}` form (one a line,
  or a JSON list), read by `schemas.load_tools`.
- calls: JSONL, one recorded call a line: `{"function": name, "arguments": {...}, "response": ...}`.
  `function` must be one of the tools; `response` may be any JSON value, null included, but must be
  present (a call without a recorded answer cannot be replayed).
- templates (optional): the `workflow_templates.json` form, read by `booking.load_templates`.
- tasks (optional): the `tasks.jsonl` form, read by `booking.load_tasks`.

`save_ecosystem` writes the reverse: a folder with `tools.jsonl`, `tasks.jsonl` and `calls.jsonl`
that loads again with `load_ecosystem` and works as `data.root`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from orchestra.data.booking import (Ecosystem, cache_entries_from_tasks, load_exact_match_values, load_tasks,
                                    load_templates)
from orchestra.data.errors import DataError
from orchestra.data.io import read_jsonl, require
from orchestra.data.schemas import load_tools
from orchestra.data.serialize import write_jsonl, write_tasks_jsonl
from orchestra.data.types import CacheEntry, ToolSpec
# The cache's own notion of "the same call"; canonical.py depends on nothing in orchestra.
from orchestra.data.canonical import canonical_key


def load_calls(path: str | os.PathLike, tools: dict[str, ToolSpec] | None = None) -> list[CacheEntry]:
    """Recorded calls from a JSONL file; with `tools`, each function must be one of them."""
    path = os.fspath(path)
    entries = []
    for line, obj in read_jsonl(path):
        function = require(obj, "function", str, path=path, line=line)
        if tools is not None and function not in tools:
            raise DataError(f"unknown function '{function}' (not in the tool schemas)", path=path, line=line,
                            field="function")
        arguments = require(obj, "arguments", dict, path=path, line=line)
        if "response" not in obj:
            raise DataError("missing", path=path, line=line, field="response")
        entries.append(CacheEntry(function, arguments, obj["response"]))
    return entries


def load_ecosystem(tools_path: str | os.PathLike, calls_path: str | os.PathLike,
                   templates_path: str | os.PathLike | None = None,
                   tasks_path: str | os.PathLike | None = None,
                   exact_match_path: str | os.PathLike | None = None) -> Ecosystem:
    """Everything validated before anything is returned.

    `cache_entries` are the recorded calls followed by the tasks' recorded gold calls (duplicates
    kept; the environment's cache dedups by canonical key). `root` is the folder of `tools_path`.
    """
    tools = load_tools(tools_path)
    entries = load_calls(calls_path, tools)
    templates = load_templates(templates_path) if templates_path is not None else []
    for w_i, t in enumerate(templates):  # load_templates keeps the file's order
        for k, s in enumerate(t.steps):
            if s.function not in tools:
                raise DataError(f"unknown function '{s.function}' (not in the tool schemas)",
                                path=os.fspath(templates_path), field=f"workflows[{w_i}].dependencies.{k}.function")
    tasks = load_tasks(tasks_path, tools) if tasks_path is not None else []
    exact = load_exact_match_values(exact_match_path) if exact_match_path is not None else {}
    root = os.path.dirname(os.path.abspath(os.fspath(tools_path)))
    return Ecosystem(root, tools, tasks, templates, entries + cache_entries_from_tasks(tasks), exact)


def dedup_entries(entries: Iterable[CacheEntry]) -> list[CacheEntry]:
    """Entries without repeats of the same call (canonical key) with the same response. The same call
    recorded with different responses keeps every response: which one wins is the cache's choice."""
    seen, out = set(), []
    for e in entries:
        key = (canonical_key(e.function, e.arguments), json.dumps(e.response, sort_keys=True))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def write_calls_jsonl(entries: Iterable[CacheEntry], path: str | os.PathLike) -> None:
    """The calls file `load_calls` reads, written atomically (every entry, in order)."""
    write_jsonl(({"function": e.function, "arguments": e.arguments, "response": e.response} for e in entries), path)


def save_ecosystem(eco: Ecosystem, out_dir: str | os.PathLike) -> None:
    """`tools.jsonl`, `tasks.jsonl` and `calls.jsonl` (repeats dropped, see `dedup_entries`) in `out_dir`.

    Templates and exact-match values are not written. Each file is written to a temporary name and
    renamed, so no file is ever half-written.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    write_jsonl((t.to_json() for t in eco.tools.values()), os.path.join(out_dir, "tools.jsonl"))
    write_tasks_jsonl(eco.tasks, os.path.join(out_dir, "tasks.jsonl"))
    write_calls_jsonl(dedup_entries(eco.cache_entries), os.path.join(out_dir, "calls.jsonl"))
