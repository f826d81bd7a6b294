"""The graduated reward in plain Python: the specification the vectorised version is held to.

Reads like the definitions of arXiv:2603.24709 ("paper" mode, the default) plus a "strict" mode;
README.md beside this file explains both. In short:

Calls. Every `<tool_call>` block of the rollout, in order (`orchestra.env.codec` parses them):
- INVALID_JSON (not JSON, or cut off): dropped, as if the block were not there; with
  `count_unparsable`, a call that scores 0 instead.
- NOT_AN_OBJECT, MISSING_NAME: a call that scores 0. A JSON object without a string name is an
  attempt at a call whose name matches nothing, so it counts like a non-object does.
- BAD_ARGUMENTS: the call with arguments `{}` (a string that does not parse to an object, or
  arguments that are not an object at all).
An argument whose value is null counts as absent, as when the environment executes the call.

Atomic validity, per call k matched to a gold step (paper: the first step with its function name):
    AST = w_name * [name matches]
        + w_params * (|P & P*| / |P*|) * (share of shared parameters with compatible value types)
        + w_values * [same parameter names, every value equal after BFCL's normalisation]
  (0.33 / 0.33 / 0.34 in the paper). A gold step without parameters gives the parameter level only
  to a call without parameters. With `params_credit: all` the parameter level is 1 only for exactly
  the gold parameter names, every value type compatible, else 0. Semantic = [gold step succeeded] *
  [the call's own execution succeeded]. An unmatched call scores 0 on both. R_atomic = (mean AST +
  mean semantic) / 2 over the calls, 0 without calls.
Orchestration consistency: gold step i scores 1 when it succeeded and a call at position p has its
function name and every step it depends on was matched at a position before p (the first such p is
step i's position, recorded even when the gold step failed). R_orch = mean over gold steps.
Binary baseline: 1 when the rollout's calls are exactly the gold trace: one call per gold step
(same name, values exactly right), at positions that respect every dependency, and no other call.

Values are compared as BFCL's AST checker compares them: strings lower-cased with spaces and
`, . / - _ * ^` removed (and `'` read as `"`), numbers as numbers (int and float alike), lists
element by element, objects key by key. That holds for a list of objects too, such as the `legs` of
`Search_Flights_Multi_Stops`: the paper's released code never passes the value level for such a
parameter (an artefact of how it wraps expected values for BFCL's checker); here it is compared by
the definition, so a correct list of legs scores.

Rollout text form (what `rollout_calls` reads and `render_rollout` writes): any assistant text
with `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, interleaved with
`<tool_response>JSON</tool_response>` blocks (the environment's observations). Each response
answers the earliest call block before it that has no response yet; the environment answers every
block, a malformed one with an error. A call's success is read from the response paired with it the
paper's way (the first unused response among calls with the same canonical key): a response that
is missing, not valid JSON, empty, has an `error` key or `status: false` is a failure.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from orchestra.data.types import Call, Task
from orchestra.data.types import response_succeeded
from orchestra.data.canonical import canonical_key
from orchestra.env.codec import ParseError, ParsedCall, format_observation, format_tool_call, parse_tool_calls
from orchestra.reward.config import RewardConfig

# ----------------------------------------------------------------------------------------------
# From rollout text to calls


@dataclasses.dataclass(frozen=True)
class RolloutCall:
    """One call of a rollout: the call (None for an unusable block, which scores 0) and whether its
    own execution succeeded."""
    call: Call | None
    success: bool


_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)


def counts_as_call(parsed: ParsedCall, count_unparsable: bool = False) -> bool:
    """Unparsable blocks are dropped unless `count_unparsable`; everything else is a call, possibly
    one scoring 0."""
    return count_unparsable or parsed.error != ParseError.INVALID_JSON


def reward_call(parsed: ParsedCall) -> Call | None:
    """The call a counted block stands for; None when it is a call that scores 0."""
    if parsed.error == ParseError.BAD_ARGUMENTS:
        # The codec checks the name before the arguments, so the block is an object with a name.
        return Call(json.loads(parsed.raw)["name"], {})
    return parsed.call


def response_text_succeeded(text: str) -> bool:
    try:
        response = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return response_succeeded(response)


def parse_rollout(text: str) -> list[tuple[ParsedCall, bool]]:
    """Every `<tool_call>` block of a rollout, in order, with whether its execution succeeded."""
    blocks: list[ParsedCall] = []
    responses: list[str] = []  # responses[k] answers blocks[k]
    for i, piece in enumerate(_RESPONSE.split(text)):  # text, response, text, response, ..., text
        if i % 2 == 0:
            blocks.extend(parse_tool_calls(piece))
        elif len(responses) < len(blocks):  # a response with no call waiting answers nothing
            responses.append(piece.strip())
    # The paper's rule: a call takes the first unused response among calls with its canonical key.
    pool: dict[str, list[str]] = defaultdict(list)
    for block, response in zip(blocks, responses):
        if block.call is not None:
            pool[canonical_key(block.call.function, block.call.arguments)].append(response)
    out = []
    for block in blocks:
        waiting = pool[canonical_key(block.call.function, block.call.arguments)] if block.call else []
        out.append((block, bool(waiting) and response_text_succeeded(waiting.pop(0))))
    return out


def rollout_calls(text: str, count_unparsable: bool = False) -> list[RolloutCall]:
    """The calls the reward scores, in order."""
    return [RolloutCall(reward_call(block), success) for block, success in parse_rollout(text)
            if counts_as_call(block, count_unparsable)]


def render_rollout(items: Sequence[tuple[Call | str, object]]) -> str:
    """A rollout text from (call, response) pairs: a `Call` is written as the policy writes it, a
    string is put verbatim inside `<tool_call>` (to write malformed blocks); each response is
    written as JSON (None becomes `null`, a failure)."""
    parts = []
    for call, response in items:
        parts.append(format_tool_call(call) if isinstance(call, Call) else f"<tool_call>\n{call}\n</tool_call>")
        parts.append(format_observation(json.dumps(response, ensure_ascii=False)))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------
# Values, as BFCL's AST checker compares them

_BFCL_REMOVED = re.compile(r"[ ,./\-_*^]")


def standardise_string(text: str) -> str:
    """BFCL's string normalisation: lower-case, spaces and `, . / - _ * ^` removed, `'` read as `"`."""
    return _BFCL_REMOVED.sub("", text).lower().replace("'", '"')


