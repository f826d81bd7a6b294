"""The ComplexFuncBench protocol: golden-path replay of tasks against any `Policy`, batched.

The policy sees the query and the offered tools and writes one assistant turn at a time. The
`<tool_call>` blocks of a turn are compared with the gold calls of the *current step*:

- Golden steps. With per-step turn numbers in `task.metadata["turns"]` (ComplexFuncBench imports),
  a golden step is the calls of one gold turn and a call depends on every call of earlier turns.
  Otherwise (Booking tasks, one call per `Step`) the dependencies are `Step.depends_on` and golden
  step k is the calls at dependency depth k. The current step is every gold call not yet matched
  whose dependencies are all matched, so independent calls may be made together, in any order.
- Free calls (location lookups; `FreeCallRule`) may be made or skipped: a dependency on one counts
  as satisfied, an unmatched free gold call may be matched at any time, and a free call that
  matches nothing is answered from the recorded cache (else "No results found") without ending
  the episode. A task made only of free calls has nothing to skip, so there they are required.
- Matching a turn. Blocks that do not parse, or fail the schema (`validate`, plus basic types), get
  a specific error message and take no part in matching. The valid calls are paired with the
  current step's calls: rule-equal pairs first, the rest by the best-fit assignment (maximum total
  similarity). A pair is a match when (1) rule-equal: same name, same keys, same values after
  normalisation, set-valued parameters (`categories_filter`) compared as sets of comma-separated
  items; or else (2) every must-match parameter (`exact_match_values.json`) agrees and the judge
  says the calls are equivalent. Without a judge (2) never matches, so results are a strict lower
  bound. A matched call receives its recorded response (rendered by a `ResponseView`); any other
  call a generic error.
- The episode ends when the policy answers in text; when a turn's calls match nothing (no match, no
  format error to correct, no free call); after the required calls are all matched and the one
  turn that follows (which should be the final answer; calls there end the episode unsuccessfully);
  or after `max_turns` turns.

One difference from the reference runner: there, the next gold turn joins the current one as
soon as anything of the current turn matched; here, a call joins when its dependencies are met.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from tqdm import tqdm

from orchestra.data.booking import Ecosystem, cache_entries_from_tasks
from orchestra.data.types import CacheEntry, Call, Task, ToolSpec
from orchestra.data.canonical import canonical_key, normalise_arguments
from orchestra.env.codec import parse_tool_calls
from orchestra.env.validators import ErrorTable, validate
from orchestra.env.views import ResponseView, ToolView
from orchestra.eval.judge import Judge, JudgeConfig, OpenAIJudge, judge_config
from orchestra.eval.metrics import DomainRule, leading_completed_steps, summarize
from orchestra.eval.report import write_results

if TYPE_CHECKING:
    from orchestra.eval.policy import Policy


# ---- configuration -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FreeCallRule:
    """Which calls are free: a name matching one of `names` (regex, whole name), or a call of
    `function` whose `argument` equals `value` (each rule a (function, argument, value) triple)."""
    names: tuple[str, ...] = (r"Search_.*(Location|Destination)", r"Taxi_Search_Location", r"Location_to_Lat_Long")
    arguments: tuple[tuple[str, str, object], ...] = (("Search_Hotels", "search_type", "hotel"),)

    def __post_init__(self):
        for i, pattern in enumerate(self.names):
            try:
                re.compile(pattern)
            except (re.error, TypeError) as e:
                raise ValueError(f"eval.free_calls.names[{i}]: bad regex {pattern!r}: {e}") from None
        for i, rule in enumerate(self.arguments):
            if len(rule) != 3 or not isinstance(rule[0], str) or not isinstance(rule[1], str):
                raise ValueError(f"eval.free_calls.arguments[{i}] needs function, argument and value, got {rule!r}")

    def __call__(self, call: Call) -> bool:
        if any(re.fullmatch(p, call.function) for p in self.names):
            return True
        return any(call.function == f and call.arguments.get(a) == v for f, a, v in self.arguments)


UNMATCHED_MESSAGE = "This call does not fit the request. Check the function and its arguments, then try again."


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    max_turns: int = 20                 # assistant turns per episode, final answer included
    batch_size: int = 32                # episodes generating together
    system_prompt: str | None = None    # None: conversations start with the user's query
    unmatched_message: str = UNMATCHED_MESSAGE
    set_valued_params: tuple[str, ...] = ("categories_filter",)
    response_view: ResponseView = dataclasses.field(default_factory=lambda: ResponseView(kind="full"))
    tool_view: ToolView = dataclasses.field(default_factory=lambda: ToolView(kind="full"))
    free_calls: FreeCallRule = dataclasses.field(default_factory=FreeCallRule)
    domain: DomainRule = dataclasses.field(default_factory=DomainRule)
    judge: JudgeConfig | None = None
    progress: bool = True

    def __post_init__(self):
        if self.max_turns < 1 or self.batch_size < 1:
            raise ValueError(f"eval.max_turns and eval.batch_size must be at least 1, got "
                             f"{self.max_turns} and {self.batch_size}")


def _plain(value):
    """Hydra/OmegaConf containers (or anything mapping- or list-like) as dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


