"""Records back to JSON: the inverse of the loaders, and writes that never leave a file half-written.

`task_to_json` produces exactly the line format of `tasks.jsonl` (so `booking.parse_task` reads it
back to an equal `Task`); on the real Booking tasks the serialised line is byte-identical to the
original one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable

from orchestra.data.types import Task


def task_to_json(task: Task, *, with_id: bool = True) -> dict:
    """One `tasks.jsonl` record. `overall_success` is derived: every step succeeded."""
    steps = []
    for s in task.steps:
        steps.append({
            "step": s.index,
            "ground_truth": {"function": s.call.function, "arguments": s.call.arguments},
            "candidate_tools": list(s.candidate_tools),
            "depends_on": list(s.depends_on),
            "execution_result": {"step": s.index, "function": s.call.function, "arguments": s.call.arguments,
                                 "execution_result": s.response, "success": s.success},
        })
    record = {"id": task.task_id} if with_id else {}
    record.update({
        "query": task.query,
        "workflow_id": task.workflow_id,
        "workflow_pattern": list(task.pattern),
        "steps": steps,
        "overall_success": all(s.success for s in task.steps),
        "metadata": task.metadata,
    })
    return record


def dumps_line(obj) -> str:
    """One JSONL line, in the style of the Booking files (non-ASCII kept as is)."""
    return json.dumps(obj, ensure_ascii=False)


def write_jsonl(rows: Iterable, path: str | os.PathLike) -> None:
    """Write one JSON value a line, atomically (see `atomic_writer`)."""
    with atomic_writer(path) as f:
        for row in rows:
            f.write(dumps_line(row))
            f.write("\n")


def write_tasks_jsonl(tasks: Iterable[Task], path: str | os.PathLike, *, with_id: bool = True) -> None:
    write_jsonl((task_to_json(t, with_id=with_id) for t in tasks), path)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike):
    """A text file opened under a temporary name beside `path` and renamed onto it only when the
    block finishes without error, so a reader never sees a partial file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
