"""The host boundary: generated text -> parsed tool calls, and responses -> observation text.

Qwen/Hermes style: every `<tool_call>{json}</tool_call>` block in a generation is one call, the JSON an
object `{"name": ..., "arguments": ...}` whose arguments are an object or a JSON string holding one.
A block that cannot be used becomes a `ParsedCall` with an error code; parsing never raises.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re

from orchestra.data.types import Call

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE = "<tool_response>", "</tool_response>"

# A closed block, or an open one cut off by the end of the generation.
_BLOCK = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)


class ParseError(enum.IntEnum):
    """Why a `<tool_call>` block gave no usable call. 0 means it parsed."""
    OK = 0
    INVALID_JSON = 1      # the block is not JSON (or is cut off before `</tool_call>`)
    NOT_AN_OBJECT = 2     # valid JSON, but not an object
    MISSING_NAME = 3      # an object without a string `name`
    BAD_ARGUMENTS = 4     # `arguments` is neither an object nor a JSON string holding one


@dataclasses.dataclass(frozen=True)
class ParsedCall:
    """One `<tool_call>` block: the call when it parsed, else the reason it did not."""
    raw: str
    call: Call | None
    error: ParseError = ParseError.OK
    arguments_were_string: bool = False  # arguments arrived as a JSON string (decoded into `call`)

    @property
    def ok(self) -> bool:
        return self.error == ParseError.OK


def parse_block(raw: str) -> ParsedCall:
    """Parse the text between `<tool_call>` and `</tool_call>`."""
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return ParsedCall(raw, None, ParseError.INVALID_JSON)
    if not isinstance(obj, dict):
        return ParsedCall(raw, None, ParseError.NOT_AN_OBJECT)
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return ParsedCall(raw, None, ParseError.MISSING_NAME)
    args = obj.get("arguments", {})
    was_string = isinstance(args, str)
    if was_string:
        try:
            args = json.loads(args) if args.strip() else {}
        except (json.JSONDecodeError, RecursionError):
            return ParsedCall(raw, None, ParseError.BAD_ARGUMENTS, True)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return ParsedCall(raw, None, ParseError.BAD_ARGUMENTS, was_string)
    return ParsedCall(raw, Call(name, args), ParseError.OK, was_string)


def parse_tool_calls(text: str) -> list[ParsedCall]:
    """Every `<tool_call>` block of `text`, in order."""
    out = []
    for m in _BLOCK.finditer(text):
        if m.group(2):
            out.append(parse_block(m.group(1).strip()))
        else:  # generation ended inside the block
            out.append(ParsedCall(m.group(1), None, ParseError.INVALID_JSON))
    return out


def format_tool_call(call: Call) -> str:
    """A call as the policy writes it (the Qwen2.5 tool-call format)."""
    body = json.dumps({"name": call.function, "arguments": call.arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}\n{body}\n{TOOL_CALL_CLOSE}"


def format_observation(response_text: str) -> str:
    """A response (already rendered to text by a response view) as the policy reads it."""
    return f"{TOOL_RESPONSE_OPEN}\n{response_text}\n{TOOL_RESPONSE_CLOSE}"
