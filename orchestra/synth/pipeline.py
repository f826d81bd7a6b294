"""The synthesis pipeline: sample chains, replay them, dress them as tasks, split and write them.

    result = synthesize(ecosystem, config, seed)      # SynthesisResult(tasks, report)
    split = split_tasks(result.tasks, config.split, seed)
    write_outputs(result, split, out_dir)

One draw picks a source (a template by the configured weighting, quotas first, or a composed chain
from the mined graph), samples a chain of cache entries (constrained, or the unconstrained
baseline), and queues it. Queued chains are replayed through the jitted environment in fixed-size
batches; a chain is kept only if every step succeeds. A kept chain gets its candidate tools (gold
plus exactly `distractors` others, same domain first), its turns, and a query in which no dependent
value appears. Everything is drawn from one generator seeded by `seed`, in a fixed order, so a seed
gives the same tasks, byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from orchestra.data.booking import Ecosystem
from orchestra.data.serialize import atomic_writer, write_tasks_jsonl
from orchestra.data.types import Call, Step, Task, WorkflowTemplate
from orchestra.env.build import Environment
from orchestra.env.cache import ApiCache
from orchestra.env.env import EnvConfig
from orchestra.synth.config import ConfigError, SplitConfig, SynthConfig, in_range
from orchestra.synth.domains import infer_domains
from orchestra.synth.graph import DependencyGraph, structure_key, template_depth
from orchestra.synth.index import ReverseIndex, value_strings
from orchestra.synth.paths import PathError, parse_path
from orchestra.synth.phrasebook import BOOKING
from orchestra.synth.realise import LLMRealiser, OfflineRealiser, RealiserError, StepSpec, leaked_values
from orchestra.synth.sampler import DrawStats, sample_chain, step_domains
from orchestra.synth.unconstrained import FreeProposer

COMPOSED = "composed"
REALISE_TRIES = 3  # fresh phrasings tried before a query that leaks a dependent value is dropped


class SynthesisError(ValueError):
    """Synthesis cannot run as configured (the message says which setting or template is at fault)."""


@dataclasses.dataclass
class SynthesisResult:
    tasks: list[Task]
    report: dict


@dataclasses.dataclass
class _Candidate:
    source: str               # workflow id, or COMPOSED
    template: WorkflowTemplate
    chain: tuple[int, ...]


def check_templates(templates: list[WorkflowTemplate]) -> None:
    """Every `from_field` must parse; a malformed one names its template, step and argument."""
    for t in templates:
        for k, s in enumerate(t.steps):
            for arg, d in s.dependency_args.items():
                try:
                    parse_path(d.from_field)
                except PathError as e:
                    raise SynthesisError(f"template '{t.workflow_id}' step {k} ({s.function}) argument "
                                         f"'{arg}': {e}") from None


def assign_turns(template: WorkflowTemplate, calls_per_turn: int) -> list[int]:
    """Turn index per step: consecutive steps share a turn while none depends on another step of
    that turn and the turn holds fewer than `calls_per_turn` calls."""
    turns, members, turn = [], [], -1
    for k, s in enumerate(template.steps):
        needs = set(s.depends_on) | {d.from_step for d in s.dependency_args.values()}
        if members and len(members) < calls_per_turn and not needs & set(members):
            members.append(k)
        else:
            members, turn = [k], turn + 1
        turns.append(turn)
    return turns


def synthesize(ecosystem: Ecosystem, config: SynthConfig | dict, seed: int, *,
               env: Environment | None = None, progress: bool = False) -> SynthesisResult:
    """`config.count` tasks (fewer when the cache runs out; the report says why) for `seed`."""
    t_start = time.perf_counter()
    cfg = config if isinstance(config, SynthConfig) else SynthConfig.from_dict(config)
    cx = cfg.complexity
    eco = ecosystem
    check_templates(eco.templates)
    rng = np.random.default_rng(seed)

    domains = infer_domains(eco.tools, eco.templates)
    known_domains = sorted({d for d in domains.values() if d})
    unknown = [d for d in cx.domains if d not in known_domains]
    if unknown:
        raise ConfigError(f"synth.complexity.domains: unknown domain(s) {unknown}; this ecosystem's "
                          f"domains are {known_domains}")
    allowed = {f for f, d in domains.items() if d in cx.domains} if cx.domains else None

    # --- which templates can be sampled --------------------------------------------------------
    cache = ApiCache.from_entries(eco.cache_entries) if env is None else env.cache
    index = ReverseIndex(cache)
    report: dict = {"requested": cfg.count, "seed": seed, "sampler": cfg.sampler, "source": cfg.source}
    no_entries, excluded, no_chain, usable = {}, [], [], []
    step_doms = {}
    for t in eco.templates:
        missing = sorted({s.function for s in t.steps if not index.entries(s.function)})
        if missing:
            no_entries[t.workflow_id] = missing
            continue
        if not (in_range(len(t.steps), cx.steps) and in_range(template_depth(t), cx.depth)
                and (allowed is None or set(t.pattern) <= allowed)):
            excluded.append(t.workflow_id)
            continue
        if cfg.sampler == "constrained":
            step_doms[t.workflow_id] = step_domains(t, cache, index)
            if not all(step_doms[t.workflow_id]):
                no_chain.append(t.workflow_id)
                continue
        usable.append(t)
    report["templates"] = {
        "total": len(eco.templates), "usable": len(usable),
        "skipped_no_cache_entries": no_entries, "excluded_by_complexity": excluded,
        "no_valid_chain": no_chain}

    use_templates = cfg.source in ("templates", "mixed")
    use_composed = cfg.source in ("composed", "mixed")
    template_ids = {t.workflow_id for t in eco.templates}
    unknown_quota = sorted(set(cfg.quotas) - template_ids)
    if unknown_quota:
        raise ConfigError(f"synth.quotas: unknown workflow id(s) {unknown_quota}")
    if cfg.quotas and not use_templates:
        raise ConfigError("synth.quotas: quotas name templates, but synth.source is 'composed'")

    graph, compose_lengths = None, None
    if use_composed:
        lo = max(cx.steps[0] if cx.steps else 2, (cx.depth[0] + 1) if cx.depth else 1)
        hi = cx.steps[1] if cx.steps else max(cfg.compose_max_steps, lo)
        if lo > hi:
            raise ConfigError(f"synth.complexity: no composed chain can have {cx.steps} steps and depth {cx.depth}")
        compose_lengths = (lo, hi)
        graph = DependencyGraph.mine(eco.tools, eco.templates, cache, index)
        report["graph"] = graph.summary()
    if not (use_templates and usable) and not use_composed:
        raise SynthesisError(f"no template can be sampled: {len(no_entries)} have no cache entries, "
                             f"{len(excluded)} are excluded by synth.complexity, {len(no_chain)} have no "
                             f"valid chain in the cache")

    max_len = max([len(t.steps) for t in usable] + ([compose_lengths[1]] if compose_lengths else []))
    if env is None:
        env = Environment.from_ecosystem(eco, config=EnvConfig(max_turns=max_len, max_calls=max_len,
                                                               max_calls_per_turn=1))
    elif env.env.config.max_turns < max_len or env.env.config.max_calls < max_len:
        raise SynthesisError(f"the environment allows {env.env.config.max_turns} turns and "
                             f"{env.env.config.max_calls} calls, but chains here have up to {max_len} steps")

    if cfg.realiser.kind == "llm":
        r = cfg.realiser
        realiser = LLMRealiser(eco.tools, r.base_url, r.model, r.api_key_env, r.timeout_s, r.temperature)
    else:
        realiser = None
    offline = OfflineRealiser(eco.tools, BOOKING)
    proposer = FreeProposer(cache, index) if cfg.sampler == "unconstrained" else None
    forbidden = {structure_key(t) for t in eco.templates}
    by_id = {t.workflow_id: t for t in usable}

    # --- the draw loop ------------------------------------------------------------------------
    stats = DrawStats()
    counts = Counter()          # accepted + queued per source
    failures = Counter()        # consecutive failed draws per source
    closed: dict[str, str] = {}  # source -> why it is no longer drawn from
    seen: set[tuple[int, ...]] = set()
    tasks: list[Task] = []
    queue: list[_Candidate] = []
    tally = Counter()
    t_validate = 0.0

    def open_sources() -> list[str]:
        out = []
        if use_templates:
            for t in usable:
                wid = t.workflow_id
                if wid in closed or wid in cfg.quotas:
                    continue
                if cfg.max_per_workflow is not None and counts[wid] >= cfg.max_per_workflow:
                    continue
                out.append(wid)
        if use_composed and COMPOSED not in closed:
            out.append(COMPOSED)
        return out

    def pick_source() -> str | None:
        for wid, n in cfg.quotas.items():  # quotas first, in workflow id order
            if wid in by_id and wid not in closed and counts[wid] < n:
                return wid
        sources = open_sources()
        if not sources:
            return None
        templ = [s for s in sources if s != COMPOSED]
        if COMPOSED in sources and (not templ or cfg.source == "composed" or rng.random() < cfg.composed_fraction):
            return COMPOSED
        if cfg.weighting == "frequency":
            w = np.array([by_id[s].frequency for s in templ], float)
            return templ[rng.choice(len(templ), p=w / w.sum())]
        return templ[rng.integers(len(templ))]

    def draw(source: str) -> _Candidate | None:
        if source == COMPOSED:
            length = int(rng.integers(compose_lengths[0], compose_lengths[1] + 1))
            # Composed chains exist to have dependencies: depth 1.. unless the config says otherwise.
            d_lo, d_hi = cx.depth if cx.depth else (min(1, length - 1), length - 1)
            depth = int(rng.integers(d_lo, min(d_hi, length - 1) + 1))
            got = graph.compose(length, depth, rng, cache, index, allowed=allowed, distinct_calls=cfg.distinct_calls,
                                forbidden=forbidden, max_restarts=cfg.max_restarts, stats=stats)
            return None if got is None else _Candidate(COMPOSED, got[0], got[1])
        template = by_id[source]
        if proposer is None:
            chain = sample_chain(template, cache, index, rng, cfg.max_restarts, cfg.distinct_calls, stats,
                                 step_doms[source])
        else:
            chain = None
            for _ in range(cfg.max_restarts):
                stats.attempts += 1
                got = proposer.as_chain(proposer.propose(template, rng))
                if got is not None and proposer.consistent(template, got) and (
                        not cfg.distinct_calls or len(set(got)) == len(got)):
                    chain = got
                    break
                stats.dead_ends += 1
        return None if chain is None else _Candidate(source, template, chain)

    def flush() -> None:
        nonlocal t_validate
        if not queue:
            return
        t0 = time.perf_counter()
        ok = replay_ok(env, [[Call(cache.functions[e], cache.arguments[e]) for e in c.chain] for c in queue],
                       cfg.validate_batch)
        t_validate += time.perf_counter() - t0
        for c, good in zip(queue, ok):
            if not good:
                tally["failed_replay"] += 1
                counts[c.source] -= 1
                continue
            if len(tasks) >= cfg.count:
                break
            task = _make_task(c, len(tasks), seed, cfg, eco, cache, domains, realiser, offline, rng, tally)
            if task is None:
                counts[c.source] -= 1
                continue
            tasks.append(task)
            bar.update(1)
        queue.clear()

    bar = tqdm(total=cfg.count, disable=not progress, desc="synthesizing", unit="task")
    while len(tasks) < cfg.count and stats.attempts < cfg.max_attempts:
        if len(tasks) + len(queue) >= cfg.count:
            flush()
            continue
        source = pick_source()
        if source is None:
            break
        candidate = draw(source)
        if candidate is not None and cfg.unique and candidate.chain in seen:
            tally["duplicates"] += 1
            candidate = None
        if candidate is None:
            failures[source] += 1
            if failures[source] >= cfg.max_failures:
                closed[source] = f"{cfg.max_failures} draws in a row gave no new chain"
            continue
        failures[source] = 0
        seen.add(candidate.chain)
        counts[source] += 1
        queue.append(candidate)
        if len(queue) >= cfg.validate_batch:
            flush()
    flush()
    bar.close()
    if stats.attempts >= cfg.max_attempts and len(tasks) < cfg.count:
        tally["stopped_at_max_attempts"] = 1

    report.update(_distribution(tasks))
    report["quotas"] = {wid: {"wanted": n, "got": report["by_workflow"].get(wid, 0)} for wid, n in cfg.quotas.items()}
    report["sources_closed"] = dict(sorted(closed.items()))
    report["attempts"] = stats.attempts
    report["dead_ends"] = stats.dead_ends
    report.update({k: tally[k] for k in ("duplicates", "failed_replay", "dropped_leak", "realiser_fallbacks")})
    report["stopped_at_max_attempts"] = bool(tally["stopped_at_max_attempts"])
    report["domains"] = {f: d for f, d in sorted(domains.items())}
    report["seconds"] = {"total": round(time.perf_counter() - t_start, 3), "replay": round(t_validate, 3)}
    return SynthesisResult(tasks, report)


def replay_ok(env: Environment, traces: list[list[Call]], batch: int) -> list[bool]:
    """Replay traces through the environment in batches of one fixed shape ([batch + 1, max_turns],
    so the jitted replay compiles once per environment); True where every step of a trace succeeded."""
    filler = [Call("", {})] * env.env.config.max_turns  # fixes the shape; its calls are errors, discarded
    out = []
    for i in range(0, len(traces), batch):
        part = traces[i:i + batch]
        padded = part + [filler] * (batch + 1 - len(part))
        success = env.replay(padded)
        out.extend(bool(success[j, :len(t)].all()) for j, t in enumerate(part))
    return out


def _make_task(c: _Candidate, number: int, seed: int, cfg: SynthConfig, eco: Ecosystem, cache, domains,
               realiser, offline: OfflineRealiser, rng, tally: Counter) -> Task | None:
    template = c.template
    turns = assign_turns(template, cfg.complexity.calls_per_turn)
    specs = [StepSpec(s.function, cache.arguments[e],
                      {a: (d.from_step, d.from_field) for a, d in s.dependency_args.items()}, turns[k])
             for k, (s, e) in enumerate(zip(template.steps, c.chain))]
    query = None
    for attempt in range(REALISE_TRIES):
        text = None
        if realiser is not None and attempt == 0:
            try:
                text = realiser.realise(specs, rng)
            except RealiserError:
                tally["realiser_fallbacks"] += 1
        if text is None:
            text = offline.realise(specs, rng)
        if not leaked_values(text, specs):
            query = text
            break
    if query is None:
        tally["dropped_leak"] += 1
        return None

    gold = list(dict.fromkeys(template.pattern))
    n = cfg.complexity.distractors
    others = [f for f in sorted(eco.tools) if f not in gold]
    if n > len(others):
        raise ConfigError(f"synth.complexity.distractors: {n} distractors asked, but this ecosystem has only "
                          f"{len(others)} tools besides the {len(gold)} of workflow {template.workflow_id}")
    gold_domains = {domains.get(f) for f in gold} - {None}
    same = [f for f in others if domains.get(f) in gold_domains]
    rest = [f for f in others if f not in same]
    picked = [same[i] for i in rng.permutation(len(same))][:n]
    picked += [rest[i] for i in rng.permutation(len(rest))][:n - len(picked)]
    candidates = gold + picked
    candidates = tuple(candidates[i] for i in rng.permutation(len(candidates)))

    steps = tuple(Step(k, Call(s.function, cache.arguments[e]), tuple(s.depends_on), cache.responses[e], True,
                       candidates, tuple((a, d.from_step, d.from_field) for a, d in sorted(s.dependency_args.items())))
                  for k, (s, e) in enumerate(zip(template.steps, c.chain)))
    metadata = {
        "synthesized": True,
        "seed": seed,
        "sampler": cfg.sampler,
        "source": "composed" if c.source == COMPOSED else "template",
        "realiser": cfg.realiser.kind,
        "complexity": {"steps": len(steps), "depth": template_depth(template), "distractors": n,
                       "calls_per_turn": cfg.complexity.calls_per_turn},
        "turns": turns,
        "dependency_args": [{a: {"from_step": d.from_step, "from_field": d.from_field}
                             for a, d in sorted(s.dependency_args.items())} for s in template.steps],
        "domains": sorted(gold_domains),
    }
    return Task(f"synth-{seed}-{number:06d}", query, steps, candidates, template.workflow_id, metadata)


def _distribution(tasks: list[Task]) -> dict:
    def hist(values):
        return {str(k): v for k, v in sorted(Counter(values).items(), key=lambda kv: (str(type(kv[0])), kv[0]))}
    return {
        "produced": len(tasks),
        "by_workflow": dict(sorted(Counter(t.workflow_id for t in tasks).items())),
        "by_length": hist(len(t.steps) for t in tasks),
        "by_depth": hist(t.metadata["complexity"]["depth"] for t in tasks),
        "by_distractors": hist(t.metadata["complexity"]["distractors"] for t in tasks),
        "by_turns": hist(len(set(t.metadata["turns"])) for t in tasks),
        "by_source": hist(t.metadata["source"] for t in tasks),
        "distinct_workflows": len({t.workflow_id for t in tasks}),
    }


# --- splits ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Split:
    train: list[Task]
    held_out: list[Task]
    report: dict


def task_values(task: Task) -> set[str]:
    """The normalised string forms of every argument value of a task."""
    return {v for s in task.steps for a in s.call.arguments.values() for v in value_strings(a)}


SEEN_VALUES_FILE = "seen_values.json"  # in a checkpoint directory: the argument values it was trained on


def write_seen_values(directory: str, tasks: Iterable[Task], earlier: Iterable[str] = ()) -> str:
    """Record in a checkpoint directory the argument values of the tasks it was trained on, with
    `earlier` values (those its own starting checkpoint had seen), so a later split
    (`read_seen_values` -> `split_tasks(seen_values=...)`) never holds them out."""
    values = sorted(set(earlier).union(*(task_values(t) for t in tasks)))
    path = os.path.join(directory, SEEN_VALUES_FILE)
    with atomic_writer(path) as f:
        json.dump({"about": "argument values (orchestra.synth.task_values form) of the tasks this checkpoint "
                            "was trained on; orchestra never holds out a task that uses one",
                   "values": values}, f, indent=0, ensure_ascii=False)
    return path


def read_seen_values(directory: str) -> set[str]:
    """The values `write_seen_values` recorded in a checkpoint directory (empty if it has none)."""
    path = os.path.join(directory, SEEN_VALUES_FILE)
    if not os.path.exists(path):
        return set()
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)["values"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: expected a JSON object with a 'values' list of strings ({e})") from e
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{path}: 'values' must be a list of strings")
    return set(values)


def split_tasks(tasks: list[Task], config: SplitConfig, seed: int, seen_values: Iterable[str] = ()) -> Split:
    """Train and held-out tasks (each in the input order).

    - seed: a random `held_out_fraction` of the tasks.
    - workflow: whole workflows held out (shuffled, added until the fraction is reached).
    - values: no argument value of a held-out task appears in any train task. Values used by more
      than `common_value_share` of the tasks (a time like 08:00, adults=1) are ignored and listed in
      the report. Tasks that share a value with a held-out task but are not held out are dropped
      (counted in the report); the held-out set is grown to keep them few (`_hold_out_by_values`).

    `seen_values`: argument values (`task_values` form) a policy saw before this split, e.g. in its
    pretraining. A task using one (common values aside) is never held out, whatever `by` is, so the
    held-out set may come out smaller than the fraction asks; the report counts the eligible tasks.
    """
    rng = np.random.default_rng(seed)
    n = len(tasks)
    target = int(round(config.held_out_fraction * n))
    report: dict = {"by": config.by, "seed": seed, "held_out_fraction": config.held_out_fraction}
    usage = Counter(v for t in tasks for v in task_values(t))
    common = sorted(v for v, c in usage.items() if c > config.common_value_share * n)
    seen = set(seen_values) - set(common)
    eligible = [not (task_values(t) & seen) for t in tasks]
    if seen:
        report["eligible_for_held_out"] = sum(eligible)
    held: set[int] = set()
    dropped: set[int] = set()
    if config.by == "seed":
        held = set([int(i) for i in rng.permutation(n) if eligible[i]][:target])
    elif config.by == "workflow":
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(tasks):
            groups.setdefault(str(t.workflow_id), []).append(i)
        names = sorted(groups)
        chosen = []
        for j in rng.permutation(len(names)):
            if len(held) >= target:
                break
            members = groups[names[j]]
            if not any(eligible[i] for i in members):
                continue
            held.update(i for i in members if eligible[i])
            dropped.update(i for i in members if not eligible[i])  # the workflow stays out of train
            chosen.append(names[j])
        report["held_out_workflows"] = sorted(chosen)
    else:
        held, dropped = _hold_out_by_values([task_values(t) - set(common) for t in tasks], target, rng, eligible)
        report.update({"common_values": common, "dropped": len(dropped)})
    train = [t for i, t in enumerate(tasks) if i not in held and i not in dropped]
    held_out = [t for i, t in enumerate(tasks) if i in held]
    report.update({"train": len(train), "held_out": len(held_out)})
    return Split(train, held_out, report)


def _hold_out_by_values(values: list[set[str]], target: int, rng,
                        eligible: Sequence[bool]) -> tuple[set[int], set[int]]:
    """(held, dropped): up to `target` eligible tasks held out such that every other task sharing a
    value with one of them is dropped, grown greedily to drop few: start from a random eligible task,
    then keep moving in the eligible dropped task that would drop the fewest new ones (so held-out
    sets are clusters of tasks about the same things); when a cluster is exhausted, start again from
    a random eligible task; stop early when none is left."""
    by_value: dict[str, list[int]] = {}
    for i, vs in enumerate(values):
        for v in vs:
            by_value.setdefault(v, []).append(i)

    def neighbours(i: int) -> set[int]:
        return {j for v in values[i] for j in by_value[v]} - {i}
    rank = {int(i): r for r, i in enumerate(rng.permutation(len(values)))}
    order = sorted(rank, key=rank.get)
    held: set[int] = set()
    dropped: set[int] = set()
    while len(held) < target:
        movable = [j for j in dropped if eligible[j]]
        if movable:
            i = min(movable, key=lambda j: (len(neighbours(j) - held - dropped), rank[j]))
            dropped.discard(i)
        else:
            i = next((j for j in order if j not in held and j not in dropped and eligible[j]), None)
            if i is None:
                break
        held.add(i)
        dropped |= neighbours(i) - held
    return held, dropped


def split_evaluated(held_out: list[Task], count: int, config: SplitConfig, seed: int) -> Split:
    """Cut held-out tasks in two by values: `count` tasks to evaluate on (`Split.held_out`) and fresh
    tasks (`Split.train`) that share no argument value with them (values common among the held-out
    tasks aside; tasks in between are dropped). Fresh tasks let a stage train on values the policy
    has never seen, as evaluation does, without touching what is evaluated."""
    if count <= 0:
        raise ConfigError(f"eval_tasks must be positive, got {count}")
    if len(held_out) <= count:
        return Split([], list(held_out), {"evaluated": len(held_out), "fresh": 0, "dropped": 0, "common_values": []})
    inner = split_tasks(held_out, dataclasses.replace(config, by="values", held_out_fraction=count / len(held_out)),
                        seed=seed)
    return Split(inner.train, inner.held_out[:count],
                 {"evaluated": min(count, len(inner.held_out)), "fresh": len(inner.train),
                  "dropped": inner.report["dropped"] + max(0, len(inner.held_out) - count),
                  "common_values": inner.report["common_values"]})


# --- writing -----------------------------------------------------------------------------------

def write_outputs(result: SynthesisResult, split: Split, out_dir: str, formats: tuple[str, ...] = ("jsonl",),
                  dataset_name: str = "orchestra_synth") -> dict[str, str]:
    """`train.jsonl`, `held_out.jsonl`, `report.json` (and a TFDS dataset under `tfds/` when asked),
    each written under a temporary name and renamed. Returns what was written, by kind."""
    unknown = sorted(set(formats) - {"jsonl", "tfds"})
    if unknown:
        raise ConfigError(f"synth formats: unknown format(s) {unknown}; use jsonl and/or tfds")
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    splits = {"train": split.train, "held_out": split.held_out}
    if "jsonl" in formats:
        for name, part in splits.items():
            path = os.path.join(out_dir, f"{name}.jsonl")
            write_tasks_jsonl(part, path)
            written[name] = path
    if "tfds" in formats:
        from orchestra.data.tfds_builder import write_task_dataset
        nonempty = {k: v for k, v in splits.items() if v}
        if nonempty:
            written["tfds"] = write_task_dataset(nonempty, os.path.join(out_dir, "tfds"), name=dataset_name)
    path = os.path.join(out_dir, "report.json")
    with atomic_writer(path) as f:
        json.dump({"synthesis": result.report, "split": split.report}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    written["report"] = path
    return written
