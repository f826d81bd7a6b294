"""Training conversations for pretraining a small policy from scratch: skills first, episodes later.

A policy that orchestrates tool calls mostly copies: a place from the request into a call, an id
from an earlier response into the next call, a date in the form the API takes. A small model
trained only on whole episodes learns the JSON format and which function to call quickly, but
copying late, and until then it repeats memorised frequent values. The generators here produce
short conversations, in the same chat format as the episodes, that exercise one skill each:

- `bare_copy`: <|im_start|>, 5 to 24 random vocabulary tokens, a newline, the same tokens again
              (in half the drills drawn from a pool of that size, so some recur). Random tokens
              cannot be recalled, only copied; with no constant prefix before them, copying heads
              form within a few hundred steps from scratch (behind the chat frame they do not).
- `copy`:     the same drill inside a random share of the chat frame of a "Repeat exactly:"
              request, from none to the whole one (system prompt, user turn, assistant header).
              Copying learned bare is tied to the start token and does not carry over to the chat
              frame; a varying frame makes the heads find the span by what precedes it
              (measurements in conf/pretrain.yaml).
- `repeat`:   say one to six values back verbatim, in order (no tools).
- `fill`:     a request states some argument values in prose; the answer is the tool call.
- `extract`:  call A (arguments stated in the request), read its response, call B with the value
              found at a response path ("the id of the 2nd product", or the path itself).
- `dates`:    a request gives "today" and dates/times in varied phrasings ("the day after
              tomorrow", "November 15", "15/11", "8 AM"); the call has them as YYYY-MM-DD / HH:MM.
- `episodes`: whole gold episodes of synthesised tasks (`rl.episodes.gold_messages`).
- `fresh`:    the same episodes with every value the episode shows and a call uses (not enums)
              redrawn, consistently in the request, the responses and the calls: nothing to
              recall, so the only way to write the calls is to copy.

Values are drawn broadly so the model learns to copy rather than to memorise: pseudo-words built
from syllables for names, and shipped argument values (of the *training* tasks only) and response
values mutated shape-preservingly (every letter and digit redrawn; words become pseudo-words).
A `forbidden` set (the held-out tasks' argument values) is never produced.

`Schedule` mixes the skills with weights that change over training (linear between points), so
early batches are mostly short skill drills and later ones mostly whole episodes. Conversations
are encoded with `model.chat.encode_chat`, so the loss mask covers only what the policy writes.

Conventions of the date phrasings: "15/11" is day/month; a date given without a year is its first
occurrence on or after "today"; "next Friday" is the first Friday after today (1 to 7 days on).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from orchestra.data.types import Call, Task, ToolSpec
from orchestra.data.canonical import normalise_value
from orchestra.env.validators import validate
from orchestra.env.views import ResponseView, ToolView
from orchestra.model.chat import IM_END, IM_START, EncodedChat, encode_chat, render_chat
from orchestra.rl.episodes import gold_messages, tool_schemas
from orchestra.synth.index import value_strings
from orchestra.synth.paths import format_path, is_wrapper, leaves, read_field
from orchestra.synth.realise import format_value, ordinal, words

SKILLS = ("bare_copy", "copy", "repeat", "fill", "extract", "dates", "episodes", "fresh")

# Pseudo-word parts: generic European-looking syllables, so names tokenize into common pieces.
_ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "pr", "r", "s",
           "sh", "st", "t", "tr", "v", "w", "z", "")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou", "ie", "y")
_CODAS = ("", "", "", "n", "r", "l", "s", "m", "nd", "rt", "ck", "th", "ng", "x")
_PLACE_SUFFIXES = (" Airport", " City", " Beach", " Station", " Park", " Bay", " Valley", " Island", " Old Town")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_START_WORDS = {"depart", "arrival", "pick", "start", "min", "from", "checkin", "outbound", "begin"}
_END_WORDS = {"return", "departure", "drop", "end", "max", "to", "checkout", "until"}
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HHMM = re.compile(r"\d{2}:\d{2}")
_RUNS = re.compile(r"[^\W\d_]+|\d+|[\W_]+")  # letter runs, digit runs, everything else


@dataclasses.dataclass(frozen=True)
class Example:
    """One training conversation.

    `copies` lists (value text, message index) pairs: each value the answer writes and the message
    it is copied from verbatim (the tests hold the generators to that). `meta` holds what a check
    needs (for `extract`: the response object, the path and the value read there). `plain` is set
    instead of `messages` for a copy drill: vocabulary tokens said back after the last `frame`
    share of the tokens of a "Repeat exactly:" user turn (none: <|im_start|> alone), then the
    assistant header (`meta["header"]`) or a newline (the loss on the second copy and <|im_end|>).
    """
    skill: str
    messages: list[dict]
    tools: list[dict] | None
    copies: tuple[tuple[str, int], ...] = ()
    meta: dict = dataclasses.field(default_factory=dict)
    plain: tuple[str, ...] | None = None

    def encode(self, tokenizer) -> EncodedChat:
        if self.plain is None:
            return encode_chat(tokenizer, self.messages, self.tools)
        ids = tokenizer.convert_tokens_to_ids(list(self.plain))
        if any(i is None or i == tokenizer.unk_token_id for i in ids):  # None: a tokenizer without <unk>
            raise ValueError(f"copy drill tokens not in the tokenizer's vocabulary: {self.plain}")
        request, header = _copy_frame(tokenizer)
        kept = round(self.meta.get("frame", 0.0) * len(request))
        start = request[len(request) - kept:] if kept else tokenizer.encode(IM_START, add_special_tokens=False)
        end = header if self.meta.get("header") else tokenizer.encode("\n", add_special_tokens=False)
        context = start + ids + end
        answer = ids + tokenizer.encode(IM_END, add_special_tokens=False)
        return EncodedChat(np.asarray(context + answer, np.int32),
                           np.asarray([0] * len(context) + [1] * len(answer), np.int32))


@functools.lru_cache(maxsize=4)  # the same for every drill: encoded once per tokenizer
def _copy_frame(tokenizer) -> tuple[list[int], list[int]]:
    """Token ids of a chat up to a "Repeat exactly: " request's end, and of the assistant header."""
    text = render_chat([{"role": "user", "content": "Repeat exactly: "}], add_generation_prompt=True)
    cut = text.rindex(IM_END)
    return (tokenizer.encode(text[:cut], add_special_tokens=False),
            tokenizer.encode(text[cut:], add_special_tokens=False))