def _keys_checked(values: dict, known: set, where: str) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")


def eval_config(cfg: Mapping | None) -> EvalConfig:
    """An `EvalConfig` from the `eval` config group (a mapping); unknown keys are errors."""
    cfg = _plain(cfg or {})
    _keys_checked(cfg, {f.name for f in dataclasses.fields(EvalConfig)}, "eval")
    out = dict(cfg)
    if "response_view" in cfg:
        rv = dict(cfg["response_view"] or {})
        _keys_checked(rv, {f.name for f in dataclasses.fields(ResponseView)}, "eval.response_view")
        out["response_view"] = ResponseView(**{k: tuple(v) if isinstance(v, list) else v for k, v in rv.items()})
    if "tool_view" in cfg:
        tv = dict(cfg["tool_view"] or {})
        _keys_checked(tv, {"kind"}, "eval.tool_view")
        out["tool_view"] = ToolView(**tv)
    if "free_calls" in cfg:
        fc = dict(cfg["free_calls"] or {})
        _keys_checked(fc, {"names", "arguments"}, "eval.free_calls")
        rules = []
        for i, r in enumerate(fc.get("arguments", [])):
            if not isinstance(r, dict) or set(r) != {"function", "argument", "value"}:
                raise ValueError(f"eval.free_calls.arguments[{i}] must have exactly function, argument, value; "
                                 f"got {r!r}")
            rules.append((r["function"], r["argument"], r["value"]))
        out["free_calls"] = FreeCallRule(tuple(fc.get("names", FreeCallRule.names)), tuple(rules))
    if "domain" in cfg:
        dm = dict(cfg["domain"] or {})
        _keys_checked(dm, {f.name for f in dataclasses.fields(DomainRule)}, "eval.domain")
        if "rules" in dm:
            if not isinstance(dm["rules"], dict):
                raise ValueError("eval.domain.rules must map domain -> regex (first match wins)")
            dm["rules"] = tuple((str(k), v) for k, v in dm["rules"].items())
        out["domain"] = DomainRule(**dm)
    if "set_valued_params" in cfg:
        out["set_valued_params"] = tuple(cfg["set_valued_params"] or ())
    if "judge" in cfg:
        out["judge"] = judge_config(cfg["judge"])
    return EvalConfig(**out)


# ---- the gold path -------------------------------------------------------------------------------

class GoldSteps(NamedTuple):
    deps: tuple[tuple[int, ...], ...]     # per gold call, the gold calls it waits for
    groups: tuple[tuple[int, ...], ...]   # the golden steps, in order: gold-call indices


def _metadata_turns(task: Task) -> list[int] | None:
    md = task.metadata
    if not isinstance(md, Mapping) or md.get("turns") is None:
        return None
    turns = md["turns"]
    if (not isinstance(turns, list) or len(turns) != len(task.steps)
            or not all(isinstance(t, int) and not isinstance(t, bool) for t in turns)):
        raise ValueError(f"task {task.task_id}: field 'metadata.turns' must be a list of {len(task.steps)} "
                         f"integers (one turn number per step), got {turns!r}")
    return turns


