"""Property-based perturbations of the real tasks' gold traces: the reference and the jitted reward
agree on every output (the `score` fixture asserts it), and each perturbation moves the reward the
way the definitions say."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestra.data.types import Call
from orchestra.data.types import response_succeeded
from orchestra.env.codec import ParseError, parse_tool_calls
from orchestra.reward import RewardConfig, render_rollout
from orchestra.reward.encode import value_hash_words
from orchestra.reward.reference import given_arguments, values_equal, values_exactly_right

CONFIGS = (RewardConfig(), RewardConfig(mode="strict"), RewardConfig(mode="strict", penalise_extra_calls=True),
           RewardConfig(params_credit="all"))
STRICT_PENALISED = CONFIGS[2]
OK = {"status": True, "data": [1]}
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

MALFORMED = {
    "invalid_json": '{"name": "Search_Hotels", "arguments": {',
    "not_an_object": '["Search_Hotels"]',
    "missing_name": '{"arguments": {"dest_id": "1"}}',
    "bad_arguments": '{"name": "Search_Hotels", "arguments": "dest_id=1"}',
}
CHANGES_NOTHING = {"invalid_json"}   # a dropped block
MAY_KEEP_THE_REWARD = {"swap"}       # steps without a dependency between them may be reordered


def other_value(value):
    """A value of the same type that no normalisation makes equal to `value`."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "zz"
    if isinstance(value, list):
        return value + [value[0] if value else 1]
    return {**value, "zz": 1}


def other_type(value):
    return "zz" if not isinstance(value, str) else 7


def with_arguments(item, arguments):
    call, response = item
    return Call(call.function, arguments), response


@st.composite
def perturbation(draw, items, kind):
    """`items` (call, response) pairs with one perturbation of `kind` applied."""
    items = list(items)
    at = draw(st.integers(0, len(items) - 1))
    call = items[at][0]
    if isinstance(call, str):  # a malformed block from an earlier perturbation
        return None
    names = sorted(call.arguments)
    if kind == "drop":
        del items[at]
    elif kind == "swap":
        other = draw(st.integers(0, len(items) - 1))
        items[at], items[other] = items[other], items[at]
    elif kind in ("corrupt_value", "change_type", "remove_param") and names:
        name = draw(st.sampled_from(names))
        args = dict(call.arguments)
        if kind == "remove_param":
            del args[name]
        else:
            args[name] = (other_value if kind == "corrupt_value" else other_type)(args[name])
        items[at] = with_arguments(items[at], args)
    elif kind == "add_param":
        items[at] = with_arguments(items[at], {**call.arguments, "not_a_parameter": "x"})
    elif kind == "unknown_function":
        items.insert(at, (Call("Not_A_Tool", dict(call.arguments)), OK))
    elif kind == "repeat":
        items.insert(draw(st.integers(0, len(items))), items[at])
    elif kind == "fail_response":
        items[at] = (call, {"error": "No results found"})
    elif kind == "empty":
        items = []
    elif kind in MALFORMED:
        items.insert(at, (MALFORMED[kind], OK))
    else:
        return None  # a parameter perturbation of a call without parameters
    return items


def draw_task(data, tasks):
    """A task, drawn by index so that failure reports stay short."""
    return tasks[data.draw(st.integers(0, len(tasks) - 1), label="task index")]


KINDS = ["drop", "swap", "corrupt_value", "change_type", "add_param", "remove_param", "unknown_function",
         "repeat", "fail_response", "empty", *MALFORMED]


def gold_items(task):
    """The gold trace with small responses that keep each recorded success (the text stays short)."""
    return [(s.call, OK if response_succeeded(s.response) else s.response) for s in task.steps]


@pytest.mark.parametrize("kind", KINDS)
@settings(SETTINGS, max_examples=6)
@given(data=st.data())
def test_one_perturbation_agrees_and_lowers_the_strict_reward(kind, data, booking, vocab, score):
    task = draw_task(data, booking.tasks)
    items = data.draw(perturbation(gold_items(task), kind))
    if items is None:
        return
    text = render_rollout(items)
    refs = [score([text], [task], config, vocab)[0] for config in CONFIGS]
    strict = refs[2].reward
    assert 0.0 <= strict <= 1.0
    if kind in CHANGES_NOTHING:
        assert strict == pytest.approx(1.0)
    elif kind in MAY_KEEP_THE_REWARD:
        assert refs[2].atomic == pytest.approx(1.0)  # the best fit still finds every call's step
    else:
        assert strict < 1.0 - 1e-6, kind
    if kind == "empty":
        assert all(r.reward == 0.0 for r in refs)


@SETTINGS
@given(data=st.data())
def test_several_perturbations_agree_in_one_batch(data, booking, vocab, score):
    """Up to three perturbations per rollout, eight rollouts per batch, every mode."""
    texts, chosen = [], []
    for _ in range(8):
        task = draw_task(data, booking.tasks)
        items = gold_items(task)
        for kind in data.draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3)):
            if items:
                items = data.draw(perturbation(items, kind)) or items
        texts.append(render_rollout(items))
        chosen.append(task)
    for config in CONFIGS:
        score(texts, chosen, config, vocab)


# JSON values whose strings mix the characters BFCL's normalisation removes, case and quotes.
strings = st.text(alphabet="aAbB -_.,/*^'\"1", max_size=6)
numbers = st.integers(-3, 3) | st.floats(-3, 3, allow_nan=False).map(lambda x: round(x, 1))
json_values = st.recursive(st.none() | st.booleans() | numbers | strings,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner,
                                                                                          max_size=3),
                           max_leaves=6)


def variant(value):
    """A value BFCL's normalisation makes equal to `value`: upper-cased strings with separators
    added, integers as floats, recursively."""
    if isinstance(value, str):
        return "-" + value.upper().replace("'", '"') + " _"
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return [variant(v) for v in value]
    if isinstance(value, dict):
        return {k: variant(v) for k, v in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(json_values, json_values)
def test_value_hashes_are_equal_exactly_when_values_are(a, b):
    assert (value_hash_words(a) == value_hash_words(b)) == values_equal(a, b)
    assert value_hash_words(variant(a)) == value_hash_words(a) and values_equal(variant(a), a)


arguments = st.dictionaries(st.sampled_from(["city", "date", "legs"]), json_values, max_size=3)


@settings(max_examples=200, deadline=None)
@given(arguments, arguments)
def test_argument_hashes_are_equal_exactly_when_the_value_level_passes(a, b):
    """The encoder's per-call hash (null arguments dropped) decides the AST value level."""
    same_hash = value_hash_words(given_arguments(a)) == value_hash_words(given_arguments(b))
    assert same_hash == values_exactly_right(Call("f", a), Call("f", b))
    assert values_exactly_right(Call("f", variant(a)), Call("f", a))
    assert value_hash_words(given_arguments(variant(a))) == value_hash_words(given_arguments(a))


def test_the_malformed_blocks_are_what_their_names_say():
    for kind, block in MALFORMED.items():
        [parsed] = parse_tool_calls(f"<tool_call>{block}</tool_call>")
        assert parsed.error == ParseError[kind.upper()], kind
    assert json.loads(MALFORMED["not_an_object"])  # valid JSON, just not an object