# ---- values ----------------------------------------------------------------------------------------

class ValueMaker:
    """Random values: pseudo-words, places, dates, times, and shape-preserving mutations.

    `forbidden`: values never to produce (compared as normalised strings, ignoring case).
    """

    def __init__(self, forbidden: Iterable[str] = ()):
        self.forbidden = {str(v).casefold() for v in forbidden}

    def allowed(self, value) -> bool:
        return not any(s.casefold() in self.forbidden for s in value_strings(value))

    def draw(self, make, rng: np.random.Generator, tries: int = 50):
        """`make(rng)` until an allowed value comes out (None if none does in `tries`)."""
        for _ in range(tries):
            value = make(rng)
            if self.allowed(value):
                return value
        return None

    @staticmethod
    def word(rng: np.random.Generator, syllables: int | None = None) -> str:
        n = syllables or int(rng.integers(1, 4))
        out = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                      + _CODAS[rng.integers(len(_CODAS))] for _ in range(n))
        return out if len(out) >= 3 else out + _VOWELS[rng.integers(len(_VOWELS))] + "n"

    def place(self, rng: np.random.Generator) -> str:
        name = " ".join(self.word(rng).capitalize() for _ in range(int(rng.integers(1, 3))))
        r = rng.random()
        if r < 0.2:
            name += _PLACE_SUFFIXES[rng.integers(len(_PLACE_SUFFIXES))]
        elif r < 0.45:
            name += ", " + self.word(rng).capitalize()
        return name

    @staticmethod
    def date(rng: np.random.Generator, start=datetime.date(2021, 1, 1), days: int = 365 * 8) -> datetime.date:
        return start + datetime.timedelta(days=int(rng.integers(days)))

    @staticmethod
    def time(rng: np.random.Generator) -> str:
        return f"{int(rng.integers(24)):02d}:{int(rng.choice([0, 0, 15, 30, 45])):02d}"

    def _mutate_text(self, text: str, rng: np.random.Generator) -> str:
        if ISO_DATE.fullmatch(text):
            return self.date(rng).isoformat()
        if _HHMM.fullmatch(text):
            return self.time(rng)
        out = []
        for run in _RUNS.findall(text):
            if run.isdigit():
                first = str(rng.integers(1, 10)) if run[0] != "0" else "0"
                out.append(first + "".join(str(d) for d in rng.integers(0, 10, len(run) - 1)))
            elif run[0].isalpha():
                out.append(self._mutate_letters(run, rng))
            else:
                out.append(run)
        return "".join(out)

    def _mutate_letters(self, run: str, rng: np.random.Generator) -> str:
        if run.islower() and len(run) <= 3:
            return run  # function words ("of", "de") keep names readable
        if len(run) >= 3 and (run.islower() or run.istitle()):
            new = self.word(rng, max(1, round(len(run) / 3)))
            return new.capitalize() if run.istitle() else new
        # ids and codes: each letter redrawn with its case
        lower = "abcdefghijklmnopqrstuvwxyz"
        return "".join((lower[rng.integers(26)].upper() if c.isupper() else lower[rng.integers(26)])
                       if c.isalpha() else c for c in run)

    def like(self, value, rng: np.random.Generator):
        """A random value of the same shape: same type, digit counts, letter case pattern."""
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            digits = len(str(abs(value)))
            new = int(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits))
            return -new if value < 0 else new
        if isinstance(value, float):
            text = repr(abs(value))
            if "e" in text or "." not in text:
                return float(np.round(rng.uniform(-1, 1) * abs(value) * 2, 6))
            whole, frac = text.split(".")
            new = float(self._mutate_text(whole, rng) + "." + self._mutate_text(frac, rng))
            return -new if value < 0 else new
        if isinstance(value, str):
            return self._mutate_text(value, rng)
        if isinstance(value, list):
            return [self.like(v, rng) for v in value]
        if isinstance(value, dict):
            return {k: self.like(v, rng) for k, v in value.items()}
        return value


