"""The protocol's rules on small hand-made tasks."""

import json

import pytest

from eval_helpers import TOOLS, ScriptedJudge, calls, gold, observation, rendered, run, step, task
from orchestra.data.types import Task
from orchestra.eval.policy import OraclePolicy, ReplayPolicy
from orchestra.eval.protocol import gold_steps


def two_items(**extra):
    """Two independent Get_Item calls (one golden step of two parallel calls), then a third on both."""
    return task(step(0, "Get_Item", item_id="1", note="c"),
                step(1, "Get_Item", item_id="2", note="c"),
                step(2, "Search_Items", deps=(0, 1), dest_id="9"), **extra)


def test_best_fit_pairs_parallel_calls_by_their_arguments_not_their_order():
    t = two_items()
    # Neither call is rule-equal to a gold call (the free-text note differs); each agrees with one
    # gold call on item_id, so the best fit pairs them crosswise to the order they were written in.
    turn = calls(("Get_Item", {"item_id": "2", "note": "a"}), ("Get_Item", {"item_id": "1", "note": "b"}))
    judge = ScriptedJudge()
    _, [s] = run(ReplayPolicy([turn, gold(t, 2), "Done."]), [t], judge=judge)
    assert [c["gold"] for c in s["turns"][0]["calls"]] == [1, 0]
    assert observation(s, 0, 0) == rendered(t.steps[1].response)
    assert observation(s, 0, 1) == rendered(t.steps[0].response)
    asked = [(p.arguments["item_id"], g.arguments["item_id"]) for p, g in judge.asked]
    assert s["success"] and asked == [("2", "2"), ("1", "1")]


def test_without_a_judge_a_call_only_a_judge_could_accept_is_unmatched():
    t = two_items()
    turn = calls(("Get_Item", {"item_id": "1", "note": "a"}))
    summary, [s] = run(ReplayPolicy([turn, "unused"]), [t])
    assert s["turns"][0]["calls"][0]["verdict"] == "unjudged"
    assert s["end_reason"] == "no_match" and s["matched_calls"] == 0
    assert summary["lower_bound"] is True and summary["judge"] is None


def test_a_must_match_difference_never_reaches_the_judge():
    t = two_items()
    judge = ScriptedJudge()
    summary, [s] = run(ReplayPolicy([calls(("Get_Item", {"item_id": "7", "note": "c"})), "unused"]), [t], judge=judge)
    assert judge.asked == [] and s["turns"][0]["calls"][0]["verdict"] == "value_error"
    assert summary["lower_bound"] is False and summary["judge"] == {"model": "scripted"}


def test_a_judge_that_rejects_leaves_the_call_unmatched():
    t = two_items()
    judge = ScriptedJudge(equivalent=lambda p, g: False)
    _, [s] = run(ReplayPolicy([calls(("Get_Item", {"item_id": "1", "note": "x"})), "unused"]), [t], judge=judge)
    assert s["turns"][0]["calls"][0]["verdict"] == "judge_rejected" and s["matched_calls"] == 0


def test_the_judge_scores_final_answers_and_the_summary_averages_them():
    t = two_items()
    summary, [s] = run(OraclePolicy([t]), [t], judge=ScriptedJudge(scores=(2, 1)))
    assert s["answer_eval"]["complete"] == 2 and s["answer_eval"]["correct"] == 1
    assert (summary["overall"]["answer_complete"], summary["overall"]["answer_correct"]) == (2, 1)


def test_categories_filter_is_compared_as_a_set_of_items():
    t = task(step(0, "Search_Items", dest_id="9", categories_filter="class::3,price::USD-0-100"))
    reordered = calls(("Search_Items", {"dest_id": "9", "categories_filter": "price::USD-0-100, class::3"}))
    _, [s] = run(ReplayPolicy([reordered, "Done."]), [t])
    assert s["turns"][0]["calls"][0]["verdict"] == "matched" and s["success"]
    other = calls(("Search_Items", {"dest_id": "9", "categories_filter": "class::3,price::USD-0-200"}))
    _, [s] = run(ReplayPolicy([other, "unused"]), [t], exact_match={"Search_Items": ["dest_id", "categories_filter"]})
    assert s["turns"][0]["calls"][0]["verdict"] == "value_error"


