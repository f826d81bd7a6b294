"""Import ComplexFuncBench's official JSONL into tasks, tool schemas and recorded calls.

A line of the official file:
- `id`: the sample's id (becomes `Task.task_id`);
- `conversations`: turns with `role` user / assistant / observation. The user turn holds the query.
  An assistant turn holds either `function_call`, a list of `{"name", "arguments"}` (the calls of one
  turn, made in parallel), or `content`, the final text answer. The observation turn after a call
  turn holds `content`, a list of responses aligned one-to-one with those calls;
- `functions`: the tool schemas offered (`{"name", "description", "parameters"}`).

Each sample becomes a `Task` with one `Step` per call in conversation order, every offered function
as a candidate tool, and `metadata = {"source", "turns", "final_answer"}` where `turns[i]` is the
number of the call turn step i was made in (parallel calls share it). Every call also becomes a
`CacheEntry`. Function names are kept exactly as given (`Get_Hotel_Reviews(Tips)` included).

A step succeeded when its response is not empty, has no `error` key and no `status: false`.

Dependencies are not in the data; they are inferred from values. Step j depends on an earlier step
i when i was made in an earlier turn (calls of one turn are parallel, so they cannot feed each
other) and some value in j's arguments also occurs in i's response. Values are the string and
number leaves of the JSON, normalised like the cache key (numeric strings become numbers), strings
also trimmed and case-folded. A float argument written with at least 3 decimals also matches a
response number that rounds to it (APIs hand out 32.8967018127441, queries use 32.8967). To keep
coincidences out, these argument values are ignored: booleans, strings shorter than 3 characters,
whole numbers below 10 in size (counts, page numbers), and values of parameters declared with an
`enum` (they come from the schema, not from a response). On the 81 Booking tasks, which come with
annotated dependencies, this finds 208 of the 221 annotated edges and adds 26 others (mostly a
free-text `query` that also names a place in an earlier response); the tests hold it to 90% / 85%.

Command: `python -m orchestra.data.complexfuncbench INPUT.jsonl OUT_DIR` writes `tools.jsonl`,
`tasks.jsonl` and `calls.jsonl`; the folder loads with `load_ecosystem`, `load_tasks`, and as
`data.root`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from orchestra.data.booking import Ecosystem
from orchestra.data.ecosystem import save_ecosystem
from orchestra.data.errors import DataError
from orchestra.data.io import read_jsonl, require
from orchestra.data.schemas import parse_tool
from orchestra.data.types import Call, CacheEntry, Step, Task, ToolSpec, response_succeeded
from orchestra.data.canonical import normalise_value

SOURCE = "ComplexFuncBench"
_MIN_STRING = 3     # shorter strings ("US", "en") are too common to mean anything
_MIN_WHOLE = 10     # smaller whole numbers are counts, not values handed on
_MIN_DECIMALS = 3   # a float with this many decimals is a coordinate or a price, worth rounding to


# ---- dependency inference ------------------------------------------------------------------------

def _leaves(value):
    """String and number leaves of a JSON value (booleans and nulls are never handed on)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield value


def _norm(value):
    value = normalise_value(value)
    return value.strip().casefold() if isinstance(value, str) else value


def _decimals(x: float) -> int:
    text = repr(x)
    return 0 if "e" in text or "." not in text else len(text.split(".")[1])


class _ResponseValues:
    """The normalised leaves of one response, with float roundings computed on demand."""

    def __init__(self, response):
        self.values = {_norm(v) for v in _leaves(response)}
        self.floats = [v for v in self.values if isinstance(v, float)]
        self.rounded: dict[int, set[float]] = {}

    def __contains__(self, v) -> bool:
        if v in self.values:
            return True
        if isinstance(v, float) and (d := _decimals(v)) >= _MIN_DECIMALS:
            if d not in self.rounded:
                self.rounded[d] = {round(x, d) for x in self.floats}
            return v in self.rounded[d]
        return False