# ---- phrasing helpers ------------------------------------------------------------------------------

def _choice(rng: np.random.Generator, items: Sequence):
    return items[int(rng.integers(len(items)))]


def _state(param: str, text: str, rng: np.random.Generator) -> str:
    """One argument stated in prose."""
    name = words(param)
    forms = (f"{name} {text}", f"{name} = {text}", f"the {name} {text}", f"{text} as the {name}",
             f"{name}: {text}", f"{param} {text}")
    return _choice(rng, forms)


def _join(parts: list[str], rng: np.random.Generator) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    sep = _choice(rng, (", ", "; "))
    return sep.join(parts[:-1]) + _choice(rng, (" and ", sep)) + parts[-1]


def _ask(function: str, stated: str, rng: np.random.Generator) -> str:
    """A request to call `function` with `stated` arguments (already in prose; may be empty)."""
    name = words(function)
    with_ = f" with {stated}" if stated else ""
    forms = (f"Call {function}{with_}", f"Please {name}{with_}", f"I need to {name}{with_}",
             f"Use {function}{with_}", f"Can you {name}{with_}?", f"{name.capitalize()}{with_}")
    return _choice(rng, forms)


def _end(sentence: str) -> str:
    return sentence if sentence.endswith(("?", ".")) else sentence + "."


def _call_message(calls: list[Call]) -> dict:
    return {"role": "assistant", "content": "",
            "tool_calls": [{"function": {"name": c.function, "arguments": c.arguments}} for c in calls]}


def _singular(noun: str) -> str:
    return noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun


def path_phrase(path: str, rng: np.random.Generator) -> str:
    """How a request points at a response path: the path itself, or in words
    (`products[1].id` -> "the id of the 2nd product", `[0].name` -> "the name of the 1st result")."""
    tokens = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    if rng.random() < 0.5 or not tokens:
        return f"the `{path}` field"
    phrases, i = [], 0
    while i < len(tokens):
        t = tokens[i]
        if t.startswith("["):  # an index with no key before it: a top-level list, or a list of lists
            phrases.append(f"the {ordinal(int(t[1:-1]) + 1)} {'result' if i == 0 else 'item'}")
            i += 1
        elif i + 1 < len(tokens) and tokens[i + 1].startswith("["):
            phrases.append(f"the {ordinal(int(tokens[i + 1][1:-1]) + 1)} {_singular(words(t) or t)}")
            i += 2
        else:
            phrases.append(f"the {words(t) or t}")
            i += 1
    return " of ".join(reversed(phrases))


# ---- date phrasings --------------------------------------------------------------------------------

def _absolute_date(d: datetime.date, rng: np.random.Generator, with_year: bool | None = None) -> str:
    month = _MONTHS[d.month - 1]
    if with_year is None:
        with_year = rng.random() < 0.3
    forms = [f"{month} {d.day}", f"{month[:3]} {d.day}", f"{d.day} {month}", f"{d.day}/{d.month}",
             f"the {ordinal(d.day)} of {month}"]
    if with_year:
        forms = [f"{month} {d.day}, {d.year}", f"{d.day} {month} {d.year}", f"{d.day}/{d.month}/{d.year}",
                 d.isoformat()]
    return _choice(rng, forms)


def date_phrase(d: datetime.date, today: datetime.date, rng: np.random.Generator) -> str:
    """`d` (on or after `today`) in words; see the module note for the conventions."""
    offset = (d - today).days
    forms = [_absolute_date(d, rng)]
    if offset == 0:
        forms.append("today")
    elif offset == 1:
        forms.append("tomorrow")
    elif offset == 2:
        forms.append("the day after tomorrow")
    if 1 <= offset <= 7:
        forms.append(f"next {_WEEKDAYS[d.weekday()]}")
    if 2 <= offset <= 30:
        forms.append(f"in {offset} days")
    if 0 < offset and offset % 7 == 0 and offset <= 28:
        forms.append("in a week" if offset == 7 else f"in {offset // 7} weeks")
    return _choice(rng, forms)


def later_phrase(d: datetime.date, before: datetime.date, rng: np.random.Generator) -> str:
    """`d` relative to an earlier stated date, or absolutely."""
    gap = (d - before).days
    forms = [_absolute_date(d, rng), f"{gap} days later" if gap > 1 else "the next day"]
    if gap == 7:
        forms.append("a week later")
    if gap > 1:
        forms.append(f"{gap} nights later")
    return _choice(rng, forms)


