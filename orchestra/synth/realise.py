"""Query realisation: a user request written from a chain's chosen values.

Only independent arguments are stated. A dependent argument (one the policy must read from an
earlier response) is referred to, never given: "that car", or in the generic phrasing "using the
vehicle id from the search car rentals result". `leaked_values` checks the result: no dependent
value may appear in the query unless the same value is also stated as an independent one.

- `OfflineRealiser`: deterministic for a seeded generator. Phrasings come from a phrasebook keyed
  by function name (`phrasebook.BOOKING` for the shipped ecosystem); any other function gets a
  generic phrasing built from its schema (description and parameter names).
- `LLMRealiser`: asks a model behind an OpenAI-compatible `/chat/completions` endpoint; optional.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.error
import urllib.request
from collections import Counter

import numpy as np

from orchestra.data.types import ToolSpec
from orchestra.synth.index import value_strings

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_PATHLIKE = re.compile(r"\S+/\S+")
_LABEL = re.compile(r"^\s*[\w ]{0,30}description:\s*", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """What the realiser knows of one step."""
    function: str
    arguments: dict
    dependent: dict  # argument -> (index of the step it is read from, from_field)
    turn: int


def words(name: str) -> str:
    """`pick_up_latitude` / `departDate` -> "pick up latitude" / "depart date"."""
    parts = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    return " ".join(p.lower() for p in parts) or name


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def pick_hints(step: StepSpec) -> list[str]:
    """"the 2nd destination" for each dependent value read past the first element of a list, so the
    query says which result to take (the first one needs no saying)."""
    out = []
    for _, field in sorted(step.dependent.values(), key=lambda x: x[1]):
        m = re.match(r"^(?:(\w+))?\[(\d+)\]", field)
        if m and int(m.group(2)) > 0:
            noun = words(m.group(1) or "result")
            noun = noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun
            hint = f"the {ordinal(int(m.group(2)) + 1)} {noun}"
            if hint not in out:
                out.append(hint)
    return out


def source_hints(step: StepSpec, steps: list[StepSpec]) -> list[str]:
    """When a step reads from two or more earlier steps, which argument comes from which, each
    source named by its first stated value ("from id from the Paris result")."""
    sources = sorted({j for j, _ in step.dependent.values()})
    if len(sources) < 2:
        return []
    out = []
    for arg, (j, _) in sorted(step.dependent.items()):
        stated = stated_arguments(steps[j])
        label = format_value(next(iter(stated.values()))) if stated else f"{words(steps[j].function)} step"
        out.append(f"the {words(arg)} from the {label} result")
    return out


def format_value(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def stated_arguments(step: StepSpec) -> dict:
    return {k: v for k, v in sorted(step.arguments.items()) if k not in step.dependent and v is not None}


def value_sets(steps: list[StepSpec]) -> tuple[set[str], set[str]]:
    """(normalised string forms of the dependent values, of the stated values) of a chain."""
    dependent, stated = set(), set()
    for s in steps:
        for k, v in s.arguments.items():
            (dependent if k in s.dependent else stated).update(value_strings(v))
    return dependent, stated


def leaked_values(query: str, steps: list[StepSpec]) -> list[str]:
    """Dependent values that appear in `query` (as a whole token, ignoring case) without also
    being stated values of the chain."""
    dependent, stated = value_sets(steps)
    allowed = {v.casefold() for v in stated}
    out = []
    for v in sorted(dependent):
        if v and v.casefold() not in allowed and re.search(rf"(?<!\w){re.escape(v)}(?!\w)", query, re.IGNORECASE):
            out.append(v)
    return out


class OfflineRealiser:
    def __init__(self, tools: dict[str, ToolSpec], phrasebook: dict[str, list[str]] | None = None):
        self.tools = tools
        self.phrasebook = phrasebook or {}
        for function, phrases in self.phrasebook.items():
            if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) for p in phrases):
                raise ValueError(f"phrasebook entry '{function}': expected a non-empty list of phrasings")
        self._summaries = _tool_summaries(tools)

    def realise(self, steps: list[StepSpec], rng: np.random.Generator) -> str:
        sentences = []
        for k, step in enumerate(steps):
            clause = self._clause(step, steps, rng)
            hints = pick_hints(step) + source_hints(step, steps)
            if hints:
                clause += f" (take {' and '.join(hints)})"
            if k == 0:
                lead = ""
            elif step.turn == steps[k - 1].turn:
                lead = ["At the same time, ", "Also, ", "In parallel, "][rng.integers(3)]
            elif k == len(steps) - 1:
                lead = ["Finally, ", "Last, "][rng.integers(2)]
            else:
                lead = ["Then ", "Next, ", "After that, "][rng.integers(3)]
            sentence = lead + clause
            sentences.append(sentence[0].upper() + sentence[1:] + ".")
        return " ".join(sentences)

    def _clause(self, step: StepSpec, steps: list[StepSpec], rng) -> str:
        stated = stated_arguments(step)
        # A phrasing must state only independent values; on a step that depends on nothing it must
        # state them all (phrasings that leave values out refer to earlier results: "that car").
        fitting = [p for p in self.phrasebook.get(step.function, [])
                   if set(_PLACEHOLDER.findall(p)) <= set(stated)
                   and (step.dependent or set(_PLACEHOLDER.findall(p)) == set(stated))]
        if fitting:
            best = max(len(set(_PLACEHOLDER.findall(p))) for p in fitting)
            fitting = [p for p in fitting if len(set(_PLACEHOLDER.findall(p))) == best]
            phrase = fitting[rng.integers(len(fitting))]
            used = set(_PLACEHOLDER.findall(phrase))
            text = _PLACEHOLDER.sub(lambda m: format_value(stated[m.group(1)]), phrase)
            rest = {k: v for k, v in stated.items() if k not in used}
            if rest:
                text += " (" + ", ".join(f"{words(k)} {format_value(v)}" for k, v in rest.items()) + ")"
            return text
        return self._generic(step, steps, stated, rng)

    def _generic(self, step: StepSpec, steps: list[StepSpec], stated: dict, rng) -> str:
        what = self._summaries.get(step.function) or words(step.function)
        values = ", ".join(f"{words(k)} {format_value(v)}" for k, v in stated.items())
        forms = [f"{what} with {values}", f"use {words(step.function)} for {values}",
                 f"I need to {words(step.function)}: {values}"] if values else [
                 what, f"use {words(step.function)}", f"I need to {words(step.function)}"]
        text = forms[rng.integers(len(forms))]
        if step.dependent:
            refs = ", ".join(f"the {words(k)} from the {words(steps[j].function)} result"
                             for k, (j, _) in sorted(step.dependent.items()))
            text += f", using {refs}"
        return text


def _tool_summaries(tools: dict[str, ToolSpec]) -> dict[str, str]:
    """A short phrase per tool from its description: the first sentence that is not shared
    boilerplate (a sentence in half the descriptions or more) and names no endpoint path."""
    split = {n: [s.strip() for s in re.split(r"(?<=[.!?])\s+", t.description) if s.strip()] for n, t in tools.items()}
    common = Counter(s for sentences in split.values() for s in set(sentences))
    out = {}
    for name, sentences in split.items():
        for s in sentences:
            if (len(tools) > 1 and common[s] * 2 >= len(tools)) or _PATHLIKE.search(s):
                continue
            s = _LABEL.sub("", s).rstrip(".").strip()
            if s:
                out[name] = s[0].lower() + s[1:]
                break
    return out


class LLMRealiser:
    """A query from a model behind an OpenAI-compatible endpoint (`{base_url}/chat/completions`).
    The API key, if any, is read from the environment variable `api_key_env`. Any failure raises
    `RealiserError`; the pipeline then falls back to the offline realiser and counts it."""

    def __init__(self, tools: dict[str, ToolSpec], base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 30.0, temperature: float = 0.0):
        self.tools, self.base_url, self.model = tools, base_url.rstrip("/"), model
        self.api_key_env, self.timeout_s, self.temperature = api_key_env, timeout_s, temperature

    def prompt(self, steps: list[StepSpec]) -> str:
        lines = []
        for k, s in enumerate(steps):
            tool = self.tools.get(s.function)
            desc = tool.description if tool else ""
            stated = {k2: v for k2, v in stated_arguments(s).items()}
            refs = {a: f"read from the result of step {j + 1} at {field}" for a, (j, field) in s.dependent.items()}
            lines.append(json.dumps({"step": k + 1, "tool": s.function, "description": desc[:300],
                                     "values_to_state": stated, "values_not_to_state": refs},
                                    ensure_ascii=False))
        return ("Write one natural request from a traveller that needs these tool calls, in this order. "
                "State every value in values_to_state exactly as given. Never state or invent a value for "
                "the arguments in values_not_to_state: the assistant must find them in earlier results. "
                "Do not mention tool names. Answer with the request only.\n" + "\n".join(lines))

    def realise(self, steps: list[StepSpec], rng: np.random.Generator) -> str:
        body = {"model": self.model, "temperature": self.temperature,
                "seed": int(rng.integers(2**31 - 1)),
                "messages": [{"role": "user", "content": self.prompt(steps)}]}
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                reply = json.loads(response.read().decode("utf-8"))
            text = reply["choices"][0]["message"]["content"]
        except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
            raise RealiserError(f"LLM realiser at {self.base_url} (model {self.model}) failed: {e}") from None
        if not isinstance(text, str) or not text.strip():
            raise RealiserError(f"LLM realiser at {self.base_url} returned no text")
        return text.strip()


class RealiserError(RuntimeError):
    pass