def _argument_values(arguments: dict, tool: ToolSpec | None) -> list:
    out = []
    for name, value in arguments.items():
        param = tool.param(name) if tool is not None else None
        if param is not None and param.enum:
            continue
        for v in map(_norm, _leaves(value)):
            if isinstance(v, str) and len(v) < _MIN_STRING:
                continue
            if not isinstance(v, str) and float(v).is_integer() and abs(v) < _MIN_WHOLE:
                continue
            out.append(v)
    return out


def infer_dependencies(calls: Sequence[Call], responses: Sequence, turns: Sequence[int],
                       tools: dict[str, ToolSpec] | None = None) -> list[tuple[int, ...]]:
    """For each call, the earlier calls (of earlier turns) whose response holds one of its argument
    values; see the module docstring for what counts as a value."""
    found = [_ResponseValues(r) for r in responses]
    out = []
    for j, call in enumerate(calls):
        values = _argument_values(call.arguments, (tools or {}).get(call.function))
        out.append(tuple(i for i in range(j) if turns[i] < turns[j] and any(v in found[i] for v in values)))
    return out


# ---- one sample ----------------------------------------------------------------------------------

def _relocated(e: DataError, *, path: str, line: int, prefix: str) -> DataError:
    """`e` (raised without a location) again, at `path:line` with its field under `prefix`."""
    field = prefix + e.field if e.field else prefix.rstrip(".")
    return DataError(e.message, path=path, line=line, field=field)


def _parse_arguments(raw, *, path: str, line: int, field: str) -> dict:
    if isinstance(raw, str):  # OpenAI-style arguments: a JSON-encoded object
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"arguments string is not valid JSON ({e.msg})", path=path, line=line,
                            field=field) from None
    if not isinstance(raw, dict):
        raise DataError(f"expected an object, got {type(raw).__name__}", path=path, line=line, field=field)
    return raw


def parse_sample(obj: dict, *, path: str = "<memory>", line: int | None = None) -> tuple[Task, list[ToolSpec]]:
    """One line of the official file: the task and the tool schemas it offers."""
    raw_id = require(obj, "id", (str, int), path=path, line=line)
    functions = require(obj, "functions", list, path=path, line=line)
    offered: dict[str, ToolSpec] = {}
    for k, f in enumerate(functions):
        if not isinstance(f, dict):
            raise DataError("expected a tool schema object", path=path, line=line, field=f"functions[{k}]")
        try:
            tool = parse_tool(f, path=None, line=None)
        except DataError as e:
            raise _relocated(e, path=path, line=line, prefix=f"functions[{k}].") from None
        if tool.name in offered:
            raise DataError(f"tool '{tool.name}' is offered twice", path=path, line=line, field=f"functions[{k}].name")
        offered[tool.name] = tool

    convs = require(obj, "conversations", list, path=path, line=line)
    query = final_answer = None
    calls, responses, turns = [], [], []
    pending = None  # (turn index, calls) of a call turn still waiting for its observation
    for k, turn in enumerate(convs):
        pre = f"conversations[{k}]."
        if not isinstance(turn, dict):
            raise DataError("expected an object", path=path, line=line, field=pre[:-1])
        role = require(turn, "role", str, path=path, line=line, prefix=pre)
        if pending is not None and role != "observation":
            raise DataError(f"the calls of conversations[{pending[0]}] need an observation turn next",
                            path=path, line=line, field=pre + "role")
        if role == "user":
            if query is not None:
                raise DataError("a second user turn (only single-query samples are supported)",
                                path=path, line=line, field=pre + "role")
            query = require(turn, "content", str, path=path, line=line, prefix=pre)
        elif role == "assistant" and "function_call" in turn:
            raw_calls = require(turn, "function_call", list, path=path, line=line, prefix=pre)
            if not raw_calls:
                raise DataError("empty list of calls", path=path, line=line, field=pre + "function_call")
            turn_calls = []
            for m, c in enumerate(raw_calls):
                cpre = f"{pre}function_call[{m}]."
                if not isinstance(c, dict):
                    raise DataError("expected an object", path=path, line=line, field=cpre[:-1])
                name = require(c, "name", str, path=path, line=line, prefix=cpre)
                if name not in offered:
                    raise DataError(f"unknown function '{name}' (not among the sample's functions)",
                                    path=path, line=line, field=cpre + "name")
                if "arguments" not in c:
                    raise DataError("missing", path=path, line=line, field=cpre + "arguments")
                turn_calls.append(Call(name, _parse_arguments(c["arguments"], path=path, line=line,
                                                              field=cpre + "arguments")))
            pending = (k, turn_calls)
        elif role == "assistant":
            final_answer = require(turn, "content", str, path=path, line=line, prefix=pre)
        elif role == "observation":
            if pending is None:
                raise DataError("an observation with no call turn before it", path=path, line=line, field=pre + "role")
            content = require(turn, "content", list, path=path, line=line, prefix=pre)
            call_turn, turn_calls = pending
            if len(content) != len(turn_calls):
                raise DataError(f"{len(content)} responses for the {len(turn_calls)} calls of "
                                f"conversations[{call_turn}]", path=path, line=line, field=pre + "content")
            number = turns[-1] + 1 if turns else 0
            calls.extend(turn_calls)
            responses.extend(content)
            turns.extend([number] * len(turn_calls))
            pending = None
        else:
            raise DataError(f"unknown role '{role}' (expected user, assistant or observation)",
                            path=path, line=line, field=pre + "role")
    if pending is not None:
        raise DataError("the last call turn has no observation", path=path, line=line,
                        field=f"conversations[{pending[0]}]")
    if query is None:
        raise DataError("no user turn", path=path, line=line, field="conversations")
    if not calls:
        raise DataError("no function calls", path=path, line=line, field="conversations")

    depends = infer_dependencies(calls, responses, turns, offered)
    candidates = tuple(offered)
    steps = tuple(Step(i, c, depends[i], r, response_succeeded(r), candidates)
                  for i, (c, r) in enumerate(zip(calls, responses)))
    metadata = {"source": SOURCE, "turns": turns, "final_answer": final_answer}
    return Task(str(raw_id), query, steps, candidates, None, metadata), list(offered.values())


