"""ComplexFuncBench metrics, in plain Python, from per-sample results.

- Success Rate: samples whose every required gold call was matched and that ended with a final
  text answer, over samples.
- Call Accuracy: matched gold calls over gold calls, pooled over samples.
- Turn Accuracy: per sample, the golden steps completed before the first step left incomplete,
  over the golden steps (every step of a `Task` holds calls); pooled over samples.
Each is reported overall and per domain. A sample's domain comes from its gold functions' families
(`DomainRule`), or from its id's prefix for ComplexFuncBench ids such as `Car-Rental-12`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Sequence

from orchestra.data.canonical import normalise_value
from orchestra.data.types import Task

# Families of the Booking.com API, by function name (searched, first rule wins). Functions in no
# family (currency, languages, geocoding) say nothing about the domain.
DEFAULT_DOMAIN_RULES = (
    ("Hotels", r"Hotel|Room|^Get_Filter$|^Get_Sort_By$|Nearby|Near_By|Question_And_Answer|Description_And_Info"
               r"|^Property_"),
    ("Attraction", r"Attraction|^Get_Availability"),
    ("Flights", r"Flight|Min_Price|Seat_Map"),
    ("Car-Rental", r"Car_|Vehicle|^Booking_Summary$|^Get_Packages$"),
    ("Taxi", r"Taxi"),
)


@dataclasses.dataclass(frozen=True)
class DomainRule:
    by: str = "functions"   # functions | id_prefix
    rules: tuple[tuple[str, str], ...] = DEFAULT_DOMAIN_RULES
    cross: str = "Cross"    # gold functions from more than one family
    other: str = "Other"    # gold functions from no family

    def __post_init__(self):
        if self.by not in ("functions", "id_prefix"):
            raise ValueError(f"eval.domain.by must be 'functions' or 'id_prefix', got {self.by!r}")
        for i, rule in enumerate(self.rules):
            if len(rule) != 2 or not all(isinstance(x, str) for x in rule):
                raise ValueError(f"eval.domain.rules[{i}] must be [domain, regex], got {rule!r}")
            try:
                re.compile(rule[1])
            except re.error as e:
                raise ValueError(f"eval.domain.rules[{i}] ({rule[0]}): bad regex {rule[1]!r}: {e}") from None

    def function_domain(self, name: str) -> str | None:
        for domain, pattern in self.rules:
            if re.search(pattern, name):
                return domain
        return None

    def task_domain(self, task: Task) -> str:
        if self.by == "id_prefix":
            return task.task_id.rsplit("-", 1)[0] if "-" in task.task_id else self.other
        found = {d for s in task.steps if (d := self.function_domain(s.call.function)) is not None}
        if not found:
            return self.other
        return found.pop() if len(found) == 1 else self.cross


def leading_completed_steps(groups: Sequence[Sequence[int]], matched: Sequence[bool],
                            skippable: Sequence[bool], success: bool) -> int:
    """Golden steps completed, in order, before the first incomplete one.

    A step is complete when each of its calls was matched, or is skippable (a free call) and was
    passed over: the episode succeeded, or a call of a later step was matched.
    """
    last_matched_step = max((k for k, g in enumerate(groups) if any(matched[i] for i in g)), default=-1)
    done = 0
    for k, group in enumerate(groups):
        passed = success or last_matched_step > k
        if not all(matched[i] or (skippable[i] and passed) for i in group):
            break
        done += 1
    return done


def _block(samples: Sequence[dict]) -> dict:
    n = len(samples)
    gold_calls = sum(s["gold_calls"] for s in samples)
    gold_steps = sum(s["gold_steps"] for s in samples)
    out = {
        "samples": n,
        "successes": sum(bool(s["success"]) for s in samples),
        "matched_calls": sum(s["matched_calls"] for s in samples),
        "gold_calls": gold_calls,
        "completed_steps": sum(s["completed_steps"] for s in samples),
        "gold_steps": gold_steps,
    }
    out["success_rate"] = out["successes"] / n if n else 0.0
    out["call_accuracy"] = out["matched_calls"] / gold_calls if gold_calls else 0.0
    out["turn_accuracy"] = out["completed_steps"] / gold_steps if gold_steps else 0.0
    for key in ("complete", "correct"):  # judge scores of final answers, 0..2, where given
        scores = [s["answer_eval"][key] for s in samples
                  if s.get("answer_eval") and s["answer_eval"].get(key) is not None]
        out[f"answer_{key}"] = sum(scores) / len(scores) if scores else None
    return out


# Verdicts of calls that went right: a matched call, or a free call made at will.
_FINE = ("matched", "free")


def first_error(sample: dict) -> str:
    """How an episode first went wrong: the verdict of its first call that was neither matched nor
    free (parse_error, format_error, value_error, wrong_function, unpaired, unjudged, judge_rejected,
    after_done); `stopped` when no call went wrong yet the required calls were left undone (the
    policy answered early, or ran out of turns); `none` when nothing went wrong."""
    for turn in sample["turns"]:
        for call in turn["calls"]:
            if call["verdict"] not in _FINE:
                return call["verdict"]
    return "none" if sample["success"] else "stopped"


def _counts(values) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def calls_by_function(samples: Sequence[dict]) -> dict[str, dict[str, int]]:
    """Gold calls and matched gold calls per gold function, pooled over samples: which functions a
    policy gets right and which it never does."""
    out: dict[str, dict[str, int]] = {}
    for sample in samples:
        for g in sample["gold"]:
            counts = out.setdefault(g["function"], {"gold_calls": 0, "matched_calls": 0})
            counts["gold_calls"] += 1
            counts["matched_calls"] += g["matched_turn"] is not None
    return dict(sorted(out.items()))


def summarize(samples: Sequence[dict], judge: dict | None) -> dict:
    """The summary of per-sample results (the dicts `evaluate` returns)."""
    domains = sorted({s["domain"] for s in samples})
    return {
        "protocol": "ComplexFuncBench golden-path replay",
        "judge": judge,
        # Without a judge, calls that only a judge could accept count as unmatched.
        "lower_bound": judge is None,
        "overall": _block(samples),
        "by_domain": {d: _block([s for s in samples if s["domain"] == d]) for d in domains},
        "end_reasons": _counts(s["end_reason"] for s in samples),
        # where the failures come from: episodes by their first faulty call (first_error's categories)
        "first_errors": _counts(first_error(s) for s in samples),
        "by_function": calls_by_function(samples),
    }


# ---- copy accuracy by the source of a value ---------------------------------------------------

def dependent_args(task: Task, index: int) -> set[str]:
    """Arguments of step `index` that the gold call reads from an earlier response."""
    step = task.steps[index]
    names = {name for name, _, _ in step.dependency_args}
    md = task.metadata if isinstance(task.metadata, dict) else {}
    listed = md.get("dependency_args")
    if isinstance(listed, list) and index < len(listed) and isinstance(listed[index], dict):
        names |= set(listed[index])
    return names


def value_source(task: Task, index: int, name: str, value) -> str:
    """'response' (read from an earlier response), 'query' (stated verbatim in the request) or
    'other' (neither: a default or a value the model has to compose)."""
    if name in dependent_args(task, index):
        return "response"
    text = value if isinstance(value, str) else json.dumps(value)
    if text and re.search(rf"(?<!\w){re.escape(text)}(?!\w)", task.query):
        return "query"
    return "other"


def _same_value(a, b) -> bool:
    a, b = normalise_value(a), normalise_value(b)
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def copy_accuracy(tasks: Sequence[Task], samples: Sequence[dict]) -> dict:
    """From evaluation samples (`orchestra.eval.evaluate`'s): of the gold argument values of each
    source (`value_source`), in calls the model made for that gold call (same function), how many
    it wrote exactly. {source: {"exact": share or None, "values": count}}."""
    by_id = {t.task_id: t for t in tasks}
    hits, totals = Counter(), Counter()
    for sample in samples:
        task = by_id[sample["task_id"]]
        for turn in sample["turns"]:
            for entry in turn["calls"]:
                i = entry.get("gold")
                if i is None or entry.get("function") != task.steps[i].call.function:
                    continue
                pred = entry.get("arguments") or {}
                for name, value in task.steps[i].call.arguments.items():
                    if value is None:
                        continue
                    source = value_source(task, i, name, value)
                    totals[source] += 1
                    hits[source] += int(name in pred and _same_value(pred[name], value))
    return {s: {"exact": hits[s] / totals[s] if totals[s] else None, "values": totals[s]}
            for s in ("query", "response", "other")}
