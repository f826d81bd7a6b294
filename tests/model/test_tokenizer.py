"""The copy-friendly tokenizer: values copy with the same ids, text round-trips, numbers group."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from experiments.build_tokenizer import byte_level_bpe, copy_consistency
from orchestra.env.codec import format_tool_call
from orchestra.env.views import ResponseView
from orchestra.model.tokenizer import (
    ADDED_TOKENS, CONTROL_TOKENS, build_tokenizer, pieces, save_tokenizer)

VOCAB = 2048


@pytest.fixture(scope="module")
def corpus(booking):
    """A reduced corpus for speed: schemas, queries, gold calls and pruned responses of the tasks."""
    view = ResponseView()
    texts = [json.dumps(t.to_json(), ensure_ascii=False) for t in booking.tools.values()]
    for task in booking.tasks:
        texts.append(task.query)
        for step in task.steps:
            texts += [format_tool_call(step.call), view.render(step.response)]
    return texts


@pytest.fixture(scope="module")
def tok(corpus):
    return build_tokenizer(corpus, VOCAB)


def test_values_copy_with_the_same_ids(tok, booking):
    result = copy_consistency(tok, booking.tasks)
    found = result["query_found"] + result["response_found"]
    print(f"\ncopy consistency {result['fraction']:.3f} over {found} (value, source) pairs: "
          f"query {result['query_same']}/{result['query_found']}, "
          f"responses {result['response_same']}/{result['response_found']}; "
          f"{result['nowhere']} of {result['values']} values found verbatim in neither")
    assert result["query_found"] > 100 and result["response_found"] > 100  # the check does bite
    assert result["fraction"] == 1.0, result["failures"][:5]


def test_byte_level_bpe_does_not_copy(corpus, booking):
    # The same measurement on GPT-2 style BPE (" Sydney" vs "Sydney"): the check can fail.
    result = copy_consistency(byte_level_bpe(corpus, VOCAB), booking.tasks[:20])
    print(f"\nbyte-level BPE copy consistency on 20 tasks {result['fraction']:.3f}")
    assert result["fraction"] < 0.8


# A value as calls carry it: words, digits and inner punctuation/spaces, edges not whitespace or JSON.
_inner = st.text(st.sampled_from("abcXYZé日 0123456789-./'_,:"), max_size=12)
_edge = st.sampled_from("aZé日0795-.'")
values = st.builds(lambda a, b, c: a + b + c, _edge, _inner, _edge)
CONTEXTS = ('{{"key": "{}"}}', '{{"a":1,"key":"{}","b":[2]}}', 'Please go to {} and back.', "({})",
            '<tool_call>\n{{"name": "f", "arguments": {{"q": "{}"}}}}\n</tool_call>', "{}\n")


@given(value=values)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_value_ids_do_not_depend_on_context(tok, value):
    alone = tok.encode(value, add_special_tokens=False)
    for context in CONTEXTS:
        text = context.format(value)
        start = text.index(value)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        inside = [i for i, (s, e) in zip(enc["input_ids"], enc["offset_mapping"])
                  if s >= start and e <= start + len(value)]
        assert inside == alone, (context, value)


@given(text=st.text())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_text_round_trips(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text


@given(parts=st.lists(st.one_of(st.text(max_size=20), st.sampled_from(ADDED_TOKENS)), max_size=8))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_text_with_added_tokens_round_trips(tok, parts):
    text = "".join(parts)
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_added_tokens_are_single_ids(tok):
    ids = [tok.convert_tokens_to_ids(t) for t in ADDED_TOKENS]
    assert len(set(ids)) == len(ADDED_TOKENS) and tok.unk_token_id not in ids
    for token, i in zip(ADDED_TOKENS, ids):
        assert tok.encode(token, add_special_tokens=False) == [i]
        assert tok.encode(f"x{token}\n{{", add_special_tokens=False).count(i) == 1
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert set(CONTROL_TOKENS) <= set(tok.all_special_tokens)
    # The tool tags survive skip_special_tokens (a parser reads them from decoded text).
    call = '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>'
    assert tok.decode(tok.encode(call), skip_special_tokens=True) == call.removesuffix("<|im_end|>")


NEAR_MISSES = ["<tool_call", "tool_call>", "< tool_call>", "<|im_start|", "<|im_end |>", "<tools >",
               "<|endoftext|", "</tool_response", "<tool_call/>", "<TOOL_CALL>"]


@given(text=st.one_of(st.text(), st.lists(st.sampled_from(NEAR_MISSES + ["<", "|", ">", "/", "tool"]))
                      .map("".join)))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_added_tokens_never_come_from_plain_text(tok, text):
    added = {tok.convert_tokens_to_ids(t) for t in ADDED_TOKENS}
    ids = tok.encode(text, add_special_tokens=False)
    expected = sum(text.count(t) for t in ADDED_TOKENS)  # only where the text spells them out
    assert sum(i in added for i in ids) == expected


@pytest.mark.parametrize("text, groups", [
    ("2024-11-15", ["202", "4", "-", "11", "-", "15"]),
    ("08:00", ["08", ":", "00"]),
    ("372982806", ["372", "982", "806"]),
    ("-122.386001", ["-", "122", ".", "386", "001"]),
    ("40.4168", ["40", ".", "416", "8"]),
    ("47.4334983825684", ["47", ".", "433", "498", "382", "568", "4"]),
    ("eyJ1ZmkiOi0xNjAzMTM1fQ==", ["eyJ", "1", "ZmkiOi", "0", "xNjAzMTM", "1", "fQ", "=", "="]),
])
def test_numbers_split_into_groups_of_three(tok, text, groups):
    assert pieces(text) == groups
    digit_groups = [g for g in groups if g.isdigit()]
    tokens = tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))
    assert [t for t in tokens if t.isdigit()] == digit_groups  # every group is one token


def test_every_digit_group_is_one_token(tok):
    groups = [f"{i:0{n}d}" for n in (1, 2, 3) for i in range(10 ** n)]
    encoded = tok(groups, add_special_tokens=False)["input_ids"]
    assert all(len(ids) == 1 for ids in encoded)
    assert len({ids[0] for ids in encoded}) == len(groups)


@given(digits=st.text(st.sampled_from("0123456789"), min_size=1, max_size=20))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_digit_runs_group_from_the_left(tok, digits):
    tokens = tok.convert_ids_to_tokens(tok.encode(digits, add_special_tokens=False))
    assert tokens == [digits[i:i + 3] for i in range(0, len(digits), 3)]


def test_vocabulary_is_dense_and_within_budget(tok):
    ids = sorted(tok.get_vocab().values())
    assert ids == list(range(len(ids)))
    assert len(tok) <= VOCAB


def test_too_small_vocabulary_is_refused(corpus):
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer(corpus[:5], vocab_size=1000)


def test_save_and_load_round_trip(tok, corpus, tmp_path):
    template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    with_template = build_tokenizer(corpus[:200], 1600, chat_template=template)
    for original, out in ((tok, tmp_path / "plain"), (with_template, tmp_path / "chat")):
        save_tokenizer(original, out)
        loaded = AutoTokenizer.from_pretrained(out)
        assert loaded.get_vocab() == original.get_vocab()
        sample = corpus[:20] + ["<|im_start|>user\nFly on 2024-11-15 at 08:00 ☃<|im_end|>\n"]
        assert [loaded.encode(t) for t in sample] == [original.encode(t) for t in sample]
        assert loaded.eos_token == original.eos_token and loaded.pad_token == original.pad_token
        assert loaded.decode(loaded.encode(sample[-1])) == sample[-1]
    assert loaded.chat_template == template
    rendered = loaded.apply_chat_template([{"role": "user", "content": "hi 12"}], tokenize=False)
    assert rendered == "<|im_start|>user\nhi 12<|im_end|>\n"


def test_load_tokenizer_keeps_the_saved_tokenizer_beside_a_qwen2_config(tmp_path):
    import json

    from orchestra.model.chat import CHAT_TEMPLATE, load_tokenizer
    from orchestra.model.tokenizer import build_tokenizer, save_tokenizer

    tok = build_tokenizer(["Find flights from Rome to Oslo on 2024-11-15.", '{"city": "Lima"}'] * 5, 1500,
                          CHAT_TEMPLATE)
    save_tokenizer(tok, str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    text = 'Weather in Lima? <tool_call>\n{"name": "w", "arguments": {"city": "Lima"}}\n</tool_call>'
    assert load_tokenizer(tmp_path).encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