def time_phrase(hhmm: str, rng: np.random.Generator) -> str:
    hour, minute = int(hhmm[:2]), int(hhmm[3:])
    twelve = hour % 12 or 12
    suffix = "AM" if hour < 12 else "PM"
    forms = [hhmm, f"{twelve}:{minute:02d} {_choice(rng, (suffix, suffix.lower()))}"]
    if minute == 0:
        forms.append(f"{twelve} {suffix}")
        if hour == 12:
            forms.append("noon")
        if hour == 0:
            forms.append("midnight")
    return _choice(rng, forms)


def date_kind(param) -> str | None:
    """'date' or 'time' when a parameter takes a YYYY-MM-DD date or an HH:MM time (from its
    description, else from its name), else None."""
    text = f"{param.description}".upper()
    if "YYYY-MM-DD" in text:
        return "date"
    if "HH:MM" in text:
        return "time"
    if param.type == "string" and re.search(r"(^|_)date$|Date$", param.name):
        return "date"
    if param.type == "string" and re.search(r"(^|_)time$|Time$", param.name):
        return "time"
    return None


# ---- the generators --------------------------------------------------------------------------------

class Curriculum:
    """Generators of training conversations over one ecosystem's tools and training tasks.

    tools: every tool schema; train_tasks: the tasks episodes and value shapes come from (never the
    held-out ones); forbidden: values no generated conversation may contain outside episodes;
    copy_tokens: the vocabulary tokens copy drills are made of (`copy_vocabulary(tokenizer)`).
    """

    def __init__(self, tools: Mapping[str, ToolSpec], train_tasks: Sequence[Task],
                 response_view: ResponseView = ResponseView(), tool_view: ToolView = ToolView(),
                 forbidden: Iterable[str] = (), distractors: tuple[int, int] = (1, 4),
                 mutate_share: float = 0.8, max_value_chars: int = 64, copy_tokens: Sequence[str] = ()):
        if not train_tasks:
            raise ValueError("the curriculum needs at least one training task")
        self.tools, self.tasks = dict(tools), list(train_tasks)
        self.view, self.tool_view = response_view, tool_view
        self.values = ValueMaker(forbidden)
        self.distractors, self.mutate_share = distractors, mutate_share
        self.max_value_chars = max_value_chars  # longer shipped values (600-char keys) are not drilled
        self.copy_tokens = list(copy_tokens)
        # Argument value shapes, per (function, parameter), from the training calls.
        self.examples: dict[tuple[str, str], list] = {}
        self.pairs: list[tuple[Call, Any]] = []  # (call, response) of successful training steps
        for task in self.tasks:
            for step in task.steps:
                for k, v in step.call.arguments.items():
                    if v is not None:
                        self.examples.setdefault((step.call.function, k), []).append(v)
                if step.success and isinstance(step.response, dict | list) and step.call.function in self.tools:
                    self.pairs.append((step.call, step.response))
        self.callable = sorted(n for n, t in self.tools.items() if t.parameters)
        self.with_dates = sorted(n for n, t in self.tools.items() if any(date_kind(p) for p in t.parameters))
        self.date_order = {n: self._date_order(self.tools[n]) for n in self.with_dates}
        # (tool, parameter) pairs that can take an extracted value, by the value's JSON type
        self.takers: dict[str, list[tuple[str, str]]] = {}
        for kind, types in (("str", ("string",)), ("int", ("integer", "number", "string")),
                            ("float", ("number", "string"))):
            self.takers[kind] = [(t.name, p.name) for t in self.tools.values() for p in t.parameters
                                 if p.type in types and not p.enum and not date_kind(p)]
        if not self.pairs:
            raise ValueError("no training step has a successful JSON response to extract from")

    # -- shared pieces --

    def offered(self, functions: Sequence[str], rng: np.random.Generator) -> list[dict]:
        """The tools listed in the system prompt: the needed ones plus a few others, shuffled."""
        others = [n for n in self.tools if n not in functions]
        k = min(len(others), int(rng.integers(self.distractors[0], self.distractors[1] + 1)))
        names = list(functions) + [others[i] for i in rng.choice(len(others), k, replace=False)]
        rng.shuffle(names)
        return [self.tool_view.schema(self.tools[n]) for n in dict.fromkeys(names)]

    def value_for(self, function: str, param: str, rng: np.random.Generator):
        """A random value for one argument, stated-able in prose (None: skip this argument)."""
        spec = self.tools[function].param(param)
        kind = date_kind(spec) if spec is not None else None
        if kind == "date":
            return self.values.draw(lambda r: self.values.date(r).isoformat(), rng)
        if kind == "time":
            return self.values.draw(self.values.time, rng)
        if spec is not None and spec.enum:
            options = [v for v in spec.enum if self.values.allowed(v)]
            return _choice(rng, options) if options else None
        shapes = [v for v in self.examples.get((function, param), ())
                  if not isinstance(v, dict | list) and len(str(v)) <= self.max_value_chars]
        if shapes and rng.random() < 0.8:
            template = _choice(rng, shapes)
            if isinstance(template, bool):
                return template
            return self.values.draw(lambda r: self.values.like(template, r), rng)
        typ = spec.type if spec is not None else "string"
        if typ == "integer":
            return self.values.draw(lambda r: int(r.integers(1, 10 ** int(r.integers(1, 8)))), rng)
        if typ == "number":
            return self.values.draw(lambda r: float(np.round(r.uniform(-180, 180), int(r.integers(1, 7)))), rng)
        if typ == "boolean":
            return bool(rng.random() < 0.5)
        if typ in ("array", "object", "dict"):
            return None
        return self.values.draw(self.values.place if rng.random() < 0.6 else self.values.word, rng)

    def random_arguments(self, function: str, rng: np.random.Generator, keep_optional: float = 0.3,
                         skip: Iterable[str] = ()) -> dict:
        tool = self.tools[function]
        names = [p.name for p in tool.parameters if p.name not in set(skip)
                 and (p.name in tool.required or rng.random() < keep_optional)]
        out = {}
        for name in names:
            value = self.value_for(function, name, rng)
            if value is not None:
                out[name] = value
        return out

    @staticmethod
    def stated(arguments: Mapping, rng: np.random.Generator) -> str:
        items = list(arguments.items())
        order = rng.permutation(len(items))
        return _join([_state(items[i][0], format_value(items[i][1]), rng) for i in order], rng)

    # -- skills --

    def bare_copy(self, rng: np.random.Generator) -> Example:
        """5 to 24 random tokens, a newline, the same again: no chat frame."""
        return copy_drill("bare_copy", self.copy_tokens, 0.0, rng)

    def copy(self, rng: np.random.Generator) -> Example:
        """5 to 24 random tokens said back, inside a random share of the chat frame."""
        return copy_drill("copy", self.copy_tokens, None, rng)

    def repeat(self, rng: np.random.Generator) -> Example:
        """Say back one to six values in order: the barest copy drill, many copied tokens per example."""
        parts = [self._repeat_value(rng) for _ in range(int(rng.integers(1, 7)))]
        text = _choice(rng, (" ", ", ", "; ")).join(parts)
        ask = _choice(rng, ("Repeat exactly: {}", "Copy this value: {}", "Say back {} and nothing else.",
                            "Write {} once more.", "Echo: {}"))
        messages = [{"role": "user", "content": ask.format(text)}, {"role": "assistant", "content": text}]
        return Example("repeat", messages, None, ((text, 0),))

    def _repeat_value(self, rng: np.random.Generator) -> str:
        kind, text = int(rng.integers(4)), None
        if kind == 1:
            text = self.values.draw(lambda r: self.values.date(r).isoformat(), rng)
        elif kind >= 2:
            template = _choice(rng, _choice(rng, list(self.examples.values())))
            value = self.values.draw(lambda r: self.values.like(template, r), rng)
            text = None if value is None else format_value(value)
            text = None if text is None or len(text) > self.max_value_chars else text
        if text is None:
            text = self.values.draw(self.values.place, rng) or self.values.word(rng, 4)
        return text

    def valid(self, example: Example) -> bool:
        """Every call the answer makes passes the schema validators (dates real, coordinates in
        range, end dates after start dates): the policy should never be taught an invalid call."""
        return all(validate(Call(c["function"]["name"], c["function"]["arguments"]), self.tools) is None
                   for m in example.messages if m["role"] == "assistant" for c in m.get("tool_calls") or [])

    def _retry(self, make, rng: np.random.Generator, tries: int = 30) -> Example:
        for _ in range(tries):
            example = make(rng)
            if self.valid(example):
                return example
        return self.episode(rng)  # gold episodes are valid; counted under their own skill

    def fill(self, rng: np.random.Generator) -> Example:
        return self._retry(self._fill, rng)

    def extract(self, rng: np.random.Generator) -> Example:
        return self._retry(self._extract, rng)

    def dates(self, rng: np.random.Generator) -> Example:
        return self._retry(self._dates, rng)

    def _fill(self, rng: np.random.Generator) -> Example:
        function = _choice(rng, self.callable)
        arguments = {}
        for _ in range(5):  # a tool whose parameters are all lists/objects gives nothing to state
            arguments = self.random_arguments(function, rng)
            if arguments:
                break
            function = _choice(rng, self.callable)
        request = _end(_ask(function, self.stated(arguments, rng), rng))
        messages = [{"role": "user", "content": request}, _call_message([Call(function, arguments)])]
        copies = tuple((format_value(v), 0) for v in arguments.values())
        return Example("fill", messages, self.offered([function], rng), copies)

    def _extract(self, rng: np.random.Generator) -> Example:
        for _ in range(20):
            call, response = self.pairs[int(rng.integers(len(self.pairs)))]
            response = self._shrunk(response)
            if rng.random() < self.mutate_share:
                response = self._mutated(response, rng)
            rendered = self.view.render(response)
            found = self._visible_leaves(response, rendered)
            if found:
                break
        else:
            raise RuntimeError("no training response has a leaf visible in the response view")
        path, value = found[int(rng.integers(len(found)))]
        consumer, param = self._consumer(value, rng)
        mutate = rng.random() < self.mutate_share
        first_args = {k: self.values.like(v, rng) if mutate else v
                      for k, v in call.arguments.items() if v is not None and not isinstance(v, dict | list)}
        first_args = {k: v for k, v in first_args.items() if self.values.allowed(v)}
        others = self.random_arguments(consumer, rng, keep_optional=0.15, skip=[param])
        second = Call(consumer, {param: value, **others})
        request = _end(_ask(call.function, self.stated(first_args, rng), rng))
        then = _choice(rng, ("Then", "After that,", "Next,", "Using that result,"))
        verb = _choice(rng, (f"call {consumer}", f"use {consumer}", words(consumer)))
        use = f"{then} {verb}, taking the {words(param)} from {path_phrase(path, rng)} of its result"
        if others:
            use += f", with {self.stated(others, rng)}"
        messages = [{"role": "user", "content": request + " " + _end(use)},
                    _call_message([Call(call.function, first_args)]),
                    {"role": "tool", "content": rendered},
                    _call_message([second])]
        copies = tuple((format_value(v), 0) for v in list(first_args.values()) + list(others.values()))
        copies += ((json.dumps(value, ensure_ascii=False).strip('"') if isinstance(value, str)
                    else json.dumps(value), 2),)
        return Example("extract", messages, self.offered([call.function, consumer], rng), copies,
                       {"response": response, "path": path, "value": value})

    def _dates(self, rng: np.random.Generator) -> Example:
        if not self.with_dates:
            return self._fill(rng)
        function = _choice(rng, self.with_dates)
        tool = self.tools[function]
        today = self.values.date(rng)
        arguments = self.random_arguments(function, rng, keep_optional=0.2,
                                          skip=[p.name for p in tool.parameters if date_kind(p)])
        parts, day, previous = [], today + datetime.timedelta(days=int(rng.integers(0, 60))), None
        timed: dict[str, str] = {}
        for name in self.date_order[function]:
            p = tool.param(name)
            kind = date_kind(p)
            if kind == "date" and (p.name in tool.required or rng.random() < 0.7):
                if previous is not None:
                    day = previous + datetime.timedelta(days=int(rng.integers(1, 15)))
                phrase = date_phrase(day, today, rng) if previous is None else later_phrase(day, previous, rng)
                timed[p.name], previous = day.isoformat(), day
                parts.append(_state(p.name, phrase, rng))
            elif kind == "time" and (p.name in tool.required or rng.random() < 0.7):
                hhmm = self.values.time(rng)
                timed[p.name] = hhmm
                parts.append(_state(p.name, time_phrase(hhmm, rng), rng))
        if not timed:
            return self._fill(rng)
        if not all(self.values.allowed(v) for v in timed.values()):
            return self._dates(rng)  # a date or time of a held-out task: draw again (rarely needed)
        # other arguments in random order; the dates keep theirs ("3 days later" follows its reference)
        stated = [_state(k, format_value(v), rng) for k, v in arguments.items()]
        stated = [stated[i] for i in rng.permutation(len(stated))]
        at = int(rng.integers(len(stated) + 1))
        stated = stated[:at] + parts + stated[at:]
        weekday = _WEEKDAYS[today.weekday()]
        opening = _choice(rng, (f"Today is {weekday}, {today.isoformat()}.", f"Today is {today.isoformat()}.",
                                f"It is {weekday} {today.isoformat()} today."))
        request = opening + " " + _end(_ask(function, _join(stated, rng), rng))
        call = Call(function, {**arguments, **timed})
        messages = [{"role": "user", "content": request}, _call_message([call])]
        copies = tuple((format_value(v), 0) for v in arguments.values())
        return Example("dates", messages, self.offered([function], rng), copies, {"today": today.isoformat(),
                                                                                  "dates": timed})

    def episode(self, rng: np.random.Generator) -> Example:
        task = self.tasks[int(rng.integers(len(self.tasks)))]
        return Example("episodes", gold_messages(task, self.view), tool_schemas(task, self.tools, self.tool_view),
                       meta={"task_id": task.task_id})

    def fresh(self, rng: np.random.Generator) -> Example:
        return self._retry(self._fresh, rng)

    def _fresh(self, rng: np.random.Generator) -> Example:
        task = self.tasks[int(rng.integers(len(self.tasks)))]
        messages = gold_messages(task, self.view)
        shown = "\n".join(m["content"] for m in messages if m["role"] in ("user", "tool"))
        new_text = redraw_map(task, self.tools, shown, self.values, rng, self.max_value_chars)
        if new_text:
            pattern = redraw_pattern(new_text)
            swap = lambda m: new_text[m.group(0)]  # noqa: E731
            for m in messages:
                if m["role"] in ("user", "tool"):
                    m["content"] = pattern.sub(swap, m["content"])
                for c in m.get("tool_calls") or []:
                    args = c["function"]["arguments"]
                    c["function"]["arguments"] = {
                        k: (v if isinstance(v, bool) or format_value(v) not in new_text
                            else new_text[format_value(v)] if isinstance(v, str) else json.loads(new_text[format_value(v)]))
                        for k, v in args.items()}
        return Example("fresh", messages, tool_schemas(task, self.tools, self.tool_view),
                       meta={"task_id": task.task_id, "redrawn": new_text})

    def sample(self, skill: str, rng: np.random.Generator) -> Example:
        makers = {"bare_copy": self.bare_copy, "copy": self.copy, "repeat": self.repeat, "fill": self.fill,
                  "extract": self.extract, "dates": self.dates, "episodes": self.episode, "fresh": self.fresh}
        if skill not in makers:
            raise ValueError(f"unknown curriculum skill {skill!r}; known: {list(SKILLS)}")
        return makers[skill](rng)

    def _date_order(self, tool: ToolSpec) -> list[str]:
        """The tool's date and time parameters, dates in the order training calls give them (a
        pick-up date comes before its drop-off date); schema order where the calls say nothing."""
        names = [p.name for p in tool.parameters if date_kind(p)]
        dated = [n for n in names if date_kind(tool.param(n)) == "date"]
        ranks: dict[str, list[float]] = {n: [] for n in dated}
        for task in self.tasks:
            for step in task.steps:
                if step.call.function != tool.name:
                    continue
                given = sorted((str(step.call.arguments[n]), n) for n in dated
                               if isinstance(step.call.arguments.get(n), str))
                for rank, (_, n) in enumerate(given):
                    ranks[n].append(rank)
        def guess(i: int, name: str) -> float:  # no calls to learn from: English start/end words
            parts = set(words(name).split())
            return 0.0 if parts & _START_WORDS else 1.0 if parts & _END_WORDS else 0.5 + 0.01 * i
        learned = all(ranks[n] for n in dated)
        position = {n: (np.mean(ranks[n]) if learned else guess(i, n)) for i, n in enumerate(dated)}
        return sorted(dated, key=lambda n: position[n]) + [n for n in names if n not in dated]

    # -- helpers for extract --

    def _shrunk(self, value, depth: int = 0):
        """Lists cut as the response view cuts them (so every path chosen stays visible-able)."""
        if isinstance(value, list):
            return [self._shrunk(v, depth + 1) for v in value[: self.view.max_list_items]]
        if isinstance(value, dict):
            return {k: self._shrunk(v, depth + 1) for k, v in value.items()}
        return value

    def _mutated(self, response, rng: np.random.Generator):
        if is_wrapper(response):  # keep the wrapper's status and message as they are
            return {**response, "data": self.values.like(response["data"], rng)}
        return self.values.like(response, rng)

    def _visible_leaves(self, response, rendered: str) -> list[tuple[str, Any]]:
        """(path, value) of scalar leaves whose `"key":value` text stands in the rendered view."""
        out = []
        for tokens, value in leaves(response):
            if isinstance(value, bool) or value is None or value == "" or not tokens:
                continue
            if isinstance(value, str) and (len(value) > self.view.max_string_chars or value.strip() != value):
                continue
            if not self.values.allowed(value):
                continue
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            key = tokens[-1]
            needle = f'"{key}":{text}' if isinstance(key, str) else text
            if needle in rendered:
                path = format_path(tokens)
                if read_field(response, path) == value:
                    out.append((path, value))
        return out

    def _consumer(self, value, rng: np.random.Generator) -> tuple[str, str]:
        """A tool and a parameter that can take `value` (by JSON type)."""
        kind = "str" if isinstance(value, str) else "int" if isinstance(value, int) else "float"
        return _choice(rng, self.takers[kind])


