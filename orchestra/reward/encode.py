"""Calls and gold traces as fixed-shape arrays, the input of the vectorised reward (host side).

A parameter's id is its index in its function's schema (`RewardVocab.slots`): a call's value for
`checkin_date` sits in the same slot as the gold value of `checkin_date`, so the device compares
slot by slot and never searches names. Parameters outside the function's schema cannot match a gold
parameter (gold parameters are checked to be in the schema), so for them only the count is kept.

Per parameter slot: a type id, 0 when the parameter is absent (int and float share "number", so they
are compatible). Per call: the 64-bit hash (two uint32 words) of its arguments in BFCL's normal form:
null values dropped, strings standardised, numbers as floats (1 and 1.0 hash alike; integers beyond
2**53 lose precision), lists and objects normalised element by element, keys sorted. The value
level of the AST score asks whether *all* values are exactly right with no parameter missing or
extra, which is exactly the equality of these normal forms: one [C, S] comparison of hashes
replaces a [C, S, P] comparison of per-parameter hashes, which was the largest device cost. Two
values are equal exactly when the reference's `values_equal` says so (up to hash collisions,
astronomically unlikely with 64 bits; NaN, which JSON does not allow but Python's parser accepts,
is the one value that hashes equal to itself yet compares unequal).

Function ids: 0 is padding, 1 an unknown name or an unusable block (it matches no gold step), known
functions start at 2. Call rows follow the rollout's `<tool_call>` blocks one to one (row k is
block k, as in the environment's call slots); a dropped (unparsable) block is a row with
`mask=False`, so it counts nowhere and positions still order the calls. With `count_unparsable`
(`RewardConfig.count_unparsable`) such a block is an unknown-function row instead: a call scoring 0.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import jax
import numpy as np

from orchestra.data.types import Task, ToolSpec
from orchestra.data.canonical import hash64, split_hash
from orchestra.env.codec import ParsedCall
from orchestra.reward.reference import (counts_as_call, given_arguments, number_value, parse_rollout,
                                        reward_call, standardise_string, value_type)

PAD_FUNCTION = 0
UNKNOWN_FUNCTION = 1
FIRST_FUNCTION_ID = 2
TYPE_IDS = {"null": 1, "boolean": 2, "number": 3, "string": 4, "array": 5, "object": 6}  # 0: absent


@dataclasses.dataclass(frozen=True)
class RewardVocab:
    """Function ids and per-function parameter slots, from the tool schemas."""
    function_ids: Mapping[str, int]
    slots: Mapping[str, Mapping[str, int]]  # function -> parameter -> slot
    max_params: int                         # the most parameters any schema has

    @classmethod
    def from_tools(cls, tools: Mapping[str, ToolSpec] | Iterable[ToolSpec]) -> RewardVocab:
        specs = list(tools.values()) if isinstance(tools, Mapping) else list(tools)
        names = [s.name for s in specs]
        if not specs:
            raise ValueError("RewardVocab needs at least one tool schema")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate tool names in the schemas: {sorted({n for n in names if names.count(n) > 1})}")
        specs.sort(key=lambda s: s.name)  # ids independent of the order the schemas come in
        function_ids = {s.name: FIRST_FUNCTION_ID + i for i, s in enumerate(specs)}
        slots = {s.name: {p: j for j, p in enumerate(s.param_names)} for s in specs}
        return cls(function_ids, slots, max(1, max(len(s.parameters) for s in specs)))

    def function_id(self, name: str) -> int:
        return self.function_ids.get(name, UNKNOWN_FUNCTION)


class EncodedCalls(NamedTuple):
    """The calls of a rollout, [max_calls, ...] (a leading batch axis once stacked)."""
    function: np.ndarray    # [C] int32
    mask: np.ndarray        # [C] bool: the row is a call the reward counts
    success: np.ndarray     # [C] bool: its own execution succeeded
    n_params: np.ndarray    # [C] int32: parameters given (null values excluded), in the schema or not
    type_id: np.ndarray     # [C, P] int8 per schema slot, 0 when absent
    args_hash: np.ndarray   # [C, 2] uint32 words of the hash of the normalised arguments


class EncodedGold(NamedTuple):
    """The gold trace of a task, [max_steps, ...] (a leading batch axis once stacked)."""
    function: np.ndarray    # [S] int32
    mask: np.ndarray        # [S] bool: the row is a gold step
    success: np.ndarray     # [S] bool: the recorded execution succeeded
    n_params: np.ndarray    # [S] int32
    type_id: np.ndarray     # [S, P] int8 per schema slot, 0 when absent
    args_hash: np.ndarray   # [S, 2] uint32
    depends: np.ndarray     # [S, S] bool: depends[i, j] when step i depends on step j


def bfcl_normal_form(value):
    """The value as BFCL compares it: strings standardised, numbers as floats, recursively."""
    kind = value_type(value)
    if kind == "number":
        return number_value(value) + 0.0  # + 0.0 turns -0.0 into 0.0, which compares equal to it
    if kind == "string":
        return standardise_string(value)
    if kind == "array":
        return [bfcl_normal_form(v) for v in value]
    if kind == "object":
        return {k: bfcl_normal_form(v) for k, v in value.items()}
    return value


def value_hash_words(value) -> tuple[int, int]:
    """The (high, low) uint32 words of the 64-bit hash of a value's BFCL normal form (for the
    arguments of a call, the object of its non-null arguments)."""
    # ASCII escapes keep lone surrogates (which json.loads accepts) encodable.
    text = json.dumps(bfcl_normal_form(value), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return split_hash(hash64(text))


def _empty(rows: int, P: int, with_depends: bool):
    arrays = dict(function=np.zeros(rows, np.int32), mask=np.zeros(rows, bool), success=np.zeros(rows, bool),
                  n_params=np.zeros(rows, np.int32), type_id=np.zeros((rows, P), np.int8),
                  args_hash=np.zeros((rows, 2), np.uint32))
    if with_depends:
        arrays["depends"] = np.zeros((rows, rows), bool)
    return arrays


def _write_arguments(arrays: dict, row: int, slots: Mapping[str, int], given: dict, where: str | None) -> None:
    """Fill row's parameter slots and hash; a parameter outside the schema is an error when `where`
    names the gold step, and only counted (and hashed) for a model call."""
    arrays["n_params"][row] = len(given)
    arrays["args_hash"][row] = value_hash_words(given)
    for name, value in given.items():
        slot = slots.get(name)
        if slot is None:
            if where is not None:
                raise ValueError(f"{where}: parameter {name!r} is not in the function's schema")
            continue
        arrays["type_id"][row, slot] = TYPE_IDS[value_type(value)]


def encode_calls(parsed_calls: Sequence[ParsedCall], successes: Sequence[bool], vocab: RewardVocab,
                 max_calls: int, count_unparsable: bool = False) -> EncodedCalls:
    """The calls of one rollout: every `<tool_call>` block in order (as `parse_tool_calls` gives
    them) with whether its execution succeeded (the environment's flag). Pure host function."""
    if len(parsed_calls) != len(successes):
        raise ValueError(f"encode_calls: {len(parsed_calls)} calls but {len(successes)} success flags")
    if len(parsed_calls) > max_calls:
        raise ValueError(f"encode_calls: the rollout has {len(parsed_calls)} tool-call blocks, more than "
                         f"max_calls={max_calls}; raise max_calls to cover every block the policy may write")
    arrays = _empty(max_calls, vocab.max_params, with_depends=False)
    for row, (parsed, success) in enumerate(zip(parsed_calls, successes)):
        if not counts_as_call(parsed, count_unparsable):
            continue
        arrays["mask"][row] = True
        arrays["success"][row] = bool(success)
        call = reward_call(parsed)
        if call is None:
            arrays["function"][row] = UNKNOWN_FUNCTION
            continue
        arrays["function"][row] = vocab.function_id(call.function)
        _write_arguments(arrays, row, vocab.slots.get(call.function, {}), given_arguments(call.arguments), None)
    return EncodedCalls(**arrays)


def encode_rollout(text: str, vocab: RewardVocab, max_calls: int, count_unparsable: bool = False) -> EncodedCalls:
    """The calls of a rollout text (the form `reference.render_rollout` writes)."""
    blocks = parse_rollout(text)
    return encode_calls([b for b, _ in blocks], [s for _, s in blocks], vocab, max_calls, count_unparsable)


def encode_task(task: Task, vocab: RewardVocab, max_steps: int) -> EncodedGold:
    """The gold trace of a task; a function or parameter outside the schemas is an error."""
    if len(task.steps) > max_steps:
        raise ValueError(f"task {task.task_id}: {len(task.steps)} gold steps, more than max_steps={max_steps}")
    arrays = _empty(max_steps, vocab.max_params, with_depends=True)
    for i, step in enumerate(task.steps):
        where = f"task {task.task_id}, step {i} ({step.call.function})"
        if step.call.function not in vocab.function_ids:
            raise ValueError(f"{where}: function not in the tool schemas")
        arrays["function"][i] = vocab.function_ids[step.call.function]
        arrays["mask"][i] = True
        arrays["success"][i] = step.success
        _write_arguments(arrays, i, vocab.slots[step.call.function], given_arguments(step.call.arguments), where)
        for j in step.depends_on:
            if not 0 <= j < i:
                raise ValueError(f"{where}: depends on step {j}, which is not an earlier step")
            arrays["depends"][i, j] = True
    return EncodedGold(**arrays)


def stack(items: Sequence[EncodedCalls] | Sequence[EncodedGold]):
    """Rollouts (or tasks) stacked along a new leading batch axis."""
    return jax.tree.map(lambda *xs: np.stack(xs), *items)
