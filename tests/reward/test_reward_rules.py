"""One hand-built case per rule of the definitions, with the value computed by hand in a comment.
Every case runs through the reference and the jitted batch reward (the `score` fixture asserts they
agree), then the reference's value is compared with the hand-computed one."""

import dataclasses
import json

import pytest

from orchestra.data.types import Call, ParamSpec, Step, Task, ToolSpec
from orchestra.env.codec import format_observation, format_tool_call
from orchestra.reward import RewardConfig, RewardVocab, render_rollout

OK = {"status": True, "message": "Success", "data": [1]}
ERROR = {"error": "No results found"}
PAPER = RewardConfig()
STRICT = RewardConfig(mode="strict")
STRICT_PENALISED = RewardConfig(mode="strict", penalise_extra_calls=True)
BINARY = RewardConfig(w_atomic=0.0, w_orch=0.0, w_binary=1.0)


def tool(name, *params):
    return ToolSpec(name, "", tuple(ParamSpec(p, "string") for p in params), ())


# 16 parameter slots, as the fixtures' Booking vocabulary: the two share compilations.
VOCAB = dataclasses.replace(RewardVocab.from_tools([tool("Find", "city", "date", "adults"), tool("Ping"),
                                                    tool("Book", "hotel_id", "rooms"), tool("Fly", "legs")]),
                            max_params=16)


def task(*steps):
    """Steps as (call, depends_on) or (call, depends_on, gold succeeded)."""
    built = tuple(Step(i, s[0], tuple(s[1]), OK, s[2] if len(s) > 2 else True) for i, s in enumerate(steps))
    return Task("hand", "query", built, ())


FIND = Call("Find", {"city": "Paris", "date": "2024-12-01", "adults": 2})
BOOK = Call("Book", {"hotel_id": "h1"})
PING = Call("Ping", {})
ONE_FIND = task((FIND, []))


@pytest.fixture
def reward(score):
    def run(rollout, gold: Task, config: RewardConfig = PAPER):
        text = rollout if isinstance(rollout, str) else render_rollout(rollout)
        return score([text], [gold], config, VOCAB)[0]
    return run


def test_the_gold_call_scores_one(reward):
    assert reward([(FIND, OK)], ONE_FIND).reward == pytest.approx(1.0)


def test_name_alone_scores_the_name_level(reward):
    # AST 0.33, semantic 1 -> atomic 0.665; orchestration 1 -> 0.5 * 0.665 + 0.5
    out = reward([(Call("Find", {"country": "FR"}), OK)], ONE_FIND)
    assert out.ast == pytest.approx([0.33])
    assert out.reward == pytest.approx(0.8325)


def test_parameter_level_is_coverage_times_compatible_type_share(reward):
    # shared {city, adults} of 3 -> 2/3; adults "2" is a string against 2 -> type share 1/2
    # AST 0.33 + 0.33 * 2/3 * 1/2 = 0.44; atomic (0.44 + 1) / 2 = 0.72; R = 0.36 + 0.5
    out = reward([(Call("Find", {"city": "paris", "adults": "2"}), OK)], ONE_FIND)
    assert out.ast == pytest.approx([0.44])
    assert out.reward == pytest.approx(0.86)


def test_all_or_nothing_parameter_level_wants_exactly_the_gold_names_with_compatible_types(reward):
    config = RewardConfig(params_credit="all")
    city_adults = Call("Find", {"city": "paris", "adults": 2})  # date left out: the name level alone
    assert reward([(city_adults, OK)], ONE_FIND, config).ast == pytest.approx([0.33])
    assert reward([(city_adults, OK)], ONE_FIND).ast == pytest.approx([0.33 + 0.33 * 2 / 3])
    wrong_values = Call("Find", {"city": "Rome", "date": "2025-01-01", "adults": 3})
    assert reward([(wrong_values, OK)], ONE_FIND, config).ast == pytest.approx([0.66])
    string_adults = Call("Find", {"city": "Paris", "date": "2024-12-01", "adults": "2"})  # a string for 2
    assert reward([(string_adults, OK)], ONE_FIND, config).ast == pytest.approx([0.33])
    extra = Call("Book", {"hotel_id": "h1", "rooms": 1})
    assert reward([(extra, OK)], task((BOOK, [])), config).ast == pytest.approx([0.33])
    assert reward([(FIND, OK)], ONE_FIND, config).reward == pytest.approx(1.0)
    assert reward([(Call("Ping", {}), OK)], task((PING, [])), config).ast == pytest.approx([1.0])


def test_values_compare_after_bfcl_normalisation_and_as_numbers(reward):
    gold = task((Call("Find", {"city": "New York", "date": "2024-12-01", "adults": 2}), []))
    same = Call("Find", {"city": "new_york", "date": "2024/12/01", "adults": 2.0})
    assert reward([(same, OK)], gold).ast == pytest.approx([1.0])
    # a different city keeps names and types: AST 0.66
    assert reward([(Call("Find", {"city": "NYC", "date": "2024-12-01", "adults": 2}), OK)], gold).ast == \
        pytest.approx([0.66])