# ---- the mixing schedule ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Schedule:
    """Skill weights over training progress (0..1): given at points, linear in between, constant
    outside. Weights need not sum to 1 (they are normalised)."""
    points: tuple[tuple[float, tuple[tuple[str, float], ...]], ...]

    def __post_init__(self):
        if not self.points:
            raise ValueError("curriculum.schedule needs at least one point")
        ats = [at for at, _ in self.points]
        if ats != sorted(ats) or len(set(ats)) != len(ats):
            raise ValueError(f"curriculum.schedule: points must have increasing `at`, got {ats}")
        for at, weights in self.points:
            unknown = sorted(set(dict(weights)) - set(SKILLS))
            if unknown:
                raise ValueError(f"curriculum.schedule at {at}: unknown skill(s) {unknown}; known: {list(SKILLS)}")
            if any(w < 0 for _, w in weights) or sum(w for _, w in weights) <= 0:
                raise ValueError(f"curriculum.schedule at {at}: weights must be >= 0 with a positive sum")

    @classmethod
    def from_list(cls, points: Sequence[Mapping]) -> "Schedule":
        """From `[{at: 0.0, fill: 0.3, episodes: 0.7}, ...]`."""
        out = []
        for i, p in enumerate(points):
            p = dict(p)
            if "at" not in p:
                raise ValueError(f"curriculum.schedule[{i}] needs an `at` (training progress 0..1)")
            at = float(p.pop("at"))
            out.append((at, tuple((k, float(v)) for k, v in p.items())))
        return cls(tuple(out))

    @classmethod
    def constant(cls, **weights: float) -> "Schedule":
        return cls(((0.0, tuple(weights.items())),))

    def weights(self, progress: float) -> dict[str, float]:
        """Normalised weights of every skill at `progress`."""
        def full(ws):
            d = dict(ws)
            return np.array([d.get(s, 0.0) for s in SKILLS])
        ats = [at for at, _ in self.points]
        if progress <= ats[0]:
            w = full(self.points[0][1])
        elif progress >= ats[-1]:
            w = full(self.points[-1][1])
        else:
            k = int(np.searchsorted(ats, progress, side="right")) - 1
            (a0, w0), (a1, w1) = self.points[k], self.points[k + 1]
            t = (progress - a0) / (a1 - a0)
            w = (1 - t) * full(w0) + t * full(w1)
        w = w / w.sum()
        return {s: float(x) for s, x in zip(SKILLS, w)}

    def draw(self, progress: float, n: int, rng: np.random.Generator) -> list[str]:
        w = self.weights(progress)
        return [SKILLS[i] for i in rng.choice(len(SKILLS), n, p=[w[s] for s in SKILLS])]


