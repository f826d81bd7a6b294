"""An optional LLM judge behind an OpenAI-compatible chat endpoint (standard library `urllib` only).

ComplexFuncBench uses a judge twice: to decide whether a predicted call that is not equal to the
gold call by the rules (but agrees on every must-match parameter) is still equivalent, and to score
the final answer for completeness and correctness (0, 1 or 2 each). Without a judge the first
becomes "not matched" and the second is skipped, so results are a strict lower bound.

Anything with the two methods of `Judge` can stand in (tests use a scripted one); `OpenAIJudge`
talks to a server such as vLLM or the OpenAI API: POST `{base_url}/chat/completions`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Protocol

from orchestra.data.types import Call


class Judge(Protocol):
    def calls_equivalent(self, functions: list[dict], history: list[dict], predicted: Call, gold: Call) -> bool | None:
        """True when the calls mean the same; None when the judge gave no usable verdict."""

    def score_answer(self, query: str, reference: str, answer: str) -> dict:
        """{"complete": 0..2 | None, "correct": 0..2 | None, "reasons": {...}}."""

    def describe(self) -> dict:
        """What the summary records about the judge (model, endpoint)."""


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"  # name of the environment variable holding the key
    timeout_s: float = 60.0
    retries: int = 2                 # extra attempts after a failed request or an unreadable reply
    max_context_chars: int = 20000   # history and reference are cut to this many characters
    temperature: float = 0.0

    def __post_init__(self):
        if not self.base_url or not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"eval.judge.base_url must be an http(s) URL, got {self.base_url!r}")
        if not self.model:
            raise ValueError("eval.judge.model must name the judge model")
        if self.timeout_s <= 0 or self.retries < 0 or self.max_context_chars < 1:
            raise ValueError("eval.judge: timeout_s must be > 0, retries >= 0, max_context_chars >= 1")


def judge_config(cfg: Mapping | None) -> JudgeConfig | None:
    if cfg is None:
        return None
    known = {f.name for f in dataclasses.fields(JudgeConfig)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"eval.judge: unknown key(s) {unknown}; known keys are {sorted(known)}")
    missing = [k for k in ("base_url", "model") if k not in cfg]
    if missing:
        raise ValueError(f"eval.judge: missing key(s) {missing}")
    return JudgeConfig(**dict(cfg))


# Prompts written for this project; the criteria follow the ComplexFuncBench paper's description.
CALL_SYSTEM = (
    "You compare two function calls made for the same conversation and decide whether they are "
    "equivalent: they would retrieve the same information. Treat as equivalent: the same value written "
    "in another language or another common form (abbreviations, with or without a city or country "
    "suffix), arguments in another order, and an omitted parameter whose value equals its documented "
    "default. Reply with JSON only: {\"is_equal\": true|false, \"reason\": \"...\"}.")
CALL_USER = ("Functions:\n{functions}\n\nConversation so far:\n{history}\n\n"
             "Call 1:\n{call_1}\n\nCall 2:\n{call_2}\n\nAre call 1 and call 2 equivalent?")
COMPLETE_SYSTEM = (
    "You grade whether an assistant's final answer addresses every part of the user's request. "
    "Score 2: every part is answered; 1: some parts are answered; 0: none is. "
    "Reply with JSON only: {\"score\": 0|1|2, \"reason\": \"...\"}.")
COMPLETE_USER = "User request:\n{query}\n\nAssistant's answer:\n{answer}"
CORRECT_SYSTEM = (
    "You grade whether an assistant's final answer is correct given the API calls and responses it "
    "was based on. Score 2: everything stated agrees with the responses; 1: partly correct; 0: wrong "
    "or unsupported. Reply with JSON only: {\"score\": 0|1|2, \"reason\": \"...\"}.")
CORRECT_USER = ("User request:\n{query}\n\nReference (gold calls and responses):\n{reference}\n\n"
                "Assistant's answer:\n{answer}")

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> dict | None:
    """The first JSON object in a reply: a fenced block, the whole text, or the outermost braces."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for c in candidates:
        try:
            obj = json.loads(c.strip())
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " ...[cut]"


Opener = Callable[..., object]  # urllib.request.urlopen's shape: (request, timeout=) -> response


class OpenAIJudge:
    def __init__(self, config: JudgeConfig, opener: Opener = urllib.request.urlopen):
        self.config = config
        self._open = opener  # replaceable so tests never touch the network

    def describe(self) -> dict:
        return {"model": self.config.model, "base_url": self.config.base_url}

    def _chat(self, system: str, user: str) -> str:
        c = self.config
        body = json.dumps({"model": c.model, "temperature": c.temperature,
                           "messages": [{"role": "system", "content": system},
                                        {"role": "user", "content": user}]}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(c.api_key_env) if c.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(c.base_url.rstrip("/") + "/chat/completions", data=body,
                                         headers=headers, method="POST")
        with self._open(request, timeout=c.timeout_s) as response:
            reply = json.loads(response.read().decode("utf-8"))
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"judge reply has no choices[0].message.content: {str(reply)[:200]}") from None

    def _ask_json(self, system: str, user: str, valid: Callable[[dict], bool]) -> dict | None:
        """The reply as JSON, retried on network errors and unusable replies; None when all fail."""
        for _ in range(self.config.retries + 1):
            try:
                obj = extract_json(self._chat(system, user))
            except (urllib.error.URLError, TimeoutError, ValueError, OSError):
                continue
            if obj is not None and valid(obj):
                return obj
        return None

    def calls_equivalent(self, functions, history, predicted: Call, gold: Call) -> bool | None:
        limit = self.config.max_context_chars
        user = CALL_USER.format(
            functions=_cut(json.dumps(functions, ensure_ascii=False), limit),
            history=_cut(json.dumps(history, ensure_ascii=False), limit),
            call_1=json.dumps(predicted.to_json(), ensure_ascii=False),
            call_2=json.dumps(gold.to_json(), ensure_ascii=False))
        obj = self._ask_json(CALL_SYSTEM, user, lambda o: isinstance(o.get("is_equal"), bool))
        return None if obj is None else obj["is_equal"]

    def score_answer(self, query: str, reference: str, answer: str) -> dict:
        limit = self.config.max_context_chars

        def score(o):
            return o.get("score") in (0, 1, 2) and not isinstance(o.get("score"), bool)

        complete = self._ask_json(COMPLETE_SYSTEM, COMPLETE_USER.format(query=query, answer=answer), score)
        correct = self._ask_json(CORRECT_SYSTEM, CORRECT_USER.format(
            query=query, reference=_cut(reference, limit), answer=answer), score)
        return {"complete": None if complete is None else complete["score"],
                "correct": None if correct is None else correct["score"],
                "reasons": {"complete": (complete or {}).get("reason"), "correct": (correct or {}).get("reason")}}
