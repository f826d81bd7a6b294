"""A tokenizer built for copying values: a value gets the same ids wherever it appears.

A policy that fills a call's arguments mostly copies: a city from the request, an id from an earlier
tool response. Copying is only learnable when the value has the same token ids at its source and in
the call. Plain byte-level BPE breaks that: `" FCO"` in a sentence and `"FCO"` after a JSON quote are
different tokens, and digits split one per token give a copy nothing distinctive to match on.

Pre-tokenization (the text is cut into pieces; BPE then runs inside each piece on its own, so a
piece's ids never depend on its neighbours):

- word runs: letters, marks, `_` and anything else that is not whitespace, punctuation, a symbol or
  an ASCII digit (`arrival_date`, `Sydney`, `São`, `日本語`). Learned BPE splits rare words into
  pieces, but always the same way.
- ASCII digit runs, cut into groups of `digit_group` (default 3) digits from the left; every group is
  one token (all 1,110 strings of 1-3 digits are in the vocabulary).
- runs of JSON structure and whitespace: ``" { } [ ] : ,`` plus whitespace (`":"`, `", "`,
  `"},{"`, `"\\n    "`); BPE learns the common runs as single tokens, which keeps JSON short.
- any other punctuation or symbol is a piece of its own (`-`, `.`, `'`, `=`, `/`, emoji).

Since a word never carries a space and a value's first and last characters are (nearly always) a
word character, a digit or `-`/`.`-style punctuation, the value's boundaries are piece boundaries in
a sentence, after a JSON quote, and in compact or pretty JSON alike; so its ids are the same. What
can break that: a string value that starts or ends with whitespace or one of ``" { } [ ] : ,`` (that
character merges into the neighbouring run), and values cut mid-piece (e.g. truncated strings).

Why groups of 3 digits, from the left:
- dates `2024-11-15` -> `202 4 - 11 - 15`: month and day are whole tokens; times `08:00` -> `08 : 00`;
- ids `372982806` -> `372 982 806` (3 tokens, against 9 single digits);
- coordinates `-122.386001` -> `- 122 . 386 001`, `40.4168` -> `40 . 416 8`; left alignment keeps the
  fraction's leading digits together, which is where coordinates differ.
- Each group is one of 1,000 tokens, so within one context it rarely recurs: the copy of a 3-digit
  group can be found by matching the group itself (with single digits every digit recurs and nothing
  unique is left to match). Groups of 4 would need 10,000 vocabulary entries; groups of 2 (110
  entries) recur ten times as often. The price is 1,110 of the vocabulary's entries.
  A year is split (`202 4`); that costs one token and nothing in copying.

Words, JSON runs and unusual characters go through byte-level BPE (GPT-2's byte alphabet, all 256
bytes present), so any text round-trips byte for byte, unknown characters included; there is no
normalizer and no cleanup of spaces on decoding.

Added tokens, matched in raw text before pre-tokenization and never produced otherwise (the
pre-tokenizer splits `<`, `|` and `>` into pieces of their own, so no BPE token can spell them):
`<|endoftext|>` (eos and pad), `<|im_start|>`, `<|im_end|>` are special; `<tool_call>`,
`</tool_call>`, `<tool_response>`, `</tool_response>`, `<tools>`, `</tools>` are single tokens that,
as in Qwen2.5, are not flagged special, so `decode(..., skip_special_tokens=True)` keeps the tags a
tool-call parser needs.

The trade: whitespace and punctuation are tokens of their own, so English prose takes more tokens
than with GPT-2 style BPE (each space is one); compact JSON, the bulk of the context, does not.

This module depends only on `tokenizers`/`transformers`; corpora are plain lists of strings
(`experiments/build_tokenizer.py` builds one from an ecosystem).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

END_OF_TEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CONTROL_TOKENS = (END_OF_TEXT, IM_START, IM_END)
TOOL_TAGS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>", "</tools>")
ADDED_TOKENS = CONTROL_TOKENS + TOOL_TAGS

DEFAULT_VOCAB_SIZE = 4096  # a multiple of 128, near the 3-4k a d=256 policy can afford
DEFAULT_DIGIT_GROUP = 3
MAX_DIGIT_GROUP = 4  # 4 already puts 11,110 digit strings in the vocabulary

# JSON structure and whitespace merge into runs; other punctuation/symbols stay one character each.
_STRUCTURE = r'[\s"{}\[\]:,]+'
_WORD = r"(?:_|[^\s\p{P}\p{S}0-9])+"
_ADDED_RE = re.compile("|".join(re.escape(t) for t in ADDED_TOKENS))
_DIGIT_RE = re.compile(r"[0-9]")


def split_pattern(digit_group: int = DEFAULT_DIGIT_GROUP) -> str:
    """The Oniguruma regex whose matches are the pieces (it matches every character)."""
    _check_digit_group(digit_group)
    return f"[0-9]{{1,{digit_group}}}|{_STRUCTURE}|{_WORD}|."


def pre_tokenizer(digit_group: int = DEFAULT_DIGIT_GROUP) -> pre_tokenizers.PreTokenizer:
    # Split works on the raw text; ByteLevel then only maps each piece to the byte alphabet.
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_pattern(digit_group)), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def pieces(text: str, digit_group: int = DEFAULT_DIGIT_GROUP) -> list[str]:
    """The pieces of `text` (as text, not byte-mapped): what BPE sees one at a time."""
    split = pre_tokenizers.Split(Regex(split_pattern(digit_group)), behavior="isolated")
    return [p for p, _ in split.pre_tokenize_str(text)]


def _check_digit_group(digit_group: int) -> None:
    if not 1 <= digit_group <= MAX_DIGIT_GROUP:
        raise ValueError(f"digit_group must be in 1..{MAX_DIGIT_GROUP}, got {digit_group}")


def _digit_strings(digit_group: int) -> list[str]:
    """Every digit string of 2..digit_group digits (single digits are in the byte alphabet)."""
    return [f"{i:0{n}d}" for n in range(2, digit_group + 1) for i in range(10 ** n)]


def _is_ascii_digits(s: str) -> bool:
    # str.isdigit() would also accept "²", which is a byte-alphabet character here.
    return bool(s) and all("0" <= c <= "9" for c in s)


def _training_texts(corpus_texts: Iterable[str]) -> Iterator[str]:
    """The corpus without added tokens, every digit replaced by 0.

    Digit groups get fixed merges afterwards, so the trainer should spend no vocabulary on them;
    with all digits 0 it learns at most `00`, `000`, .. (digit pieces still have the same lengths,
    and no other piece changes, so the non-digit merges are the ones the real corpus gives).
    """
    for text in corpus_texts:
        for part in _ADDED_RE.split(text):
            if part:
                yield _DIGIT_RE.sub("0", part)


def build_tokenizer(corpus_texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE,
                    chat_template: str | None = None, *, digit_group: int = DEFAULT_DIGIT_GROUP,
                    min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train the copy-friendly tokenizer on `corpus_texts` and wrap it for transformers.

    The result has at most `vocab_size` entries (fewer when the corpus runs out of merges).
    """
    _check_digit_group(digit_group)
    digits = _digit_strings(digit_group)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    floor = len(ADDED_TOKENS) + len(alphabet) + len(digits)
    if vocab_size <= floor:
        raise ValueError(f"vocab_size {vocab_size} leaves no room for merges: added tokens, 256 bytes and "
                         f"{len(digits)} digit groups already take {floor}")

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer(digit_group)
    # Room for the `00`.. tokens the trainer may learn; they are replaced below.
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(digits) + digit_group - 1, min_frequency=min_frequency,
        special_tokens=list(ADDED_TOKENS), initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(_training_texts(corpus_texts), trainer=trainer)

    model = json.loads(tok.to_str())["model"]
    vocab, merges = _with_digit_merges(model["vocab"], [tuple(m) for m in model["merges"]],
                                       digits, vocab_size)
    final = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    final.pre_tokenizer = pre_tokenizer(digit_group)
    final.decoder = decoders.ByteLevel()
    final.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in CONTROL_TOKENS])
    final.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TAGS])
    return wrap(final, chat_template)


