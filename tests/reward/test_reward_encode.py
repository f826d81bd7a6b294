"""The host encoder (vocabulary, rows, errors) and the jitted batch reward's compilation count."""

import dataclasses

import jax
import numpy as np
import pytest

from orchestra.data.types import Call, Step, Task
from orchestra.env.codec import parse_tool_calls
from orchestra.reward import (RewardConfig, RewardVocab, encode_calls, encode_rollout, encode_task, make_reward_fn,
                              render_rollout, stack)
from orchestra.reward.encode import FIRST_FUNCTION_ID, UNKNOWN_FUNCTION
from orchestra.reward.graduated import TRACES

OK = {"status": True}


def test_the_vocabulary_numbers_functions_by_name_and_parameters_by_schema_slot(booking):
    vocab = RewardVocab.from_tools(booking.tools)
    names = sorted(booking.tools)
    assert [vocab.function_id(n) for n in names] == list(range(FIRST_FUNCTION_ID, FIRST_FUNCTION_ID + len(names)))
    assert vocab.function_id("Not_A_Tool") == UNKNOWN_FUNCTION
    assert vocab.max_params == max(len(t.parameters) for t in booking.tools.values())
    hotels = booking.tools["Search_Hotels"]
    assert list(vocab.slots["Search_Hotels"]) == list(hotels.param_names)


def test_rows_follow_blocks_and_a_dropped_block_keeps_its_row(booking, vocab):
    step = booking.tasks[0].steps[0]
    text = render_rollout([("{broken", OK), (step.call, OK), ('"just a string"', OK)])
    calls = encode_rollout(text, vocab, max_calls=4)
    assert calls.mask.tolist() == [False, True, True, False]
    assert calls.function[1] == vocab.function_id(step.call.function)
    assert calls.function[2] == UNKNOWN_FUNCTION and calls.success.tolist() == [False, True, False, False]


def test_counting_unparsable_blocks_scores_them_as_calls_worth_zero(booking, vocab, score):
    # a task whose functions do not repeat scores 1.0 in paper mode
    task = next(t for t in booking.tasks if len({s.call.function for s in t.steps}) == len(t.steps) >= 2)
    n = len(task.steps)
    items = [(s.call, OK) for s in task.steps]
    cut_off = '{"name": "' + task.steps[1].call.function + '", "arguments": {"x": "1111'
    text = render_rollout(items[:1] + [(cut_off, OK)] + items[1:])
    [dropped] = score([text], [task], RewardConfig(), vocab)
    [counted] = score([text], [task], RewardConfig(count_unparsable=True), vocab)
    assert (dropped.reward, dropped.atomic, dropped.binary) == (1.0, 1.0, 1.0)
    # one more call in the atomic means, scoring 0 on both levels; a call beyond the gold ones fails binary
    assert counted.atomic == pytest.approx(n / (n + 1)) and counted.orch == 1.0 and counted.binary == 0.0
    assert counted.reward == pytest.approx(0.5 * n / (n + 1) + 0.5)
    encoded = encode_rollout(text, vocab, max_calls=8, count_unparsable=True)
    assert encoded.mask[:n + 2].tolist() == [True] * (n + 1) + [False]
    assert encoded.function[1] == UNKNOWN_FUNCTION and not encoded.success[1]


def test_parameters_outside_the_schema_are_counted_but_not_stored(booking, vocab):
    call = Call("Search_Hotels", {"dest_id": "-2092174", "not_a_parameter": 1, "page_number": None})
    [parsed] = parse_tool_calls(render_rollout([(call, OK)]))
    calls = encode_calls([parsed], [True], vocab, max_calls=1)
    assert calls.n_params[0] == 2  # the null value is absent
    assert (calls.type_id[0] > 0).sum() == 1 and calls.type_id[0, vocab.slots["Search_Hotels"]["dest_id"]] > 0


def test_encoding_errors_name_the_problem(booking, vocab):
    task = booking.tasks[0]
    with pytest.raises(ValueError, match="more than max_calls=1"):
        encode_rollout(render_rollout([(s.call, OK) for s in task.steps]), vocab, max_calls=1)
    with pytest.raises(ValueError, match="2 calls but 1 success flags"):
        encode_calls(parse_tool_calls(render_rollout([(s.call, OK) for s in task.steps])), [True], vocab, 4)
    with pytest.raises(ValueError, match=f"task {task.task_id}: .* more than max_steps=1"):
        encode_task(task, vocab, max_steps=1)
    unknown = Task("t", "q", (Step(0, Call("Not_A_Tool", {}), (), OK, True),), ())
    with pytest.raises(ValueError, match=r"task t, step 0 \(Not_A_Tool\): function not in the tool schemas"):
        encode_task(unknown, vocab, max_steps=4)
    stray = Task("t", "q", (Step(0, Call("Search_Hotels", {"colour": "red"}), (), OK, True),), ())
    with pytest.raises(ValueError, match="parameter 'colour' is not in the function's schema"):
        encode_task(stray, vocab, max_steps=4)


def test_the_gold_dependency_matrix_is_the_depends_on_lists(booking, vocab):
    task = max(booking.tasks, key=lambda t: sum(len(s.depends_on) for s in t.steps))
    depends = encode_task(task, vocab, max_steps=8).depends
    assert {(i, j) for i, j in zip(*np.nonzero(depends))} == {(s.index, j) for s in task.steps for j in s.depends_on}


def test_the_batch_reward_compiles_once_per_shape(booking, vocab):
    """New data and new weights at one shape reuse the first call's compilation."""
    small = dataclasses.replace(vocab, max_params=vocab.max_params + 1)  # a shape no other test uses

    def batch(tasks):
        calls = stack([encode_rollout(render_rollout([(s.call, OK) for s in t.steps][::-1]), small, 16)
                       for t in tasks])
        return calls, stack([encode_task(t, small, 8) for t in tasks])

    before = TRACES["batch_reward"]
    first = make_reward_fn(RewardConfig())(*batch(booking.tasks[:4]))
    second = make_reward_fn(RewardConfig(w_atomic=0.2, w_orch=1))(*batch(booking.tasks[4:8]))  # an int weight too
    jax.block_until_ready((first, second))
    assert TRACES["batch_reward"] == before + 1
    assert not np.allclose(first.reward, second.reward)  # the second call did compute something new
