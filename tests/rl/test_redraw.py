"""Redrawn RL tasks: new values, the same everywhere they appear, answered by the environment, never
a forbidden value, dates moved together, and no redraw that would contradict a recorded call."""

import dataclasses
import datetime
import json

import numpy as np
import pytest

from orchestra.data.types import Call, Step, Task
from orchestra.env.config import environment_from_config
from orchestra.rl.curriculum import ValueMaker
from orchestra.rl.redraw import redraw_task, redrawn_tasks
from orchestra.synth import task_values
from orchestra.synth.index import value_strings


@pytest.fixture(scope="module")
def redrawn(booking):
    forbidden = task_values(booking.tasks[0])
    tasks, entries = redrawn_tasks(booking.tasks, booking.tools, 2, forbidden, seed=0, known=booking.cache_entries)
    return forbidden, tasks, entries


def step_pairs(originals, tasks):
    """(redrawn task, its original, original step, redrawn step) for every step of every redraw."""
    by_id = {t.task_id: t for t in originals}
    for task in tasks:
        old = by_id[task.metadata["redrawn_from"]]
        for old_step, step in zip(old.steps, task.steps):
            yield task, old, old_step, step


def test_most_tasks_get_their_redraws_and_every_redraw_is_new(booking, redrawn):
    _, tasks, _ = redrawn
    sources = {t.metadata["redrawn_from"] for t in tasks}
    assert len(sources) >= 0.9 * len(booking.tasks) and len(tasks) <= 2 * len(booking.tasks)
    originals = {t.task_id: t for t in booking.tasks}
    for task in tasks:
        old = originals[task.metadata["redrawn_from"]]
        assert [s.call for s in task.steps] != [s.call for s in old.steps]


def test_a_redrawn_value_is_replaced_in_the_request_the_calls_and_the_responses(booking, redrawn):
    _, tasks, _ = redrawn
    checked = 0
    for task, old, old_step, step in step_pairs(booking.tasks, tasks):
        for name, value in old_step.call.arguments.items():
            new = step.call.arguments[name]
            if isinstance(value, str) and new != value and value in old.query:
                # the old text left the request, the new one came in where it stood
                assert new in task.query and value not in task.query.replace(new, "")
                checked += 1
    for task in tasks:
        # a value an earlier response gave is copied from the redrawn response
        for step in task.steps:
            for name, from_step, _ in step.dependency_args:
                value = step.call.arguments.get(name)
                if isinstance(value, str) and len(value) >= 2:
                    assert value in json.dumps(task.steps[from_step].response, ensure_ascii=False)
    assert checked > 50


def test_the_environment_answers_every_redrawn_gold_call(booking, redrawn):
    _, tasks, entries = redrawn
    eco = dataclasses.replace(booking, cache_entries=booking.cache_entries + entries)
    env, _ = environment_from_config({}, eco)
    success = env.replay([[s.call for s in t.steps] for t in tasks])
    for i, task in enumerate(tasks):
        assert success[i, : len(task.steps)].tolist() == [s.success for s in task.steps], task.task_id


def test_no_redrawn_value_is_a_forbidden_one(booking, redrawn):
    forbidden, tasks, _ = redrawn
    changed = 0
    for task, _, old_step, step in step_pairs(booking.tasks, tasks):
        for name, value in step.call.arguments.items():
            if value != old_step.call.arguments[name]:
                assert not set(value_strings(value)) & forbidden, (task.task_id, name, value)
                changed += 1
    assert changed > 100


def test_dates_move_by_one_shift_so_a_stay_keeps_its_length(booking, redrawn):
    _, tasks, _ = redrawn
    pairs = 0
    for _, _, old_step, step in step_pairs(booking.tasks, tasks):
        a, b = old_step.call.arguments, step.call.arguments
        if {"arrival_date", "departure_date"} <= a.keys() and a["arrival_date"] != b["arrival_date"]:
            nights = lambda d: (datetime.date.fromisoformat(d["departure_date"])
                                - datetime.date.fromisoformat(d["arrival_date"]))
            assert nights(a) == nights(b)
            pairs += 1
    assert pairs > 5


def test_a_value_shown_by_a_kept_calls_response_is_not_redrawn(booking):
    tool = next(t for t in booking.tools.values() if any(p.type == "string" and not p.enum for p in t.parameters))
    param = next(p.name for p in tool.parameters if p.type == "string" and not p.enum)
    # step 0's argument is not shown, so its call and its recorded response stay; that response
    # shows "Zanzibar", which therefore stays too, while "Qwerty" is redrawn
    task = Task("t", "find Zanzibar, then Qwerty", (
        Step(0, Call(tool.name, {param: "unshown-value"}), (), {"name": "Zanzibar Town"}, True),
        Step(1, Call(tool.name, {param: "Zanzibar"}), (0,), {"ok": 1}, True),
        Step(2, Call(tool.name, {param: "Qwerty"}), (1,), {"ok": 2}, True)), (tool.name,))
    new = redraw_task(task, booking.tools, ValueMaker(), np.random.default_rng(0), "t~0")
    assert [s.call for s in new.steps[:2]] == [s.call for s in task.steps[:2]]
    assert new.steps[0].response == task.steps[0].response
    assert new.steps[2].call.arguments[param] != "Qwerty" and new.query.startswith("find Zanzibar, then ")
    # with every value pinned so, nothing is left to redraw
    pinned = dataclasses.replace(task, steps=task.steps[:2])
    assert redraw_task(pinned, booking.tools, ValueMaker(), np.random.default_rng(0), "t~0") is None


def test_a_negative_number_of_redraws_is_an_error(booking):
    with pytest.raises(ValueError, match="redraws per task must not be negative"):
        redrawn_tasks(booking.tasks, booking.tools, -1, set(), seed=0)


def test_no_redraw_keeps_a_forbidden_value(booking):
    # the forbidden values are those of some source tasks, so a redraw of one that keeps one of its
    # values (an enum, a value pinned by a kept call's response) must be given up
    sources = booking.tasks[:20]
    forbidden = set().union(*map(task_values, sources))
    tasks, _ = redrawn_tasks(sources, booking.tools, 2, forbidden, seed=0, known=booking.cache_entries)
    assert tasks  # values that are not forbidden by their own task get redrawn
    for task in tasks:
        assert not task_values(task) & forbidden, task.task_id