def test_a_call_that_waits_for_an_unmatched_step_is_not_current():
    t = two_items()
    _, [s] = run(ReplayPolicy([gold(t, 2), "unused"]), [t])
    assert s["turns"][0]["calls"][0]["verdict"] == "wrong_function" and s["end_reason"] == "no_match"
    assert s["completed_steps"] == 0


def test_partly_matched_steps_go_on_and_turn_accuracy_counts_leading_complete_steps():
    t = two_items()
    script = [gold(t, 0), gold(t, 2), "Done early."]  # item 2 is never fetched
    summary, [s] = run(ReplayPolicy(script), [t])
    assert s["turns"][1]["calls"][0]["verdict"] == "wrong_function" and s["end_reason"] == "no_match"
    assert (s["matched_calls"], s["completed_steps"], s["gold_steps"]) == (1, 0, 2)
    assert summary["overall"]["call_accuracy"] == pytest.approx(1 / 3)


def lookup_task():
    return task(step(0, "Search_Place_Location", query="Paris", response={"id": "P"}),
                step(1, "Get_Item", deps=(0,), item_id="P"))


def test_a_free_gold_call_may_be_skipped():
    t = lookup_task()
    summary, [s] = run(ReplayPolicy([gold(t, 1), "Done."]), [t])
    assert s["success"] and s["completed_steps"] == s["gold_steps"] == 2
    assert summary["overall"]["call_accuracy"] == pytest.approx(1 / 2)


def test_a_free_call_matching_nothing_is_answered_from_the_cache_and_the_episode_goes_on():
    t = lookup_task()
    elsewhere = task(step(0, "Search_Place_Location", query="Rome", response={"id": "R"}), task_id="other", query="q2")
    script = [calls(("Search_Place_Location", {"query": "Rome"})), gold(t, 0), gold(t, 1), "Done."]
    _, [s, _] = run(ReplayPolicy({"q": script, "q2": [gold(elsewhere, 0), "Done."]}), [t, elsewhere])
    assert s["turns"][0]["calls"][0]["verdict"] == "free"
    assert json.loads(observation(s, 0, 0)) == {"id": "R"}
    assert s["success"] and s["matched_calls"] == 2


def test_a_task_of_only_free_calls_requires_them():
    t = task(step(0, "Search_Place_Location", query="Paris"))
    _, [s] = run(ReplayPolicy(["Nothing to do."]), [t])
    assert not s["success"] and s["completed_steps"] == 0


def test_turn_numbers_in_metadata_define_the_golden_steps():
    t = task(step(0, "Get_Item", item_id="1"), step(1, "Get_Item", item_id="2"), step(2, "Search_Items", dest_id="9"),
             metadata={"turns": [1, 2, 1]})
    assert gold_steps(t).groups == ((0, 2), (1,))
    _, [s] = run(ReplayPolicy([gold(t, 1), "unused"]), [t])  # step 1 belongs to the second gold turn
    assert s["end_reason"] == "no_match"
    _, [s] = run(OraclePolicy([t]), [t])
    assert s["success"] and len(s["turns"]) == 3


def test_bad_turn_metadata_is_an_error_naming_the_task_and_field():
    t = task(step(0, "Get_Item", item_id="1"), task_id="bad-7", metadata={"turns": [0, 1]})
    with pytest.raises(ValueError, match=r"bad-7.*metadata\.turns"):
        run(OraclePolicy([t]), [t])


def test_calls_after_the_last_step_end_the_episode_without_success():
    t = lookup_task()
    _, [s] = run(ReplayPolicy([gold(t, 0), gold(t, 1), gold(t, 1)]), [t])
    assert s["end_reason"] == "calls_after_done" and not s["success"]
    assert s["matched_calls"] == 2 and s["completed_steps"] == 2