def gold_steps(task: Task) -> GoldSteps:
    """The dependency structure and the golden steps of a task (see the module docstring)."""
    n = len(task.steps)
    if n == 0:
        raise ValueError(f"task {task.task_id}: no gold steps")
    turns = _metadata_turns(task)
    if turns is not None:
        deps = tuple(tuple(j for j in range(n) if turns[j] < turns[i]) for i in range(n))
        groups = tuple(tuple(i for i in range(n) if turns[i] == t) for t in sorted(set(turns)))
        return GoldSteps(deps, groups)
    level: list[int] = []
    for i, s in enumerate(task.steps):
        if not all(isinstance(d, int) and 0 <= d < i for d in s.depends_on):
            raise ValueError(f"task {task.task_id}: field 'steps[{i}].depends_on' must hold indices of "
                             f"earlier steps, got {s.depends_on!r}")
        level.append(1 + max((level[d] for d in s.depends_on), default=-1))
    groups = tuple(tuple(i for i in range(n) if level[i] == k) for k in range(max(level) + 1))
    return GoldSteps(tuple(tuple(s.depends_on) for s in task.steps), groups)


# ---- comparing calls -----------------------------------------------------------------------------

def _same_value(name: str, a, b, set_params: Sequence[str]) -> bool:
    if name in set_params and isinstance(a, str) and isinstance(b, str):
        return {x.strip() for x in a.split(",")} == {x.strip() for x in b.split(",")}
    if isinstance(a, bool) != isinstance(b, bool):  # True == 1 in Python; not here
        return False
    return a == b


def rule_equal(pred: Call, gold: Call, set_params: Sequence[str] = ("categories_filter",)) -> bool:
    """Same function, same parameters, same values after normalisation (set-valued ones as sets)."""
    if pred.function != gold.function:
        return False
    a, b = normalise_arguments(pred.arguments), normalise_arguments(gold.arguments)
    return a.keys() == b.keys() and all(_same_value(k, a[k], b[k], set_params) for k in a)


def must_match_problem(pred: Call, gold: Call, params: Sequence[str],
                       set_params: Sequence[str] = ("categories_filter",)) -> str | None:
    """Why `pred` fails gold's must-match parameters (None: it does not)."""
    a, b = normalise_arguments(pred.arguments), normalise_arguments(gold.arguments)
    for k in params:
        if k not in b:
            continue
        if k not in a:
            return f"missing must-match parameter '{k}'"
        if not _same_value(k, a[k], b[k], set_params):
            return f"must-match parameter '{k}' differs from the gold value"
    return None


def similarity(pred: Call, gold: Call, set_params: Sequence[str] = ("categories_filter",)) -> float:
    """0 for another function; else 1 plus the share of parameters (of either call) that agree."""
    if pred.function != gold.function:
        return 0.0
    a, b = normalise_arguments(pred.arguments), normalise_arguments(gold.arguments)
    agree = sum(_same_value(k, a[k], b[k], set_params) for k in a.keys() & b.keys())
    return 1.0 + agree / max(1, len(a.keys() | b.keys()))