def test_an_extra_parameter_loses_the_value_level_and_a_null_one_does_not(reward):
    gold = task((BOOK, []))
    assert reward([(Call("Book", {"hotel_id": "h1", "rooms": 1}), OK)], gold).ast == pytest.approx([0.66])
    assert reward([(Call("Book", {"hotel_id": "h1", "rooms": None}), OK)], gold).ast == pytest.approx([1.0])


def test_a_gold_step_without_parameters_wants_a_call_without_parameters(reward):
    gold = task((PING, []))
    assert reward([(Call("Ping", {}), OK)], gold).ast == pytest.approx([1.0])
    # parameter level 0 and value level 0: 0.33
    assert reward([(Call("Ping", {"x": 1}), OK)], gold).ast == pytest.approx([0.33])


def test_an_unknown_function_scores_zero_and_counts_in_the_mean(reward):
    # AST [0, 1], semantic [0, 1] -> atomic 0.5; orchestration 1 -> R 0.75
    out = reward([(Call("Nope", {"city": "Paris"}), OK), (FIND, OK)], ONE_FIND)
    assert out.ast == pytest.approx([0.0, 1.0]) and out.call_step == [None, 0]
    assert out.reward == pytest.approx(0.75)


@pytest.mark.parametrize("block, expected", [
    ("{not json", 1.0),                                   # INVALID_JSON: dropped
    ('[1, 2]', 0.75),                                     # NOT_AN_OBJECT: a call scoring 0
    ('{"arguments": {"city": "Paris"}}', 0.75),           # MISSING_NAME: a call scoring 0
])
def test_malformed_blocks(reward, block, expected):
    assert reward([(block, OK), (FIND, OK)], ONE_FIND).reward == pytest.approx(expected)


def test_a_truncated_generation_drops_the_open_block(reward):
    text = render_rollout([(FIND, OK)]) + '\n<tool_call>\n{"name": "Find", "argu'
    assert reward(text, ONE_FIND).reward == pytest.approx(1.0)


def test_arguments_as_a_json_string_are_parsed_else_taken_as_empty(reward):
    as_string = json.dumps({"name": "Book", "arguments": json.dumps({"hotel_id": "h1"})})
    assert reward([(as_string, OK)], task((BOOK, []))).reward == pytest.approx(1.0)
    # arguments {} against Ping's no parameters: AST 1; the environment answered the block with an
    # error, so semantic 0 -> atomic 0.5, R 0.75
    unparsable = json.dumps({"name": "Ping", "arguments": "[1]"})
    out = reward([(unparsable, OK)], task((PING, [])))
    assert out.ast == pytest.approx([1.0]) and out.semantic == [0.0]
    assert out.reward == pytest.approx(0.75)


@pytest.mark.parametrize("response", [ERROR, {"status": False, "data": []}, {}, [], None])
def test_a_failed_execution_loses_the_semantic_score(reward, response):
    # atomic (1 + 0) / 2 = 0.5; orchestration 1 -> R 0.75
    out = reward([(FIND, response)], ONE_FIND)
    assert out.semantic == [0.0] and out.reward == pytest.approx(0.75)


def test_a_response_that_is_not_json_is_a_failure(reward):
    text = format_tool_call(FIND) + "\n" + format_observation("Paris: 3 hotels")
    assert reward(text, ONE_FIND).semantic == [0.0]


def test_responses_answer_parallel_calls_in_order_and_a_missing_one_fails(reward):
    gold = task((FIND, []), (BOOK, [0]))
    parallel = "\n".join([format_tool_call(FIND), format_tool_call(BOOK), format_observation(json.dumps(OK)),
                          format_observation(json.dumps(ERROR))])
    # AST [1, 1], semantic [1, 0] -> atomic 0.75; orchestration 1 -> R 0.875
    assert reward(parallel, gold).semantic == [1.0, 0.0]
    unanswered = format_tool_call(FIND) + "\n" + format_observation(json.dumps(OK)) + "\n" + format_tool_call(BOOK)
    assert reward(unanswered, gold).reward == pytest.approx(0.875)


def test_a_failed_gold_step_scores_zero_on_semantic_and_orchestration(reward):
    # AST 1, semantic 0 -> atomic 0.5; orchestration 0 -> R 0.25
    out = reward([(FIND, OK)], task((FIND, [], False)))
    assert out.step_score == [0.0] and out.reward == pytest.approx(0.25)


def test_orchestration_needs_dependencies_matched_before(reward):
    gold = task((FIND, []), (BOOK, [0]))
    wrong_order = reward([(BOOK, OK), (FIND, OK)], gold)
    # atomic 1; step 0 at position 1, step 1 has no Book after it -> orchestration 0.5 -> R 0.75
    assert wrong_order.step_position == [1, None] and wrong_order.reward == pytest.approx(0.75)
    assert reward([(BOOK, OK)], gold).step_score == [0.0, 0.0]  # Find never called: Book cannot count