def test_an_empty_answer_is_not_a_success():
    t = lookup_task()
    _, [s] = run(ReplayPolicy([gold(t, 0), gold(t, 1), "  "]), [t])
    assert s["end_reason"] == "empty_answer" and not s["success"]


def test_format_errors_alone_do_not_end_the_episode_but_max_turns_does():
    t = lookup_task()
    bad = calls(("Get_Item", {"item_id": ["P"]}))  # a list for a string parameter
    _, [s] = run(ReplayPolicy([bad] * 3), [t], max_turns=3)
    assert json.loads(observation(s, 0, 0)) == {"error": "Parameter 'item_id' of Get_Item must be a string."}
    assert s["end_reason"] == "max_turns" and len(s["turns"]) == 3


def test_a_policy_returning_the_wrong_number_of_texts_is_an_error():
    class Silent:
        def generate(self, conversations, tools):
            return []

    with pytest.raises(ValueError, match="Silent.generate returned 0 texts for 1 conversations"):
        run(Silent(), [lookup_task()])


def test_a_task_offering_an_unknown_tool_is_an_error_naming_it():
    t = Task("odd", "q", lookup_task().steps, ("Get_Item", "Teleport"))
    with pytest.raises(ValueError, match=r"odd.*candidate_tools.*Teleport"):
        run(OraclePolicy([t]), [t])


def test_the_policy_sees_the_query_the_offered_tools_and_its_own_text_with_answers():
    seen = []

    class Spy(ReplayPolicy):
        def generate(self, conversations, tools):
            seen.append((conversations[0], tools[0]))
            return super().generate(conversations, tools)

    t = lookup_task()
    run(Spy([gold(t, 0), "Done."]), [t], system_prompt="Be brief.")
    first, second = seen
    assert first[0] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]
    assert sorted(x["function"]["name"] for x in first[1]) == sorted(TOOLS)
    assert second[0][2:] == [{"role": "assistant", "content": gold(t, 0)},
                             {"role": "tool", "name": "Search_Place_Location", "content": '{"id":"P"}'}]


def test_the_summary_counts_episodes_by_how_they_first_went_wrong():
    queries = ("recovers", "perfect", "gives up", "loops", "wrong value", "wrong function", "too many calls")
    tasks = [task(*lookup_task().steps, task_id=f"t{k}", query=q) for k, q in enumerate(queries)]
    t = tasks[0]
    cut_off = '<tool_call>\n{"name": "Get_Item", "arguments": {"item_id": "PPPP'
    scripts = {
        # a parse error that is then corrected still counts: it is how the episode first went wrong
        "recovers": [gold(t, 0), cut_off, gold(t, 1), "Done."],
        "perfect": [gold(t, 0), gold(t, 1), "Done."],
        "gives up": [gold(t, 0), "Done."],           # no faulty call, but a required call left undone
        "loops": [cut_off, calls(("Get_Item", {"item_id": ["P"]})), "Done."],
        "wrong value": [gold(t, 0), calls(("Get_Item", {"item_id": "Q"}))],
        "wrong function": [calls(("Search_Items", {"dest_id": "9"}))],
        "too many calls": [gold(t, 0), gold(t, 1), gold(t, 1)],
    }
    summary, samples = run(ReplayPolicy(scripts), tasks)
    assert samples[0]["success"] and samples[1]["success"]
    assert summary["first_errors"] == {"after_done": 1, "none": 1, "parse_error": 2, "stopped": 1,
                                       "value_error": 1, "wrong_function": 1}
    assert sum(summary["first_errors"].values()) == len(tasks) and summary["end_reasons"]["answer"] == 4
    # the lookup is matched in the five episodes that made it, the item call in the three that got it right
    assert summary["by_function"] == {"Get_Item": {"gold_calls": 7, "matched_calls": 3},
                                      "Search_Place_Location": {"gold_calls": 7, "matched_calls": 5}}
