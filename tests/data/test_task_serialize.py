"""`task_to_json` is the inverse of `parse_task`, byte for byte on the real tasks."""

import dataclasses
import os

import pytest

from orchestra.data.booking import load_tasks, parse_task
from orchestra.data.io import read_jsonl
from orchestra.data.serialize import dumps_line, task_to_json, write_tasks_jsonl


def test_real_task_lines_are_reproduced_exactly(booking):
    path = os.path.join(booking.root, "tasks.jsonl")
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    rows = list(read_jsonl(path))
    assert len(lines) == len(rows) == 81
    for text, (number, obj) in zip(lines, rows):
        task = parse_task(obj, task_id=f"t{number}", path=path, line=number)
        assert dumps_line(task_to_json(task, with_id=False)) == text


def test_tasks_survive_write_and_load_with_their_ids(booking, tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_tasks_jsonl(booking.tasks, path)
    assert load_tasks(path, booking.tools) == booking.tasks
    assert not [p for p in os.listdir(tmp_path) if p != "tasks.jsonl"]


def test_failed_write_leaves_the_old_file_untouched(booking, tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_tasks_jsonl(booking.tasks[:2], path)
    before = path.read_bytes()
    broken = dataclasses.replace(booking.tasks[2], metadata={"x": object()})  # json cannot encode it
    with pytest.raises(TypeError):
        write_tasks_jsonl([booking.tasks[0], broken], path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["tasks.jsonl"]
