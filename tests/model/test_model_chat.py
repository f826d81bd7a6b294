"""Chat format: our renderer equals transformers' apply_chat_template with our template; the
encoder's policy mask covers exactly the assistant tokens."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestra.model.chat import (
    IM_END,
    TOOL_CALL_CLOSE,
    ChatFormatError,
    assistant_body,
    chat_segments,
    encode_chat,
    install_chat_template,
    render_chat,
    stop_sequences,
    tool_responses_text,
)

TOOLS = [
    {"type": "function", "function": {
        "name": "search_flights", "description": "Find flights — any airline",
        "parameters": {"type": "object", "properties": {"origin": {"type": "string"}, "date": {"type": "string"}},
                       "required": ["origin"]}}},
    {"type": "function", "function": {"name": "book", "description": "Book it", "parameters": {"type": "object"}}},
]
CALL = {"function": {"name": "search_flights", "arguments": {"origin": "BER", "date": "2024-11-15"}}}
CONVERSATION = [
    {"role": "system", "content": "You book travel."},
    {"role": "user", "content": "Flights from Berlin on 15 November?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": '{"flights": [{"id": 7, "price": 120}]}'},
    {"role": "assistant", "content": "Booking it.", "tool_calls": [
        {"function": {"name": "book", "arguments": '{"id": 7}'}},  # string arguments go in verbatim
        {"function": {"name": "book", "arguments": {"id": 8, "note": "café"}}},
    ]},
    {"role": "tool", "content": "ok 7"},
    {"role": "tool", "content": "ok 8"},
    {"role": "assistant", "content": "Both booked."},
    {"role": "user", "content": "Thanks!"},
]
VARIANTS = [
    CONVERSATION,
    CONVERSATION[1:],  # no system message: the default one is used
    CONVERSATION[:2],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
     {"role": "system", "content": "late system turn"}, {"role": "user", "content": "again"}],
]


@pytest.mark.parametrize("messages", VARIANTS)
@pytest.mark.parametrize("tools", [None, TOOLS])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_render_equals_apply_chat_template(tiny_tokenizer, messages, tools, add_generation_prompt):
    expected = tiny_tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    assert render_chat(messages, tools, add_generation_prompt) == expected


def test_rendered_format_is_qwen25():
    text = render_chat(CONVERSATION, TOOLS)
    assert text.startswith("<|im_start|>system\nYou book travel.\n\n# Tools\n")
    assert '\n<tools>\n{"type": "function", "function": {"name": "search_flights"' in text
    assert ("<|im_start|>assistant\n<tool_call>\n"
            '{"name": "search_flights", "arguments": {"origin": "BER", "date": "2024-11-15"}}\n</tool_call><|im_end|>\n') in text
    assert ("<|im_start|>assistant\nBooking it.\n<tool_call>\n{\"name\": \"book\", \"arguments\": {\"id\": 7}}\n"
            "</tool_call>\n<tool_call>\n{\"name\": \"book\", \"arguments\": {\"id\": 8, \"note\": \"café\"}}\n</tool_call>") in text
    assert ("<|im_start|>user\n<tool_response>\nok 7\n</tool_response>\n<tool_response>\nok 8\n</tool_response>"
            "<|im_end|>\n") in text


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contents=st.lists(_text, min_size=4, max_size=4), name=st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
       arguments=st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.one_of(_text, st.integers()), max_size=3))
def test_render_equals_template_on_random_text(tiny_tokenizer, contents, name, arguments):
    messages = [
        {"role": "user", "content": contents[0]},
        {"role": "assistant", "content": contents[1], "tool_calls": [{"function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "content": contents[2]},
        {"role": "assistant", "content": contents[3]},
    ]
    expected = tiny_tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False)
    assert render_chat(messages, TOOLS) == expected


def test_policy_mask_marks_exactly_assistant_tokens(tiny_tokenizer):
    encoded = encode_chat(tiny_tokenizer, CONVERSATION, TOOLS)
    text = render_chat(CONVERSATION, TOOLS)
    assert encoded.token_ids.tolist() == tiny_tokenizer.encode(text, add_special_tokens=False)

    # Independent expectation from character offsets: a token is the policy's iff it lies inside the
    # text of an assistant message's body plus its closing <|im_end|>.
    policy_spans, start = [], 0
    for message in CONVERSATION:
        if message["role"] == "assistant":
            body = assistant_body(message) + IM_END
            begin = text.index("<|im_start|>assistant\n" + body, start) + len("<|im_start|>assistant\n")
            policy_spans.append((begin, begin + len(body)))
            start = begin + len(body)
    offsets = tiny_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    expected = [int(any(b <= lo and hi <= e for b, e in policy_spans)) for lo, hi in offsets]
    assert encoded.policy_mask.tolist() == expected
    assert sum(expected) > 20 and len(policy_spans) == 3

    decoded = tiny_tokenizer.decode(encoded.token_ids[encoded.policy_mask == 1])
    assert decoded == "".join(assistant_body(m) + IM_END for m in CONVERSATION if m["role"] == "assistant")
    # each policy run ends on <|im_end|>; the newline after it is the template's
    im_end = tiny_tokenizer.convert_tokens_to_ids(IM_END)
    run_ends = np.flatnonzero(np.diff(np.append(encoded.policy_mask, 0)) == -1)
    assert encoded.token_ids[run_ends].tolist() == [im_end] * 3


def test_generation_prompt_is_not_policy(tiny_tokenizer):
    encoded = encode_chat(tiny_tokenizer, CONVERSATION[:2], TOOLS, add_generation_prompt=True)
    assert encoded.policy_mask.sum() == 0
    assert tiny_tokenizer.decode(encoded.token_ids).endswith("<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("closed", [False, True])
def test_tool_responses_text_continues_a_sampled_turn(closed):
    history = CONVERSATION[:3]  # ends with the assistant's tool call
    sampled_prefix = render_chat(history[:2], TOOLS, add_generation_prompt=True)
    sampled = assistant_body(history[2]) + (IM_END if closed else "")
    continued = sampled_prefix + sampled + tool_responses_text(["r1", "r2"], assistant_turn_closed=closed)
    expected = render_chat(history + [{"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"}], TOOLS,
                           add_generation_prompt=True)
    assert continued == expected


def test_stop_sequences(tiny_tokenizer):
    ids = tiny_tokenizer.convert_tokens_to_ids
    sequences = stop_sequences(tiny_tokenizer)
    assert [ids(IM_END)] in sequences and [ids(TOOL_CALL_CLOSE)] in sequences


def test_bad_messages_and_tokenizers_are_refused(tiny_tokenizer):
    with pytest.raises(ChatFormatError, match="unknown role 'robot'"):
        render_chat([{"role": "robot", "content": "x"}])
    with pytest.raises(ChatFormatError, match="needs string content"):
        render_chat([{"role": "user", "content": None}])
    with pytest.raises(ChatFormatError, match="needs a name and arguments"):
        chat_segments([{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "x"}}]}])

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    plain = Tokenizer(models.WordLevel({"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    plain.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ChatFormatError, match="no tokens for"):
        install_chat_template(PreTrainedTokenizerFast(tokenizer_object=plain, unk_token="[UNK]"))