def _with_digit_merges(vocab: dict[str, int], merges: list[tuple[str, str]], digits: list[str],
                       vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Replace learned digit merges by fixed ones that make every digit group a single token.

    A group gets a merge for each way to cut it in two, so whatever pair BPE merges first inside
    the group, a merge towards the whole group exists (and the group's id never depends on order).
    """
    learned = [m for m in merges if not _is_ascii_digits(m[0] + m[1])]
    dropped = {m[0] + m[1] for m in merges} - {m[0] + m[1] for m in learned}
    # Trim the latest learned merges if the budget is exceeded; a token made by merge i is only
    # used by merges after i, so dropping a suffix of the merge list leaves a valid BPE.
    excess = len(vocab) - len(dropped) + len(digits) - vocab_size
    if excess > 0:
        for a, b in learned[-excess:]:
            dropped.add(a + b)
        learned = learned[:-excess]
    kept = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in dropped]
    tokens = kept + digits
    fixed = [(d[:i], d[i:]) for d in digits for i in range(1, len(d))]
    return {t: i for i, t in enumerate(tokens)}, learned + fixed


def wrap(tok: Tokenizer, chat_template: str | None = None) -> PreTrainedTokenizerFast:
    """A transformers tokenizer around a trained `tokenizers.Tokenizer` (no BOS, nothing added)."""
    kwargs = dict(tokenizer_object=tok, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT,
                  extra_special_tokens=[IM_START, IM_END], clean_up_tokenization_spaces=False)
    if chat_template is not None:
        kwargs["chat_template"] = chat_template
    return PreTrainedTokenizerFast(**kwargs)


def save_tokenizer(tok: PreTrainedTokenizerFast, out_dir: str | os.PathLike) -> list[str]:
    """Write the tokenizer files; `AutoTokenizer.from_pretrained(out_dir)` loads them back."""
    os.makedirs(out_dir, exist_ok=True)
    return list(tok.save_pretrained(str(out_dir)))