def load_complexfuncbench(path: str | os.PathLike) -> Ecosystem:
    """The whole file: tasks, the union of offered tool schemas, and a cache entry per call.

    The same tool name offered with two different schemas, or the same id twice, is an error that
    names both lines.
    """
    path = os.fspath(path)
    tools: dict[str, tuple[ToolSpec, int]] = {}
    ids: dict[str, int] = {}
    tasks = []
    for line, obj in read_jsonl(path):
        task, offered = parse_sample(obj, path=path, line=line)
        if task.task_id in ids:
            raise DataError(f"id '{task.task_id}' is also used on line {ids[task.task_id]}", path=path, line=line,
                            field="id")
        ids[task.task_id] = line
        for k, tool in enumerate(offered):
            if tool.name in tools and tools[tool.name][0] != tool:
                raise DataError(f"tool '{tool.name}' has a different schema here than on line {tools[tool.name][1]}",
                                path=path, line=line, field=f"functions[{k}]")
            tools.setdefault(tool.name, (tool, line))
        tasks.append(task)
    entries = [CacheEntry(s.call.function, s.call.arguments, s.response) for t in tasks for s in t.steps]
    root = os.path.dirname(os.path.abspath(path))
    return Ecosystem(root, {name: t for name, (t, _) in tools.items()}, tasks, [], entries, {})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestra.data.complexfuncbench",
        description="Convert ComplexFuncBench's JSONL into tools.jsonl, tasks.jsonl and calls.jsonl.")
    parser.add_argument("input", help="the official ComplexFuncBench .jsonl file")
    parser.add_argument("out_dir", help="folder to write (created if missing)")
    args = parser.parse_args(argv)
    try:
        eco = load_complexfuncbench(args.input)  # everything is parsed before anything is written
        save_ecosystem(eco, args.out_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_steps = sum(len(t.steps) for t in eco.tasks)
    print(f"wrote {len(eco.tools)} tools, {len(eco.tasks)} tasks ({n_steps} calls) to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