def value_type(value) -> str:
    """The JSON type of a value; int and float are both "number", so they are compatible."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {value!r} ({type(value).__name__})")


def number_value(value: int | float) -> float:
    """A number as a float (an integer too large for a float becomes an infinity)."""
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def values_equal(value, gold) -> bool:
    kind = value_type(value)
    if kind != value_type(gold):
        return False
    if kind == "number":
        return number_value(value) == number_value(gold)
    if kind == "string":
        return standardise_string(value) == standardise_string(gold)
    if kind == "array":
        return len(value) == len(gold) and all(values_equal(v, g) for v, g in zip(value, gold))
    if kind == "object":
        return value.keys() == gold.keys() and all(values_equal(value[k], gold[k]) for k in gold)
    return value == gold  # boolean, null


def given_arguments(arguments: dict) -> dict:
    """The parameters a call gives: a null value counts as absent."""
    return {name: value for name, value in arguments.items() if value is not None}


# ----------------------------------------------------------------------------------------------
# Atomic validity


def values_exactly_right(call: Call, gold: Call) -> bool:
    """Every gold parameter present, no extra one, every value equal to the gold value."""
    given, expected = given_arguments(call.arguments), given_arguments(gold.arguments)
    return given.keys() == expected.keys() and all(values_equal(given[p], expected[p]) for p in expected)


def ast_score(call: Call, gold: Call, config: RewardConfig) -> float:
    """The AST score of a call against the gold step it is matched to (same function name)."""
    given, expected = given_arguments(call.arguments), given_arguments(gold.arguments)
    if expected:
        shared = [p for p in expected if p in given]
        coverage = len(shared) / len(expected)
        compatible = sum(value_type(given[p]) == value_type(expected[p]) for p in shared)
        type_share = compatible / len(shared) if shared else 0.0
        params_level = coverage * type_share
        if config.params_credit == "all":
            params_level = float(given.keys() == expected.keys() and params_level == 1.0)
    else:
        params_level = 0.0 if given else 1.0
    return (config.w_name + config.w_params * params_level
            + config.w_values * float(values_exactly_right(call, gold)))


def paper_matching(calls: Sequence[RolloutCall], task: Task) -> list[int | None]:
    """Each call to the first gold step with its function name (several calls may share a step)."""
    first_step: dict[str, int] = {}
    for i, step in enumerate(task.steps):
        first_step.setdefault(step.call.function, i)
    return [first_step.get(c.call.function) if c.call is not None else None for c in calls]


def strict_matching(calls: Sequence[RolloutCall], task: Task, config: RewardConfig) -> list[int | None]:
    """One-to-one by best fit: repeatedly pair the unpaired call and gold step (same name) with the
    highest AST score; ties go to the earlier call, then the earlier step. Greedy, not the optimal
    assignment. Scores are rounded to 1e-9 so that the last bit of a product breaks no tie."""
    pairs = sorted((-round(ast_score(c.call, step.call, config), 9), k, i)
                   for k, c in enumerate(calls) if c.call is not None
                   for i, step in enumerate(task.steps) if step.call.function == c.call.function)
    match: list[int | None] = [None] * len(calls)
    taken: set[int] = set()
    for _, k, i in pairs:
        if match[k] is None and i not in taken:
            match[k] = i
            taken.add(i)
    return match


# ----------------------------------------------------------------------------------------------
# Orchestration consistency and the binary baseline


def claim_positions(task: Task, n_calls: int, serves: Callable[[int, int], bool], one_to_one: bool) -> list[int | None]:
    """For each gold step in order, the first call position p that serves it (`serves(p, i)`)
    after the positions of every step it depends on (all of which must have one); with
    `one_to_one`, a position serves at most one step."""
    positions: list[int | None] = []
    claimed: set[int] = set()
    for i, step in enumerate(task.steps):
        dependency_positions = [positions[j] for j in step.depends_on]
        found = None
        if all(p is not None for p in dependency_positions):
            for p in range(max(dependency_positions, default=-1) + 1, n_calls):
                if serves(p, i) and not (one_to_one and p in claimed):
                    found = p
                    break
        if found is not None:
            claimed.add(found)
        positions.append(found)
    return positions


# ----------------------------------------------------------------------------------------------
# The reward


@dataclasses.dataclass(frozen=True)
class ReferenceBreakdown:
    """The reward and its parts; per-call lists follow the scored calls, per-step lists the gold steps."""
    reward: float
    atomic: float
    orch: float
    binary: float
    ast: list[float]              # per call
    semantic: list[float]         # per call
    call_step: list[int | None]   # per call: the gold step it was matched to
    step_score: list[float]       # per gold step: orchestration score
    step_position: list[int | None]  # per gold step: the call position that served it


def reference_reward(rollout: str | Sequence[RolloutCall], task: Task,
                     config: RewardConfig = RewardConfig()) -> ReferenceBreakdown:
    """The reward of one rollout (its text, or its calls with their success) against a gold task."""
    calls = rollout_calls(rollout, config.count_unparsable) if isinstance(rollout, str) else list(rollout)
    steps = task.steps

    match = paper_matching(calls, task) if config.mode == "paper" else strict_matching(calls, task, config)
    ast, semantic = [], []
    for c, i in zip(calls, match):
        if i is None:
            ast.append(0.0)
            semantic.append(0.0)
        else:
            ast.append(ast_score(c.call, steps[i].call, config))
            semantic.append(float(steps[i].success and c.success))
    atomic = (sum(ast) / len(calls) + sum(semantic) / len(calls)) / 2 if calls else 0.0

    def same_name(p: int, i: int) -> bool:
        return calls[p].call is not None and calls[p].call.function == steps[i].call.function

    positions = claim_positions(task, len(calls), same_name, one_to_one=config.mode == "strict")
    step_score = [float(p is not None and step.success) for p, step in zip(positions, steps)]
    extra_calls = sum(i is None for i in match) if config.penalise_extra_calls else 0
    orch = sum(step_score) / (len(steps) + extra_calls)

    def exact(p: int, i: int) -> bool:
        return same_name(p, i) and values_exactly_right(calls[p].call, steps[i].call)

    exact_positions = claim_positions(task, len(calls), exact, one_to_one=True)
    binary = float(len(calls) == len(steps) and all(p is not None for p in exact_positions))

    reward = config.w_atomic * atomic + config.w_orch * orch + config.w_binary * binary
    return ReferenceBreakdown(reward, atomic, orch, binary, ast, semantic, match, step_score, positions)