def test_paper_mode_records_the_first_position_that_qualifies(reward):
    gold = task((FIND, []), (BOOK, [0]))
    out = reward([(BOOK, OK), (FIND, OK), (BOOK, OK)], gold)
    # paper: all three calls match a step exactly -> atomic 1; Book's first position after Find is 2
    assert out.step_position == [1, 2] and out.reward == pytest.approx(1.0)


def test_strict_mode_matches_one_to_one(reward):
    gold = task((FIND, []), (BOOK, [0]))
    rollout = [(BOOK, OK), (FIND, OK), (BOOK, OK)]
    # the earlier Book takes step 1 (a tie goes to the earlier call); the later one is extra:
    # AST [1, 1, 0], semantic [1, 1, 0] -> atomic 2/3; orchestration 1 -> R 1/3 + 1/2
    strict = reward(rollout, gold, STRICT)
    assert strict.call_step == [1, 0, None] and strict.reward == pytest.approx(1 / 3 + 1 / 2)
    # with the penalty the extra call is a failed orchestration item: 2 / 3 -> R 2/3
    assert reward(rollout, gold, STRICT_PENALISED).reward == pytest.approx(2 / 3)


def test_one_call_satisfies_two_gold_steps_only_in_paper_mode(reward):
    gold = task((Call("Find", {"city": "Paris"}), []), (Call("Find", {"city": "Rome"}), []))
    rollout = [(Call("Find", {"city": "Paris"}), OK)]
    assert reward(rollout, gold).reward == pytest.approx(1.0)
    # strict: atomic 1, orchestration 1/2 -> R 0.75
    assert reward(rollout, gold, STRICT).reward == pytest.approx(0.75)


def test_a_repeated_function_is_compared_with_its_first_occurrence_in_paper_mode(reward):
    gold = task((Call("Find", {"city": "Paris"}), []), (Call("Find", {"city": "Rome"}), []))
    rollout = [(Call("Find", {"city": "Paris"}), OK), (Call("Find", {"city": "Rome"}), OK)]
    # paper: Rome against Paris: AST 0.66 -> mean 0.83, atomic 0.915, R 0.9575
    assert reward(rollout, gold).reward == pytest.approx(0.9575)
    assert reward(rollout, gold, STRICT).reward == pytest.approx(1.0)
    # best fit finds the right occurrence whatever the order
    swapped = reward(rollout[::-1], gold, STRICT)
    assert swapped.call_step == [1, 0] and swapped.reward == pytest.approx(1.0)


def test_a_list_of_objects_is_compared_element_by_element(reward):
    legs = [{"fromId": "HOU.CITY", "toId": "VIE.AIRPORT", "date": "2024-12-10"},
            {"fromId": "VIE.AIRPORT", "toId": "BUD.AIRPORT", "date": "2024-12-11"}]
    gold = task((Call("Fly", {"legs": legs}), []))
    assert reward([(Call("Fly", {"legs": legs}), OK)], gold).ast == pytest.approx([1.0])
    normalised = [{k: v.lower().replace(".", "") for k, v in leg.items()} for leg in legs]
    assert reward([(Call("Fly", {"legs": normalised}), OK)], gold).ast == pytest.approx([1.0])
    assert reward([(Call("Fly", {"legs": legs[::-1]}), OK)], gold).ast == pytest.approx([0.66])


@pytest.mark.parametrize("text", ["", "I cannot help with that."])
def test_a_rollout_without_calls_scores_zero(reward, text):
    out = reward(text, ONE_FIND)
    assert (out.reward, out.atomic, out.orch, out.binary) == (0.0, 0.0, 0.0, 0.0)


def test_extra_calls_are_penalised_only_when_asked(reward):
    rollout = [(Call("Nope", {}), OK), (FIND, OK)]
    # atomic 0.5 in both; orchestration 1, or 1 / (1 step + 1 extra call) with the penalty
    assert reward(rollout, ONE_FIND, STRICT).reward == pytest.approx(0.75)
    assert reward(rollout, ONE_FIND, STRICT_PENALISED).reward == pytest.approx(0.5)


def test_binary_baseline_wants_the_gold_calls_in_a_dependency_respecting_order(reward):
    gold = task((FIND, []), (BOOK, [0]), (PING, []))
    assert reward([(FIND, OK), (PING, OK), (BOOK, OK)], gold, BINARY).reward == 1.0  # Ping is independent
    assert reward([(BOOK, OK), (FIND, OK), (PING, OK)], gold, BINARY).reward == 0.0  # Book before Find
    assert reward([(FIND, OK), (BOOK, OK), (PING, OK), (PING, OK)], gold, BINARY).reward == 0.0  # extra call
    wrong = Call("Book", {"hotel_id": "h2"})
    assert reward([(FIND, OK), (wrong, OK), (PING, OK)], gold, BINARY).reward == 0.0
