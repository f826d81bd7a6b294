"""The curriculum's generators: well-formed conversations, masks on the answer only, copies that
stand verbatim in their context, extractions equal to `read_field`, and a forbidden set respected."""

import datetime
import json
import re

import numpy as np
import pytest

from orchestra.env.codec import parse_tool_calls
from orchestra.env.views import ResponseView, ToolView
from orchestra.model.chat import CHAT_TEMPLATE, IM_END, IM_START, assistant_body, render_chat
from orchestra.model.tokenizer import build_tokenizer
from orchestra.rl.curriculum import (SKILLS, Curriculum, Example, Schedule, ValueMaker, date_phrase, draw_examples,
                                     time_phrase, value_texts, copy_vocabulary)
from orchestra.rl.episodes import gold_messages
from orchestra.synth.paths import read_field

SEEDS = range(12)


@pytest.fixture(scope="module")
def tokenizer(booking):
    view = ResponseView()
    texts = [json.dumps(t.to_json(), ensure_ascii=False) for t in booking.tools.values()]
    for task in booking.tasks:
        texts.append(task.query)
        texts += [view.render(s.response) for s in task.steps]
    return build_tokenizer(texts, 2048, CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def curriculum(booking):
    return Curriculum(booking.tools, booking.tasks, ResponseView(), ToolView())


@pytest.mark.parametrize("skill", [s for s in SKILLS if "copy" not in s])  # copy drills: below
def test_policy_mask_covers_exactly_the_assistant_turns(skill, curriculum, tokenizer):
    for seed in SEEDS:
        example = curriculum.sample(skill, np.random.default_rng(seed))
        encoded = example.encode(tokenizer)
        written = tokenizer.decode(encoded.token_ids[encoded.policy_mask == 1])
        answers = [m for m in example.messages if m["role"] == "assistant"]
        assert answers and example.messages[0]["role"] == "user"
        assert written == "".join(assistant_body(m) + IM_END for m in answers)
        # the rest (system prompt, request, responses) is context, never trained on
        context = tokenizer.decode(encoded.token_ids[encoded.policy_mask == 0])
        assert example.messages[0]["content"] in context


def test_copy_drills_repeat_copy_vocabulary_inside_a_random_share_of_the_chat_frame(booking, tokenizer):
    pieces = copy_vocabulary(tokenizer)
    assert len(pieces) == len(tokenizer) - len(tokenizer.all_special_tokens)
    assert not set(pieces) & set(tokenizer.all_special_tokens)
    curriculum = Curriculum(booking.tools, booking.tasks, copy_tokens=pieces)
    start, newline, im_end = (tokenizer.encode(t, add_special_tokens=False) for t in (IM_START, "\n", IM_END))
    full = render_chat([{"role": "user", "content": "Repeat exactly: "}], add_generation_prompt=True)
    cut = full.rindex(IM_END)
    frames, recurring = [], []
    for seed in range(40):
        example = curriculum.sample("copy", np.random.default_rng(seed))
        encoded = example.encode(tokenizer)
        ids = tokenizer.convert_tokens_to_ids(list(example.plain))
        assert 5 <= len(ids) <= 24 and not example.messages
        # context, then (the loss from here) the same pieces and <|im_end|>
        n_context = len(encoded.token_ids) - len(ids) - 1
        assert encoded.token_ids[n_context:].tolist() == ids + im_end
        assert encoded.policy_mask.tolist() == [0] * n_context + [1] * (len(ids) + 1)
        # the context ends with the pieces and the assistant header or a newline, and before the
        # pieces is a tail of the chat up to the request's end
        context = tokenizer.decode(encoded.token_ids[:n_context])
        request, _, after = context.rpartition(tokenizer.decode(ids))
        assert after == (full[cut:] if example.meta["header"] else "\n")
        assert request == IM_START or full[:cut].endswith(request)
        frames.append(example.meta["frame"])
        recurring.append(len(set(ids)) < len(ids))
    assert min(frames) < 0.2 and max(frames) > 0.8
    assert 0.2 < np.mean(recurring) < 0.8  # drills drawn from a small pool repeat some tokens
    # the two ends: no frame (a start token alone) and the whole chat of a "Repeat exactly:" request
    two = (pieces[0], pieces[1])
    bare = Example("copy", [], None, meta={"frame": 0.0, "header": False}, plain=two)
    ids = tokenizer.convert_tokens_to_ids(list(two))
    said = tokenizer.decode(ids)
    assert bare.encode(tokenizer).token_ids.tolist() == start + ids + newline + ids + im_end
    for seed in SEEDS:  # `bare_copy` drills are those with no frame
        example = curriculum.sample("bare_copy", np.random.default_rng(seed))
        ids = tokenizer.convert_tokens_to_ids(list(example.plain))
        assert 5 <= len(ids) <= 24
        assert example.encode(tokenizer).token_ids.tolist() == start + ids + newline + ids + im_end
    whole = Example("copy", [], None, meta={"frame": 1.0, "header": True}, plain=two).encode(tokenizer)
    assert tokenizer.decode(whole.token_ids) == render_chat(
        [{"role": "user", "content": "Repeat exactly: " + said}, {"role": "assistant", "content": said}])[:-1]
    for skill in ("copy", "bare_copy"):
        with pytest.raises(ValueError, match="copy_tokens"):
            Curriculum(booking.tools, booking.tasks).sample(skill, np.random.default_rng(0))


@pytest.mark.parametrize("skill", ["fill", "extract", "dates", "episodes", "fresh"])
def test_calls_parse_name_an_offered_tool_and_pass_the_validators(skill, curriculum):
    for seed in SEEDS:
        example = curriculum.sample(skill, np.random.default_rng(seed))
        offered = {t["name"] for t in example.tools}
        calls = [p for m in example.messages if m["role"] == "assistant" and m.get("tool_calls")
                 for p in parse_tool_calls(assistant_body(m))]
        assert calls and all(p.ok and p.call.function in offered for p in calls)
        assert curriculum.valid(example)


@pytest.mark.parametrize("skill", ["repeat", "fill", "extract", "dates"])
def test_copied_values_stand_verbatim_in_their_source_and_in_the_answer(skill, curriculum):
    checked = 0
    for seed in SEEDS:
        example = curriculum.sample(skill, np.random.default_rng(seed))
        answer = "".join(assistant_body(m) for m in example.messages if m["role"] == "assistant")
        for text, where in example.copies:
            assert example.messages[where]["content"].count(text) >= 1, (text, example.messages[where]["content"])
            assert text in answer
            checked += 1
    assert checked >= len(SEEDS)


def test_fresh_episodes_redraw_each_copied_value_everywhere_it_stands(curriculum):
    redrawn = 0
    for seed in SEEDS:
        example = curriculum.sample("fresh", np.random.default_rng(seed))
        assert example.skill == "fresh"
        task = next(t for t in curriculum.tasks if t.task_id == example.meta["task_id"])
        gold = [c["function"]["arguments"] for m in gold_messages(task, curriculum.view)
                if m["role"] == "assistant" for c in m.get("tool_calls") or []]
        calls = [c["function"]["arguments"] for m in example.messages if m["role"] == "assistant"
                 for c in m.get("tool_calls") or []]
        shown = "\n".join(m["content"] for m in example.messages if m["role"] in ("user", "tool"))
        for old_args, new_args in zip(gold, calls, strict=True):
            assert old_args.keys() == new_args.keys()
            for name, old in old_args.items():
                new = new_args[name]
                text = old if isinstance(old, str) else json.dumps(old)
                if text in example.meta["redrawn"]:  # redrawn: the call copies what the context now shows
                    new_text = new if isinstance(new, str) else json.dumps(new)
                    assert new_text == example.meta["redrawn"][text] and new_text in shown
                    assert type(new) is type(old)
                    redrawn += 1
                else:
                    assert new == old
        for old in example.meta["redrawn"]:  # the old values are gone from the context
            assert not re.search(rf"(?<![\w.]){re.escape(old)}(?![\w]|\.\d)", shown), old
    assert redrawn >= 2 * len(SEEDS)


def test_extracted_value_is_read_field_of_the_shown_response(curriculum):
    for seed in range(40):
        example = curriculum.extract(np.random.default_rng(seed))
        response, path, value = example.meta["response"], example.meta["path"], example.meta["value"]
        assert read_field(response, path) == value
        shown = example.messages[2]["content"]
        assert shown == ResponseView().render(response)
        assert json.dumps(value, ensure_ascii=False) in shown
        last = example.messages[3]["tool_calls"][0]["function"]["arguments"]
        assert value in last.values()


def test_values_are_mostly_new_not_the_shipped_ones(curriculum, booking):
    shipped = value_texts(v for t in booking.tasks for s in t.steps for v in s.call.arguments.values())
    new = total = 0
    for seed in range(30):
        example = curriculum.fill(np.random.default_rng(seed))
        for v in example.messages[1]["tool_calls"][0]["function"]["arguments"].values():
            for text in value_texts([v]):
                total += 1
                new += text not in shipped
    assert new / total > 0.7, (new, total)


def test_forbidden_values_never_appear_in_generated_calls(booking):
    # Forbid every argument value of the shipped tasks: no generated call may use one.
    forbidden = value_texts(v for t in booking.tasks for s in t.steps for v in s.call.arguments.values())
    curriculum = Curriculum(booking.tools, booking.tasks, forbidden=forbidden)
    seen = 0
    for skill in ("repeat", "fill", "extract", "dates"):
        for seed in range(25):
            example = curriculum.sample(skill, np.random.default_rng(seed))
            if example.skill == "episodes":
                continue  # a fallback to a gold episode (its values are the tasks' own)
            for m in example.messages:
                if m["role"] != "assistant":
                    continue
                values = [v for c in m.get("tool_calls") or [] for v in c["function"]["arguments"].values()]
                values += [m["content"]] if not m.get("tool_calls") else []
                for text in value_texts(values):
                    seen += 1
                    assert text.casefold() not in {f.casefold() for f in forbidden}, (skill, text)
    assert seen > 100


def test_like_keeps_the_shape_of_a_value():
    rng = np.random.default_rng(0)
    maker = ValueMaker()
    code = maker.like("PRCMOkYUz7Um", rng)
    assert len(code) == 12 and [c.isupper() for c in code] == [c.isupper() for c in "PRCMOkYUz7Um"]
    assert code[9].isdigit() and code != "PRCMOkYUz7Um"
    number = maker.like(-390625, rng)
    assert isinstance(number, int) and -999999 <= number <= -100000
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", maker.like("2024-11-15", rng))
    assert re.fullmatch(r"\d\d:\d\d", maker.like("08:00", rng))
    coordinate = maker.like(40.4168, rng)
    assert isinstance(coordinate, float) and 10 <= coordinate < 100
    place = maker.like("Madrid, Community of Madrid", rng)
    assert ", " in place and " of " in place and "Madrid" not in place


def test_date_phrases_name_the_date():
    today = datetime.date(2024, 3, 2)  # a Saturday
    target = datetime.date(2024, 3, 4)
    expected = {"March 4", "Mar 4", "4 March", "4/3", "the 4th of March", "March 4, 2024", "4 March 2024",
                "4/3/2024", "2024-03-04", "the day after tomorrow", "next Monday", "in 2 days"}
    produced = {date_phrase(target, today, np.random.default_rng(s)) for s in range(300)}
    assert produced <= expected and {"the day after tomorrow", "next Monday", "in 2 days"} <= produced
    tomorrow = {date_phrase(datetime.date(2024, 3, 3), today, np.random.default_rng(s)) for s in range(300)}
    assert "tomorrow" in tomorrow and "the day after tomorrow" not in tomorrow


def test_time_phrases_name_the_time():
    evening = {time_phrase("20:30", np.random.default_rng(s)) for s in range(100)}
    assert evening == {"20:30", "8:30 PM", "8:30 pm"}
    morning = {time_phrase("08:00", np.random.default_rng(s)) for s in range(100)}
    assert morning == {"08:00", "8:00 AM", "8:00 am", "8 AM"}
    assert "midnight" in {time_phrase("00:00", np.random.default_rng(s)) for s in range(100)}


def test_dates_skill_writes_the_stated_day_in_api_form(curriculum):
    for seed in range(30):
        example = curriculum.dates(np.random.default_rng(seed))
        if example.skill != "dates":
            continue
        request = example.messages[0]["content"]
        today = datetime.date.fromisoformat(example.meta["today"])
        assert today.isoformat() in request
        for name, value in example.meta["dates"].items():
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                day = datetime.date.fromisoformat(value)
                assert today <= day <= today + datetime.timedelta(days=60 + 14 * 4)
            else:
                assert re.fullmatch(r"\d\d:\d\d", value)
        call = example.messages[1]["tool_calls"][0]["function"]["arguments"]
        assert all(call[k] == v for k, v in example.meta["dates"].items())


def test_schedule_interpolates_and_normalises():
    schedule = Schedule.from_list([{"at": 0.0, "fill": 3.0, "episodes": 1.0}, {"at": 1.0, "episodes": 2.0}])
    start, middle, end = schedule.weights(0.0), schedule.weights(0.5), schedule.weights(7.0)
    assert start["fill"] == pytest.approx(0.75) and start["episodes"] == pytest.approx(0.25)
    assert middle["fill"] == pytest.approx(1.5 / 3.0) and middle["episodes"] == pytest.approx(1.5 / 3.0)
    assert end == {**{s: 0.0 for s in SKILLS}, "episodes": 1.0}
    with pytest.raises(ValueError, match="unknown skill"):
        Schedule.from_list([{"at": 0.0, "juggle": 1.0}])
    with pytest.raises(ValueError, match="increasing"):
        Schedule.from_list([{"at": 0.5, "fill": 1.0}, {"at": 0.1, "fill": 1.0}])


def test_draw_follows_the_schedule(curriculum):
    schedule = Schedule.from_list([{"at": 0.0, "fill": 1.0}, {"at": 1.0, "episodes": 1.0}])
    early = draw_examples(curriculum, schedule, 0.0, 20, np.random.default_rng(0))
    late = draw_examples(curriculum, schedule, 1.0, 20, np.random.default_rng(0))
    assert {e.skill for e in early} == {"fill"} and {e.skill for e in late} == {"episodes"}
    mixed = draw_examples(curriculum, schedule, 0.5, 200, np.random.default_rng(0))
    share = sum(e.skill == "fill" for e in mixed) / len(mixed)
    assert 0.4 < share < 0.6
