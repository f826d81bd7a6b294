"""Tasks with their values redrawn: RL tasks whose values no policy has seen, as many as wanted.

Held-out evaluation asks the policy to copy values it never saw. The synthesized tasks that share no
value with the evaluated ones are few (31 in the main job), so RL on them soon learns those tasks'
own values. A redrawn task is a synthesized task with every argument value the episode shows
(in the request or in a recorded response) replaced by a random value of the same shape, the same
way in the request, every call and every recorded response, so the task stays solvable by copying
and by nothing else. Its gold calls, with the redrawn responses, become new cache entries: the
environment answers them like any recorded call.

    forbidden = set().union(*map(task_values, evaluated_tasks))     # orchestra.synth.task_values
    tasks, entries = redrawn_tasks(train_tasks, eco.tools, count=4, forbidden=forbidden, seed=0,
                                   known=eco.cache_entries)
    eco = dataclasses.replace(eco, cache_entries=eco.cache_entries + entries)

A call whose arguments the redraw leaves as they were (an enum, a value the episode does not show
in the same form) keeps its recorded response, so the values that response shows are not redrawn:
the cache holds one response per call. A redraw is given up (and drawn again, a few times) when
nothing is left to redraw, when a redrawn call is already in the cache, or when the redraw still
uses a forbidden value (an enum, or a value a kept call pins: a source task that is neither trained
on nor evaluated may share values with the evaluated tasks).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from orchestra.data.canonical import canonical_key
from orchestra.data.types import CacheEntry, Task, ToolSpec
from orchestra.rl.curriculum import ISO_DATE, ValueMaker, occurs_alone, redraw_map, redraw_pattern
from orchestra.synth.pipeline import task_values
from orchestra.synth.realise import format_value

MAX_VALUE_CHARS = 4096  # ids and tokens of any length are redrawn (a kept token would pin what its response shows)


def _shown_text(task: Task) -> str:
    return "\n".join([task.query] + [json.dumps(s.response, ensure_ascii=False) for s in task.steps])


def _swap(value, pattern: re.Pattern, new_text: Mapping[str, str]):
    """`value` with every redrawn text replaced: inside strings, and whole numbers by number."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return pattern.sub(lambda m: new_text[m.group(0)], value)
    if isinstance(value, int | float):
        text = format_value(value)
        return json.loads(new_text[text]) if text in new_text else value
    if isinstance(value, list):
        return [_swap(v, pattern, new_text) for v in value]
    if isinstance(value, dict):
        return {k: _swap(v, pattern, new_text) for k, v in value.items()}
    return value


def redraw_task(task: Task, tools: Mapping[str, ToolSpec], values: ValueMaker, rng: np.random.Generator,
                task_id: str) -> Task | None:
    """`task` with its shown argument values redrawn consistently, or None when nothing can be
    redrawn (see the module's docstring)."""
    new_text = redraw_map(task, tools, _shown_text(task), values, rng, MAX_VALUE_CHARS)
    # Dates move together, by one shift, so a stay or a trip keeps its order and length.
    shift = datetime.timedelta(days=int(rng.integers(-730, 731)))
    for text in [t for t in new_text if ISO_DATE.fullmatch(t)]:
        try:
            moved = (datetime.date.fromisoformat(text) + shift).isoformat()
        except ValueError:
            continue
        if values.allowed(moved):
            new_text[text] = moved
        else:
            del new_text[text]
    if not new_text:
        return None
    # A call left as it was keeps its recorded response, so the values that response shows stay too.
    while True:
        pattern = redraw_pattern(new_text)
        steps = [dataclasses.replace(s, call=dataclasses.replace(s.call, arguments=_swap(s.call.arguments, pattern,
                                                                                        new_text)))
                 for s in task.steps]
        kept = "\n".join(json.dumps(s.response, ensure_ascii=False) for s, old in zip(steps, task.steps)
                         if s.call == old.call)
        pinned = {t for t in new_text if occurs_alone(t, kept)}
        if not pinned:
            break
        new_text = {t: v for t, v in new_text.items() if t not in pinned}
        if not new_text:
            return None
    steps = [dataclasses.replace(s, response=_swap(s.response, pattern, new_text)) for s in steps]
    metadata = {**(task.metadata if isinstance(task.metadata, dict) else {}), "redrawn_from": task.task_id}
    return dataclasses.replace(task, task_id=task_id, query=pattern.sub(lambda m: new_text[m.group(0)], task.query),
                               steps=tuple(steps), metadata=metadata)


def redrawn_tasks(tasks: Sequence[Task], tools: Mapping[str, ToolSpec], count: int, forbidden: Iterable[str],
                  seed: int, known: Iterable[CacheEntry] = (), tries: int = 5) -> tuple[list[Task], list[CacheEntry]]:
    """Up to `count` redraws of each task (values never in `forbidden`), and the cache entries of
    their gold calls. A redrawn call already among `known` entries is a failed try."""
    if count < 0:
        raise ValueError(f"redraws per task must not be negative, got {count}")
    forbidden = set(forbidden)
    values = ValueMaker(forbidden)
    taken = {canonical_key(e.function, e.arguments) for e in known}
    rng = np.random.default_rng([seed, 7])  # a stream of its own, apart from the run's other draws of `seed`
    out: list[Task] = []
    for task in tasks:
        made = 0
        for _ in range(count * tries):
            if made == count:
                break
            new = redraw_task(task, tools, values, rng, f"{task.task_id}~redraw{made}")
            if new is None or task_values(new) & forbidden:
                continue
            keys = {canonical_key(s.call.function, s.call.arguments) for s, old in zip(new.steps, task.steps)
                    if s.response is not None and s.call != old.call}
            if keys & taken:
                continue
            taken |= keys
            out.append(new)
            made += 1
    entries = [CacheEntry(s.call.function, s.call.arguments, s.response)
               for t in out for s in t.steps if s.response is not None]
    return out, entries