def best_assignment(scores: Sequence[Sequence[float]]) -> list[tuple[int, int]]:
    """(row, column) pairs, each row and column used at most once, min(rows, columns) pairs, with
    the largest total score (the Hungarian method, O(n^2 m))."""
    n = len(scores)
    m = len(scores[0]) if n else 0
    if n == 0 or m == 0:
        return []
    transposed = n > m
    if transposed:
        scores = [list(col) for col in zip(*scores)]
        n, m = m, n
    cost = [[-float(x) for x in row] for row in scores]
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    owner, way = [0] * (m + 1), [0] * (m + 1)  # owner[j]: the row (1-based) holding column j
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        best, used = [inf] * (m + 1), [False] * (m + 1)
        while owner[j0] != 0:
            used[j0] = True
            i0, delta, j1 = owner[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    reduced = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if reduced < best[j]:
                        best[j], way[j] = reduced, j0
                    if best[j] < delta:
                        delta, j1 = best[j], j
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    best[j] -= delta
            j0 = j1
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    pairs = [(owner[j] - 1, j - 1) for j in range(1, m + 1) if owner[j]]
    return sorted((c, r) for r, c in pairs) if transposed else sorted(pairs)


def _basic_type_problem(expected: str, value) -> str | None:
    # validate() covers numbers, lists, dates and enums; these are the remaining JSON-type mismatches.
    if expected == "string" and isinstance(value, dict | list | bool):
        return "a string"
    if expected == "boolean" and not isinstance(value, bool) and value not in ("true", "false"):
        return "true or false"
    if expected in ("object", "dict") and not isinstance(value, dict):
        return "an object"
    return None


def format_message(call: Call, tools: Mapping[str, ToolSpec], table: ErrorTable) -> str | None:
    """The error message for a call that does not fit the offered tools' schemas (None: it fits)."""
    problem = validate(call, dict(tools))
    if problem is not None:
        return table.messages[table.row(problem)]["error"]
    tool = tools[call.function]
    for name, value in call.arguments.items():
        if value is not None and (want := _basic_type_problem(tool.param(name).type, value)):
            return f"Parameter '{name}' of {call.function} must be {want}."
    return None


def _sanitised(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")


class MustMatch:
    """Per function, the must-match parameters. ComplexFuncBench spells some names with brackets
    (`Get_Hotel_Reviews(Tips)`) where tool files have `Get_Hotel_Reviews_Tips`; both are found."""

    def __init__(self, table: Mapping[str, Sequence[str]] | None):
        table = dict(table or {})
        self._exact = {k: tuple(v) for k, v in table.items()}
        self._alias = {_sanitised(k): tuple(v) for k, v in table.items()}

    def __call__(self, function: str) -> tuple[str, ...]:
        if function in self._exact:
            return self._exact[function]
        return self._alias.get(_sanitised(function), ())


# ---- episodes ------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Context:
    config: EvalConfig
    tools: dict[str, ToolSpec]
    table: ErrorTable
    must_match: MustMatch
    cache: dict[str, object]
    judge: Judge | None


class _Episode:
    def __init__(self, index: int, task: Task, ctx: _Context):
        self.index, self.task, self.ctx = index, task, ctx
        unknown = [name for name in task.candidate_tools if name not in ctx.tools]
        if unknown:
            raise ValueError(f"task {task.task_id}: field 'candidate_tools' names tool(s) {unknown} "
                             "that are not in the tool schemas")
        self.offered = {name: ctx.tools[name] for name in task.candidate_tools}
        self.schemas = [ctx.config.tool_view.schema(t) for t in self.offered.values()]
        self.gold = [s.call for s in task.steps]
        self.deps, self.groups = gold_steps(task)
        free = [ctx.config.free_calls(c) for c in self.gold]
        self.skippable = free if not all(free) else [False] * len(free)
        self.group_of = {i: k for k, g in enumerate(self.groups) for i in g}
        self.matched = [False] * len(self.gold)
        self.matched_turn: list[int | None] = [None] * len(self.gold)
        self.messages: list[dict] = []
        if ctx.config.system_prompt is not None:
            self.messages.append({"role": "system", "content": ctx.config.system_prompt})
        self.messages.append({"role": "user", "content": task.query})
        self.turns: list[dict] = []
        self.done, self.end_reason, self.final_answer = False, None, None

    def required_done(self) -> bool:
        return all(m or s for m, s in zip(self.matched, self.skippable))

    def current_step(self) -> list[int]:
        """Unmatched gold calls whose dependencies are met (free ones: always)."""
        def met(d):
            return self.matched[d] or self.skippable[d]
        return [i for i in range(len(self.gold)) if not self.matched[i]
                and (self.skippable[i] or all(met(d) for d in self.deps[i]))]

    def _finish(self, reason: str, answer: str | None = None) -> None:
        self.done, self.end_reason, self.final_answer = True, reason, answer

    def _error(self, message: str) -> str:
        return json.dumps({"error": message}, ensure_ascii=False)

    def _compare(self, call: Call, i: int, history: list[dict]) -> tuple[str, str | None]:
        """The verdict on `call` paired with gold call i, and why when it is not a match."""
        gold, set_params = self.gold[i], self.ctx.config.set_valued_params
        if rule_equal(call, gold, set_params):
            return "matched", None
        if call.function != gold.function:
            return "wrong_function", f"paired with {gold.function}"
        problem = must_match_problem(call, gold, self.ctx.must_match(gold.function), set_params)
        if problem is not None:
            return "value_error", problem
        if self.ctx.judge is None:
            return "unjudged", "not rule-equal; only a judge could accept it"
        verdict = self.ctx.judge.calls_equivalent(self.schemas, history, call, gold)
        return ("matched", "accepted by the judge") if verdict else ("judge_rejected", "the judge found them different")

    def step(self, text: str) -> None:
        history = list(self.messages)
        record: dict = {"turn": len(self.turns), "text": text, "calls": []}
        self.turns.append(record)
        self.messages.append({"role": "assistant", "content": text})
        parsed = parse_tool_calls(text)
        if not parsed:
            self._finish("answer" if text.strip() else "empty_answer", text)
            return
        if self.required_done():  # the turn after the last step is for the final answer
            record["calls"] = [{"raw": p.raw, "function": p.call.function if p.call else None,
                                "arguments": p.call.arguments if p.call else None, "verdict": "after_done"}
                               for p in parsed]
            self._finish("calls_after_done")
            return

        ctx, set_params = self.ctx, self.ctx.config.set_valued_params
        entries = [{"raw": p.raw, "function": p.call.function if p.call else None,
                    "arguments": p.call.arguments if p.call else None, "parse_error": None,
                    "verdict": None, "gold": None, "reason": None, "observation": None} for p in parsed]
        valid = []
        for j, p in enumerate(parsed):
            if not p.ok:
                entries[j].update(parse_error=p.error.name, verdict="parse_error",
                                  observation=self._error(ctx.table.messages[ctx.table.row(None, p.error)]["error"]))
            elif (message := format_message(p.call, self.offered, ctx.table)) is not None:
                entries[j].update(verdict="format_error", observation=self._error(message))
            else:
                valid.append(j)

        # Pair the valid calls with the current step: rule-equal pairs first, then best fit.
        current, pairs, taken = self.current_step(), {}, set()
        for j in valid:
            for i in current:
                if i not in taken and rule_equal(parsed[j].call, self.gold[i], set_params):
                    pairs[j] = i
                    taken.add(i)
                    break
        rest_calls = [j for j in valid if j not in pairs]
        rest_gold = [i for i in current if i not in taken]
        scores = [[similarity(parsed[j].call, self.gold[i], set_params) for i in rest_gold] for j in rest_calls]
        for a, b in best_assignment(scores):
            pairs[rest_calls[a]] = rest_gold[b]

        for j in valid:
            call, i = parsed[j].call, pairs.get(j)
            verdict, reason = self._compare(call, i, history) if i is not None else ("unpaired", None)
            entries[j].update(verdict=verdict, gold=i, reason=reason)
            if verdict == "matched":
                self.matched[i], self.matched_turn[i] = True, record["turn"]
                entries[j]["observation"] = ctx.config.response_view.render(self.task.steps[i].response)
            elif ctx.config.free_calls(call):
                entries[j]["verdict"] = "free"  # made or skipped at will; answered from the cache
                key = canonical_key(call.function, call.arguments)
                entries[j]["observation"] = (ctx.config.response_view.render(ctx.cache[key]) if key in ctx.cache
                                             else json.dumps(ctx.table.messages[0], ensure_ascii=False))
            else:
                entries[j]["observation"] = self._error(ctx.config.unmatched_message)

        record["calls"] = entries
        for e in entries:
            self.messages.append({"role": "tool", "name": e["function"] or "", "content": e["observation"]})
        verdicts = {e["verdict"] for e in entries}
        if not verdicts & {"matched", "parse_error", "format_error", "free"}:
            self._finish("no_match")
        elif len(self.turns) >= ctx.config.max_turns:
            self._finish("max_turns")

    def reference(self) -> str:
        """Gold calls and responses (and a gold answer when the task has one), for the answer judge."""
        lines = [json.dumps({"call": s.call.to_json(), "response": s.response}, ensure_ascii=False)
                 for s in self.task.steps]
        md = self.task.metadata
        if isinstance(md, Mapping) and isinstance(md.get("final_answer"), str):
            lines.append("Gold answer: " + md["final_answer"])
        return "\n".join(lines)

    def result(self) -> dict:
        success = self.end_reason == "answer" and self.required_done()
        return {
            "task_id": self.task.task_id,
            "domain": self.ctx.config.domain.task_domain(self.task),
            "success": success,
            "end_reason": self.end_reason,
            "final_answer": self.final_answer,
            "gold_calls": len(self.gold),
            "matched_calls": sum(self.matched),
            "gold_steps": len(self.groups),
            "completed_steps": leading_completed_steps(self.groups, self.matched, self.skippable, success),
            "answer_eval": None,
            "gold": [{"index": i, "function": c.function, "arguments": c.arguments, "step": self.group_of[i],
                      "free": self.skippable[i], "matched_turn": self.matched_turn[i]}
                     for i, c in enumerate(self.gold)],
            "turns": self.turns,
        }


# ---- the loop ------------------------------------------------------------------------------------

def _generate(policy: Policy, batch: list[_Episode]) -> list[str]:
    texts = policy.generate([list(e.messages) for e in batch], [e.schemas for e in batch])
    name = type(policy).__name__
    if not isinstance(texts, list | tuple) or len(texts) != len(batch):
        got = len(texts) if isinstance(texts, list | tuple) else type(texts).__name__
        raise ValueError(f"{name}.generate returned {got} texts for {len(batch)} conversations")
    for k, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}.generate: text {k} (task {batch[k].task.task_id}) is a "
                            f"{type(t).__name__}, not a str")
    return list(texts)


