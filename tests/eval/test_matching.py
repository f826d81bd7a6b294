"""Call comparison, best-fit assignment, must-match lookup, domains and the turn-accuracy count."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval_helpers import step, task
from orchestra.data.types import Call
from orchestra.eval.metrics import DomainRule, leading_completed_steps
from orchestra.eval.protocol import MustMatch, best_assignment, must_match_problem, rule_equal, similarity


def brute_force_best(scores):
    n, m = len(scores), len(scores[0])
    if n <= m:
        return max(sum(scores[i][j] for i, j in enumerate(cols)) for cols in itertools.permutations(range(m), n))
    return max(sum(scores[i][j] for j, i in enumerate(rows)) for rows in itertools.permutations(range(n), m))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n: st.integers(1, 5).flatmap(
    lambda m: st.lists(st.lists(st.integers(0, 9), min_size=m, max_size=m), min_size=n, max_size=n))))
def test_best_assignment_finds_the_largest_total(scores):
    pairs = best_assignment(scores)
    assert len(pairs) == min(len(scores), len(scores[0]))
    assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
    assert sum(scores[i][j] for i, j in pairs) == brute_force_best(scores)


def test_best_assignment_beats_greedy_on_a_crossed_matrix():
    # Greedy (row 0 takes its best column 0) would total 9 + 0; the best is 8 + 7.
    assert best_assignment([[9, 8], [7, 0]]) == [(0, 1), (1, 0)]


@pytest.mark.parametrize("pred,gold,equal", [
    ({"a": "5", "b": None}, {"a": 5}, True),                 # numeric strings and nulls normalised
    ({"a": 1.0}, {"a": 1}, True),
    ({"a": True}, {"a": 1}, False),                          # a boolean is not a number
    ({"a": 5}, {"a": 5, "b": "x"}, False),                   # a missing parameter
    ({"categories_filter": "x::1, y::2"}, {"categories_filter": "y::2,x::1"}, True),
    ({"categories_filter": "x::1"}, {"categories_filter": "x::1,y::2"}, False),
    ({"other": "x::1, y::2"}, {"other": "y::2,x::1"}, False),  # only set-valued parameters are sets
])
def test_rule_equal(pred, gold, equal):
    assert rule_equal(Call("F", pred), Call("F", gold)) is equal


def test_rule_equal_needs_the_same_function():
    assert not rule_equal(Call("F", {"a": 1}), Call("G", {"a": 1}))


def test_must_match_parameters_decide_only_on_their_own_values():
    gold = Call("F", {"id": "1", "note": "blue", "date": "2024-01-01"})
    assert must_match_problem(Call("F", {"id": "1", "date": "2024-01-01", "note": "red"}), gold, ["id", "date"]) is None
    assert "'date'" in must_match_problem(Call("F", {"id": "1", "note": "blue"}), gold, ["id", "date"])
    assert "'id'" in must_match_problem(Call("F", {"id": "2", "date": "2024-01-01"}), gold, ["id", "date"])


def test_similarity_prefers_the_call_agreeing_on_more_parameters():
    gold = Call("F", {"id": "1", "x": "a", "y": "b"})
    assert similarity(Call("F", {"id": "1", "x": "a"}), gold) > similarity(Call("F", {"id": "1"}), gold) > 0
    assert similarity(Call("G", {"id": "1", "x": "a", "y": "b"}), gold) == 0


def test_must_match_table_finds_bracketed_names_under_tool_file_spellings():
    table = MustMatch({"Get_Hotel_Reviews(Tips)": ["hotel_id"],
                       "Get_Hotel_Reviews(Tips)_Sort_Option": ["languagecode"]})
    assert table("Get_Hotel_Reviews(Tips)") == ("hotel_id",)
    assert table("Get_Hotel_Reviews_Tips") == ("hotel_id",)
    assert table("Get_Hotel_Reviews_Tips__Sort_Option") == ("languagecode",)
    assert table("Unknown") == ()


def test_domain_comes_from_the_families_of_the_gold_functions():
    rule = DomainRule(rules=(("Items", r"Item"), ("Places", r"Place")))
    assert rule.task_domain(task(step(0, "Get_Item", item_id="1"))) == "Items"
    mixed = task(step(0, "Get_Item", item_id="1"), step(1, "Search_Place_Location", query="x"))
    assert rule.task_domain(mixed) == "Cross"
    assert rule.task_domain(task(step(0, "Nothing_Known"))) == "Other"
    assert DomainRule(by="id_prefix").task_domain(task(step(0, "Get_Item"), task_id="Car-Rental-12")) == "Car-Rental"


def test_real_domains_cover_every_real_task(booking):
    domains = {DomainRule().task_domain(t) for t in booking.tasks}
    assert "Other" not in domains and {"Flights", "Attraction"} <= domains


@pytest.mark.parametrize("matched,skippable,success,expected", [
    ([1, 1, 0, 0], [0, 0, 0, 0], False, 1),   # steps (0,1) done, (2,) not
    ([1, 0, 1, 0], [0, 0, 0, 0], False, 0),   # step (0,1) incomplete: later matches do not count
    ([0, 1, 1, 0], [1, 0, 0, 0], False, 2),   # a skipped free call, passed by a later match
    ([0, 0, 0, 0], [1, 0, 0, 0], False, 0),   # a free call nobody passed
    ([1, 1, 1, 0], [0, 0, 0, 1], True, 3),    # success passes a trailing free call
])
def test_leading_completed_steps(matched, skippable, success, expected):
    groups = [(0, 1), (2,), (3,)]
    assert leading_completed_steps(groups, list(map(bool, matched)), list(map(bool, skippable)), success) == expected