def copy_drill(skill: str, tokens: Sequence[str], frame: float | None, rng: np.random.Generator) -> Example:
    """5 to 24 of `tokens` said back after the last `frame` share of a "Repeat exactly:" request's
    chat (see `Example`), with the assistant header between the two copies for the whole frame and a
    newline otherwise. `frame=None`: a random share, with the header as often as that share."""
    if frame is None:
        frame = float(rng.random())
        header = bool(rng.random() < frame)
    else:
        header = frame == 1.0
    if not tokens:
        raise ValueError(f"`{skill}` drills need copy_tokens (e.g. copy_vocabulary(tokenizer))")
    n = int(rng.integers(5, 25))
    # Half the drills draw from a pool of n tokens, so about a third of their tokens recur (as in
    # values: "2023-10-18" repeats "-"): the copy must follow its place in the span, not just the
    # last token.
    pool = rng.choice(len(tokens), n, replace=False) if rng.random() < 0.5 else len(tokens)
    picked = rng.choice(pool, n)
    return Example(skill, [], None, meta={"frame": frame, "header": header}, plain=tuple(tokens[i] for i in picked))


def copy_vocabulary(tokenizer) -> list[str]:
    """Every vocabulary token but the special ones: what copy drills are made of. Copying a token
    is learned token by token, so single letters, digits and punctuation (what values are made of)
    are drawn too."""
    special = set(tokenizer.all_special_tokens)
    return sorted(t for t in tokenizer.get_vocab() if t not in special)