def evaluate(policy: Policy, tasks: Sequence[Task], tools: Mapping[str, ToolSpec],
             config: EvalConfig | None = None, *, exact_match: Mapping[str, Sequence[str]] | None = None,
             judge: Judge | None = None, cache_entries: Sequence[CacheEntry] | None = None,
             out_dir: str | None = None) -> tuple[dict, list[dict]]:
    """Replay every task against `policy`; returns (summary, per-sample results) and, with
    `out_dir`, writes them there (`summary.json`, `samples.jsonl`).

    `exact_match`: per function, the must-match parameters (`Ecosystem.exact_match`).
    `judge`: overrides `config.judge`; None with no `config.judge` means no judge (a lower bound).
    `cache_entries`: recorded calls that answer free calls outside the gold path (default: the
    tasks' own gold calls).
    """
    config = config or EvalConfig()
    if judge is None and config.judge is not None:
        judge = OpenAIJudge(config.judge)
    cache: dict[str, object] = {}
    for e in (cache_entries if cache_entries is not None else cache_entries_from_tasks(list(tasks))):
        cache.setdefault(canonical_key(e.function, e.arguments), e.response)
    ctx = _Context(config, dict(tools), ErrorTable(dict(tools)), MustMatch(exact_match), cache, judge)
    episodes = [_Episode(i, t, ctx) for i, t in enumerate(tasks)]  # checks every task before any generation

    results: list[dict | None] = [None] * len(episodes)
    pending, active = deque(episodes), []
    with tqdm(total=len(episodes), desc="ComplexFuncBench", unit="task", disable=not config.progress) as bar:
        while pending or active:
            while pending and len(active) < config.batch_size:
                active.append(pending.popleft())
            for e, text in zip(active, _generate(policy, active)):
                e.step(text)
            for e in active:
                if e.done:
                    result = e.result()
                    if judge is not None and e.final_answer and e.final_answer.strip():
                        result["answer_eval"] = judge.score_answer(e.task.query, e.reference(), e.final_answer)
                    results[e.index] = result
                    bar.update(1)
            active = [e for e in active if not e.done]

    summary = summarize(results, judge.describe() if judge is not None else None)
    summary["config"] = json.loads(json.dumps(dataclasses.asdict(config)))  # as the JSON file holds it
    if out_dir is not None:
        write_results(out_dir, summary, results)
    return summary, results


def evaluate_ecosystem(policy: Policy, eco: Ecosystem, config: EvalConfig | None = None, *,
                       judge: Judge | None = None, out_dir: str | None = None) -> tuple[dict, list[dict]]:
    """`evaluate` on an ecosystem's tasks, tools, must-match table and recorded calls."""
    return evaluate(policy, eco.tasks, eco.tools, config, exact_match=eco.exact_match, judge=judge,
                    cache_entries=eco.cache_entries, out_dir=out_dir)
