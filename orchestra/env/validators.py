"""Schema validators and the finite table of error messages that the environment can answer.

A call that misses the cache is checked against its tool's schema; the first problem found picks one
row of the error table (its message names the function and parameter). A valid call that is simply
not cached gets `{"error": "No results found"}` (row 0). The table is finite, so it is tokenised once
and the device picks a row by index.

Which parameters are dates, times, coordinates or counts is read from their names, because the
Booking schemas type nearly everything as "string" or "number":
- date: the name contains "date" (case-insensitive); the value must be YYYY-MM-DD and a real day.
  Any year is accepted: the recorded data is from 2024 and there is no "date in the past" rule.
- time: the name ends with "time"; the value must be HH:MM (24-hour).
- latitude / longitude: the name is or ends with latitude/lat, longitude/lng/lon; the range is
  [-90, 90] / [-180, 180].
- count: the name is adults, room_qty, rooms, quantity, guests, page_number, or ends with _qty or
  _count; the value must be an integer of at least 1.
- start/end pairs (arrival/departure, pick_up/drop_off, depart/return, min/max, checkin/checkout,
  start/end dates): the end date must be after the start date (pick-up and drop-off may share a
  day, since a car can be returned the same day).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import re

from orchestra.data.types import Call, ParamSpec, ToolSpec
from orchestra.data.canonical import normalise_value
from orchestra.env.codec import ParseError, ParsedCall


class ErrorKind(enum.IntEnum):
    NO_RESULTS = 0
    PARSE_ERROR = 1
    UNKNOWN_FUNCTION = 2
    UNKNOWN_PARAMETER = 3
    MISSING_REQUIRED = 4
    EMPTY_STRING = 5
    BAD_DATE = 6
    END_NOT_AFTER_START = 7
    COUNT_BELOW_ONE = 8
    LATITUDE_OUT_OF_RANGE = 9
    LONGITUDE_OUT_OF_RANGE = 10
    BAD_TIME = 11
    NOT_IN_ENUM = 12
    MALFORMED_LIST = 13
    NOT_A_NUMBER = 14


_PARSE_MESSAGES = {
    ParseError.INVALID_JSON: "Invalid tool call: the text inside <tool_call> is not valid JSON.",
    ParseError.NOT_AN_OBJECT: "Invalid tool call: expected a JSON object with \"name\" and \"arguments\".",
    ParseError.MISSING_NAME: "Invalid tool call: the object has no \"name\" string.",
    ParseError.BAD_ARGUMENTS: "Invalid tool call: \"arguments\" must be a JSON object.",
}

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_COUNT_NAMES = {"adults", "room_qty", "rooms", "quantity", "guests", "page_number"}
# (start, end, end may equal start)
_DATE_PAIRS = (
    ("arrival_date", "departure_date", False),
    ("pick_up_date", "drop_off_date", True),
    ("departDate", "returnDate", False),
    ("min_date", "max_date", False),
    ("checkin_date", "checkout_date", False),
    ("start_date", "end_date", False),
)


def is_date_param(name: str) -> bool:
    return "date" in name.lower()


def is_time_param(name: str) -> bool:
    return name.lower().endswith("time")


def is_count_param(name: str) -> bool:
    n = name.lower()
    return n in _COUNT_NAMES or n.endswith("_qty") or n.endswith("_count")


def coordinate_kind(name: str) -> str | None:
    n = name.lower()
    if n in ("latitude", "lat") or n.endswith("_latitude") or n.endswith("_lat"):
        return "latitude"
    if n in ("longitude", "lng", "lon") or n.endswith(("_longitude", "_lng", "_lon")):
        return "longitude"
    return None


def valid_date(value) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Problem:
    kind: ErrorKind
    function: str | None = None
    param: str | None = None


class ErrorTable:
    """Every message the environment can answer with, built once from the tool schemas.

    Row 0 is "No results found" (a valid call that is not cached). `row(problem)` is the row of a
    problem; `messages[row]` is the response object.
    """

    def __init__(self, tools: dict[str, ToolSpec]):
        self.messages: list[dict] = [{"error": "No results found"}]
        self._rows: dict[tuple, int] = {}
        for code, text in _PARSE_MESSAGES.items():
            self._add((ErrorKind.PARSE_ERROR, None, int(code)), text)
        self._add((ErrorKind.UNKNOWN_FUNCTION, None, None),
                  "Unknown function. Call one of the tools listed in the system prompt.")
        for tool in tools.values():
            f = tool.name
            self._add((ErrorKind.UNKNOWN_PARAMETER, f, None),
                      f"Unknown parameter for {f}. Its parameters are: {', '.join(tool.param_names)}.")
            for p in tool.parameters:
                for kind, text in _param_messages(f, p):
                    self._add((kind, f, p.name), text)

    def _add(self, key: tuple, text: str) -> None:
        self._rows[key] = len(self.messages)
        self.messages.append({"error": text})

    def __len__(self) -> int:
        return len(self.messages)

    def row(self, problem: Problem | None, parse_error: ParseError = ParseError.OK) -> int:
        if parse_error != ParseError.OK:
            return self._rows[(ErrorKind.PARSE_ERROR, None, int(parse_error))]
        if problem is None:
            return 0
        if problem.kind == ErrorKind.UNKNOWN_FUNCTION:
            return self._rows[(ErrorKind.UNKNOWN_FUNCTION, None, None)]
        if problem.kind == ErrorKind.UNKNOWN_PARAMETER:
            return self._rows[(ErrorKind.UNKNOWN_PARAMETER, problem.function, None)]
        return self._rows[(problem.kind, problem.function, problem.param)]


def _param_messages(f: str, p: ParamSpec):
    n = p.name
    yield ErrorKind.MISSING_REQUIRED, f"Missing required parameter '{n}' for {f}."
    yield ErrorKind.EMPTY_STRING, f"Parameter '{n}' of {f} must not be empty."
    yield ErrorKind.NOT_A_NUMBER, f"Parameter '{n}' of {f} must be a number."
    if is_date_param(n) or p.type == "array":
        yield ErrorKind.BAD_DATE, f"Parameter '{n}' of {f} must be a date in the format YYYY-MM-DD."
    if is_time_param(n):
        yield ErrorKind.BAD_TIME, f"Parameter '{n}' of {f} must be a time in the format HH:MM."
    if any(n == end for _, end, _ in _DATE_PAIRS):
        start = next(s for s, end, _ in _DATE_PAIRS if end == n)
        yield ErrorKind.END_NOT_AFTER_START, f"Parameter '{n}' of {f} must be after '{start}'."
    if is_count_param(n):
        yield ErrorKind.COUNT_BELOW_ONE, f"Parameter '{n}' of {f} must be an integer of at least 1."
    kind = coordinate_kind(n)
    if kind == "latitude":
        yield ErrorKind.LATITUDE_OUT_OF_RANGE, f"Parameter '{n}' of {f} must be a latitude between -90 and 90."
    if kind == "longitude":
        yield ErrorKind.LONGITUDE_OUT_OF_RANGE, f"Parameter '{n}' of {f} must be a longitude between -180 and 180."
    if p.enum is not None:
        allowed = ", ".join(json.dumps(v) for v in p.enum)
        yield ErrorKind.NOT_IN_ENUM, f"Parameter '{n}' of {f} must be one of: {allowed}."
    if p.type == "array":
        yield ErrorKind.MALFORMED_LIST, f"Parameter '{n}' of {f} must be a JSON list" + (
            " of objects." if _items_are_objects(p) else ".")


def _items_are_objects(p: ParamSpec) -> bool:
    return isinstance(p.items, dict) and p.items.get("type") in ("dict", "object")


def validate(call: Call, tools: dict[str, ToolSpec]) -> Problem | None:
    """The first problem of `call` against its schema, or None when it is valid."""
    tool = tools.get(call.function)
    if tool is None:
        return Problem(ErrorKind.UNKNOWN_FUNCTION)
    f, args = tool.name, call.arguments
    for name in args:
        if tool.param(name) is None:
            return Problem(ErrorKind.UNKNOWN_PARAMETER, f)
    for name in tool.required:
        if args.get(name) is None:
            return Problem(ErrorKind.MISSING_REQUIRED, f, name)
    for p in tool.parameters:
        value = args.get(p.name)
        if value is None:
            continue
        kind = _check_value(p, value)
        if kind is not None:
            return Problem(kind, f, p.name)
    for start, end, may_equal in _DATE_PAIRS:
        a, b = args.get(start), args.get(end)
        if valid_date(a) and valid_date(b) and (b < a or (b == a and not may_equal)):
            return Problem(ErrorKind.END_NOT_AFTER_START, f, end)
    return None


def _check_value(p: ParamSpec, value) -> ErrorKind | None:
    if isinstance(value, str) and not value.strip():
        return ErrorKind.EMPTY_STRING
    if p.type == "array":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return ErrorKind.MALFORMED_LIST
        if not isinstance(value, list) or not value:
            return ErrorKind.MALFORMED_LIST
        if _items_are_objects(p):
            if not all(isinstance(v, dict) for v in value):
                return ErrorKind.MALFORMED_LIST
            for item in value:
                for k, v in item.items():
                    if is_date_param(k) and not valid_date(v):
                        return ErrorKind.BAD_DATE
        return None
    if p.enum is not None and value not in p.enum and normalise_value(value) not in p.enum:
        return ErrorKind.NOT_IN_ENUM
    if is_date_param(p.name):
        return None if valid_date(value) else ErrorKind.BAD_DATE
    if is_time_param(p.name):
        return None if isinstance(value, str) and _TIME.fullmatch(value) else ErrorKind.BAD_TIME
    number = normalise_value(value)
    numeric = isinstance(number, int | float) and not isinstance(number, bool)
    coord = coordinate_kind(p.name)
    if coord is not None:
        if not numeric:
            return ErrorKind.NOT_A_NUMBER
        limit = 90 if coord == "latitude" else 180
        return None if -limit <= number <= limit else (
            ErrorKind.LATITUDE_OUT_OF_RANGE if coord == "latitude" else ErrorKind.LONGITUDE_OUT_OF_RANGE)
    if is_count_param(p.name):
        if not numeric:
            return ErrorKind.NOT_A_NUMBER
        return None if float(number).is_integer() and number >= 1 else ErrorKind.COUNT_BELOW_ONE
    if p.type in ("number", "integer") and not numeric:
        return ErrorKind.NOT_A_NUMBER
    return None


def error_row(parsed: ParsedCall, tools: dict[str, ToolSpec], table: ErrorTable) -> int:
    """The error-table row for a parsed call that missed the cache (0: valid, no results)."""
    if not parsed.ok:
        return table.row(None, parsed.error)
    return table.row(validate(parsed.call, tools))