def draw_examples(curriculum: Curriculum, schedule: Schedule, progress: float, n: int,
                  rng: np.random.Generator) -> list[Example]:
    """`n` conversations, skills drawn by the schedule's weights at `progress`."""
    return [curriculum.sample(skill, rng) for skill in schedule.draw(progress, n, rng)]


def redraw_map(task: Task, tools: Mapping[str, ToolSpec], shown: str, values: ValueMaker, rng: np.random.Generator,
               max_value_chars: int) -> dict[str, str]:
    """A value's text -> its redrawn text (same shape, never forbidden), for every argument value of
    `task` that `shown` shows standing alone, except booleans, enums, objects and lists, and texts
    outside 2..`max_value_chars` characters."""
    new_text: dict[str, str] = {}
    for step in task.steps:
        spec = tools.get(step.call.function)
        for name, value in step.call.arguments.items():
            param = spec.param(name) if spec else None
            text = format_value(value)
            if (isinstance(value, bool) or not isinstance(value, str | int | float) or param is None
                    or param.enum or text in new_text or not 2 <= len(text) <= max_value_chars
                    or not occurs_alone(text, shown)):
                continue
            redrawn = values.draw(lambda r: values.like(value, r), rng)
            if redrawn is not None and format_value(redrawn) != text:
                new_text[text] = format_value(redrawn)
    return new_text


def redraw_pattern(new_text: Mapping[str, str]) -> re.Pattern:
    """A regex matching any key of `new_text` standing alone, the longest first."""
    return re.compile("|".join(_bounded(t) for t in sorted(new_text, key=len, reverse=True)))


def _bounded(text: str) -> str:
    """A regex for `text` standing alone: not inside a longer word or number."""
    return r"(?<![\w.])" + re.escape(text) + r"(?![\w]|\.\d)"


def occurs_alone(text: str, within: str) -> bool:
    """Whether `within` holds `text` standing alone (not inside a longer word or number)."""
    return re.search(_bounded(text), within) is not None


def value_texts(values: Iterable) -> set[str]:
    """Normalised string forms of values (what a `forbidden` set holds)."""
    return {s for v in values for s in value_strings(normalise_value(v))}
