"""The synthesis pipeline: valid traces, honest queries, exact complexity, determinism, skips, splits."""

import dataclasses
import json
import re
from collections import Counter

import pytest

from orchestra.data.booking import load_tasks
from orchestra.data.types import DependencyArg, TemplateStep, WorkflowTemplate
from orchestra.synth import (SEEN_VALUES_FILE, ConfigError, SplitConfig, SynthConfig, SynthesisError, read_seen_values,
                             split_evaluated, split_tasks, synthesize, write_seen_values)
from orchestra.synth.graph import structure_key, template_depth
from orchestra.synth.index import value_strings
from orchestra.synth.pipeline import assign_turns, task_values, write_outputs
from orchestra.synth.sampler import chain_ok


def _template_of(task) -> WorkflowTemplate:
    """A task's chain structure back as a template (from its recorded dependency arguments)."""
    return WorkflowTemplate(task.workflow_id, tuple(
        TemplateStep(s.call.function, s.call.arguments, s.depends_on,
                     {a: DependencyArg(j, f) for a, j, f in s.dependency_args}) for s in task.steps))


@pytest.fixture(scope="session")
def all_tasks(mixed, shaped, composed):
    return mixed.tasks + shaped.tasks + composed.tasks


def test_every_synthesized_trace_replays_successfully(env, all_tasks):
    assert len(all_tasks) >= 200
    success = env.replay([[s.call for s in t.steps] for t in all_tasks])
    for i, t in enumerate(all_tasks):
        assert success[i, :len(t.steps)].all(), t.task_id
        assert all(s.success for s in t.steps)


def test_every_dependent_argument_equals_the_value_at_its_from_field(cache, all_tasks):
    for t in all_tasks:
        chain = [cache.lookup(s.call.function, s.call.arguments) for s in t.steps]
        assert chain_ok(_template_of(t), chain, cache), t.task_id
    assert sum(bool(s.dependency_args) for t in all_tasks for s in t.steps) > 200


def test_no_dependent_value_appears_in_the_query(all_tasks):
    """A value the policy must read from a response is not in the query (as a whole token, any case),
    unless the very same value is also an independent argument the user states."""
    checked = 0
    for t in all_tasks:
        stated = {v.casefold() for s in t.steps for a, x in s.call.arguments.items()
                  if a not in {d[0] for d in s.dependency_args} for v in value_strings(x)}
        for s in t.steps:
            for a, _, _ in s.dependency_args:
                for v in value_strings(s.call.arguments[a]):
                    if v.casefold() in stated:
                        continue
                    assert not re.search(rf"(?<!\w){re.escape(v)}(?!\w)", t.query, re.IGNORECASE), (t.task_id, v)
                    checked += 1
    assert checked > 200


def test_independent_values_are_stated_in_the_query(mixed):
    for t in mixed.tasks:
        for s in t.steps:
            dependent = {a for a, _, _ in s.dependency_args}
            for a, v in s.call.arguments.items():
                if a not in dependent and v is not None:
                    for text in value_strings(v):
                        assert text in t.query or json.dumps(v, ensure_ascii=False) in t.query, (t.task_id, a, v)


def test_complexity_settings_are_honoured_exactly(shaped):
    assert len(shaped.tasks) == 60
    for t in shaped.tasks:
        gold = set(t.pattern)
        assert 3 <= len(t.steps) <= 5
        assert template_depth(_template_of(t)) == 2 == t.metadata["complexity"]["depth"]
        assert len(set(t.candidate_tools) - gold) == 5 and gold <= set(t.candidate_tools)
        assert all(set(s.candidate_tools) == set(t.candidate_tools) for s in t.steps)
        turns = t.metadata["turns"]
        assert turns == sorted(turns) and turns[0] == 0 and max(turns) == len(set(turns)) - 1
        for turn in set(turns):
            members = [k for k, x in enumerate(turns) if x == turn]
            assert len(members) <= 2
            assert not any(d in members for k in members for d in t.steps[k].depends_on)
    assert any(len(set(t.metadata["turns"])) < len(t.steps) for t in shaped.tasks)  # some steps were grouped
    assert shaped.report["by_distractors"] == {"5": 60}


def test_turns_are_one_call_each_with_one_call_per_turn(mixed):
    assert all(t.metadata["turns"] == list(range(len(t.steps))) for t in mixed.tasks)


def test_distractors_come_from_the_same_domain_first(mixed):
    domains = mixed.report["domains"]
    for t in mixed.tasks:
        gold = set(t.pattern)
        same = {f for f, d in domains.items() if f not in gold and d in {domains[g] for g in gold} - {None}}
        distractors = set(t.candidate_tools) - gold
        assert len(distractors & same) == min(len(same), 2), t.task_id


def test_domain_filter_keeps_only_tools_of_those_domains(booking, env):
    cfg = SynthConfig.from_dict({"count": 15, "source": "mixed", "complexity": {"domains": ["attraction"]}})
    result = synthesize(booking, cfg, seed=1, env=env)
    domains = result.report["domains"]
    assert result.tasks and all(domains[f] == "attraction" for t in result.tasks for f in t.pattern)


def test_the_same_seed_gives_the_same_file(booking, env, tmp_path):
    cfg = SynthConfig.from_dict({"count": 40, "source": "mixed", "complexity": {"distractors": 3}})
    paths = []
    for run, seed in enumerate((5, 5, 6)):
        result = synthesize(booking, cfg, seed=seed, env=env)
        split = split_tasks(result.tasks, cfg.split, seed)
        out = tmp_path / f"run{run}"
        write_outputs(result, split, str(out), ("jsonl",))
        paths.append(out)
    for name in ("train.jsonl", "held_out.jsonl"):
        assert (paths[0] / name).read_bytes() == (paths[1] / name).read_bytes()
    assert (paths[0] / "train.jsonl").read_bytes() != (paths[2] / "train.jsonl").read_bytes()
    # and the files load back as tasks with the metadata that says how they were made
    tasks = load_tasks(paths[0] / "train.jsonl", booking.tools)
    assert tasks and all(t.metadata["seed"] == 5 and t.metadata["sampler"] == "constrained" for t in tasks)


def test_a_template_without_cache_entries_is_reported_and_skipped(booking, env):
    ghost = WorkflowTemplate("ghost_workflow", (TemplateStep("Search_Taxi", {}, (), {}),
                                                TemplateStep("Not_A_Recorded_Function", {}, (0,), {})))
    eco = dataclasses.replace(booking, templates=[ghost] + booking.templates)
    result = synthesize(eco, SynthConfig(count=20), seed=0, env=env)
    skipped = result.report["templates"]["skipped_no_cache_entries"]
    assert skipped["ghost_workflow"] == ["Not_A_Recorded_Function", "Search_Taxi"]
    assert len(skipped) >= 2 and result.report["produced"] == 20
    assert "ghost_workflow" not in result.report["by_workflow"]


def test_composed_chains_are_new_and_of_the_requested_shape(booking, composed):
    shapes = {structure_key(t) for t in booking.templates}
    assert len(composed.tasks) == 40
    for t in composed.tasks:
        template = _template_of(t)
        assert t.metadata["source"] == "composed" and t.workflow_id.startswith("composed_")
        assert structure_key(template) not in shapes
        assert 3 <= len(t.steps) <= 5 and 1 <= template_depth(template) <= 3
        assert len({(s.call.function, json.dumps(s.call.arguments, sort_keys=True)) for s in t.steps}) == len(t.steps)
    assert len({t.workflow_id for t in composed.tasks}) > 10


def test_unconstrained_baseline_keeps_only_fully_valid_traces(booking, env, cache):
    eco = dataclasses.replace(booking, templates=[t for t in booking.templates if t.workflow_id == "workflow_0"])
    result = synthesize(eco, SynthConfig(count=3, sampler="unconstrained", max_failures=500), seed=0, env=env)
    assert result.tasks and result.report["attempts"] > 20 * result.report["produced"]
    success = env.replay([[s.call for s in t.steps] for t in result.tasks])
    for i, t in enumerate(result.tasks):
        assert success[i, :len(t.steps)].all()
        chain = [cache.lookup(s.call.function, s.call.arguments) for s in t.steps]
        assert chain_ok(_template_of(t), chain, cache)


def test_quotas_are_filled_exactly(booking, env):
    cfg = SynthConfig.from_dict({"count": 12, "quotas": {"workflow_0": 5, "workflow_16": 4}})
    result = synthesize(booking, cfg, seed=2, env=env)
    assert result.report["by_workflow"]["workflow_0"] == 5 and result.report["by_workflow"]["workflow_16"] == 4
    assert result.report["produced"] == 12


def test_held_out_by_values_shares_no_value_with_train(mixed):
    split = split_tasks(mixed.tasks, SplitConfig(by="values", held_out_fraction=0.2), seed=0)
    common = set(split.report["common_values"])
    train_values = set().union(*(task_values(t) for t in split.train))
    held_values = set().union(*(task_values(t) for t in split.held_out))
    assert split.held_out and split.train
    assert not (train_values & held_values) - common
    assert len(split.held_out) == round(0.2 * len(mixed.tasks))
    assert len(split.train) + len(split.held_out) + split.report["dropped"] == len(mixed.tasks)


def test_evaluated_and_fresh_tasks_share_no_value(mixed):
    split = split_tasks(mixed.tasks, SplitConfig(by="values", held_out_fraction=0.5), seed=0)
    cut = split_evaluated(split.held_out, 20, SplitConfig(), seed=0)
    assert len(cut.held_out) == cut.report["evaluated"] == 20 and cut.train
    assert len(cut.train) + 20 + cut.report["dropped"] == len(split.held_out)
    held_ids = {t.task_id for t in split.held_out}
    assert {t.task_id for t in cut.train + cut.held_out} <= held_ids
    assert not {t.task_id for t in cut.train} & {t.task_id for t in cut.held_out}
    evaluated_values = set().union(*(task_values(t) for t in cut.held_out))
    fresh_values = set().union(*(task_values(t) for t in cut.train))
    assert not (evaluated_values & fresh_values) - set(cut.report["common_values"])
    # Fewer held-out tasks than asked for: all of them are evaluated, none is fresh.
    few = split_evaluated(split.held_out[:5], 20, SplitConfig(), seed=0)
    assert few.held_out == split.held_out[:5] and few.train == []
    with pytest.raises(ConfigError, match="eval_tasks"):
        split_evaluated(split.held_out, 0, SplitConfig(), seed=0)


def test_held_out_by_workflow_holds_out_whole_workflows(mixed):
    split = split_tasks(mixed.tasks, SplitConfig(by="workflow", held_out_fraction=0.25), seed=0)
    assert split.held_out and not {t.workflow_id for t in split.train} & {t.workflow_id for t in split.held_out}
    assert len(split.train) + len(split.held_out) == len(mixed.tasks)


def test_split_by_seed_depends_on_the_seed(mixed):
    a = split_tasks(mixed.tasks, SplitConfig(by="seed"), seed=0)
    b = split_tasks(mixed.tasks, SplitConfig(by="seed"), seed=1)
    assert len(a.held_out) == len(b.held_out) == round(0.2 * len(mixed.tasks))
    assert [t.task_id for t in a.held_out] != [t.task_id for t in b.held_out]


@pytest.mark.parametrize("by", ["values", "seed", "workflow"])
def test_a_split_never_holds_out_a_value_the_checkpoint_saw(mixed, by):
    # A "pretraining" split first; its train values are what the checkpoint saw.
    before = split_tasks(mixed.tasks, SplitConfig(by="values", held_out_fraction=0.3), seed=3)
    seen = set().union(*(task_values(t) for t in before.train))
    split = split_tasks(mixed.tasks, SplitConfig(by=by, held_out_fraction=0.2), seed=0, seen_values=seen)
    n = len(mixed.tasks)
    usage = Counter(v for t in mixed.tasks for v in task_values(t))
    common = {v for v, c in usage.items() if c > 0.25 * n}
    eligible = [t for t in mixed.tasks if not (task_values(t) - common) & seen]
    assert split.report["eligible_for_held_out"] == len(eligible) > 0
    assert split.held_out and len(split.held_out) <= min(len(eligible), round(0.2 * n))
    for t in split.held_out:
        assert not (task_values(t) - common) & seen, t.task_id
    held_values = set().union(*(task_values(t) for t in split.held_out))
    if by == "values":
        train_values = set().union(*(task_values(t) for t in split.train))
        assert not (train_values & held_values) - common
    if by == "workflow":  # a held-out workflow has no task left in train
        assert not {t.workflow_id for t in split.train} & {t.workflow_id for t in split.held_out}


def test_seen_values_round_trip_through_a_checkpoint_directory(tmp_path, mixed):
    assert read_seen_values(str(tmp_path)) == set()  # a checkpoint that says nothing
    write_seen_values(str(tmp_path), mixed.tasks[:5])
    assert read_seen_values(str(tmp_path)) == set().union(*(task_values(t) for t in mixed.tasks[:5]))
    (tmp_path / SEEN_VALUES_FILE).write_text('{"values": [1, 2]}')
    with pytest.raises(ConfigError, match="seen_values.json"):
        read_seen_values(str(tmp_path))


def test_assign_turns_groups_only_independent_consecutive_steps():
    steps = (TemplateStep("A", {}, (), {}), TemplateStep("B", {}, (), {}), TemplateStep("C", {}, (0,), {}),
             TemplateStep("D", {}, (), {}), TemplateStep("E", {}, (3,), {}))
    t = WorkflowTemplate("w", steps)
    assert assign_turns(t, 1) == [0, 1, 2, 3, 4]
    assert assign_turns(t, 2) == [0, 0, 1, 1, 2]
    assert assign_turns(t, 4) == [0, 0, 1, 1, 2]


@pytest.mark.parametrize("settings, key", [
    ({"count": 0}, "synth.count"),
    ({"sampler": "greedy"}, "synth.sampler"),
    ({"complexity": {"steps": [5, 3]}}, "synth.complexity.steps"),
    ({"complexity": {"depth": "deep"}}, "synth.complexity.depth"),
    ({"complexity": {"distractors": -1}}, "synth.complexity.distractors"),
    ({"complexity": {"steps": 2, "depth": 3}}, "synth.complexity.depth"),
    ({"complexity": {"colour": 1}}, "synth.complexity"),
    ({"split": {"by": "month"}}, "synth.split.by"),
    ({"quotas": {"workflow_0": 5}, "count": 2}, "synth.quotas"),
    ({"sampler": "unconstrained", "source": "composed"}, "synth.sampler"),
    ({"realiser": {"kind": "llm"}}, "synth.realiser.model"),
])
def test_bad_settings_raise_an_error_naming_the_key(settings, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        SynthConfig.from_dict(settings)


def test_unknown_domain_and_quota_are_named(booking, env):
    with pytest.raises(ConfigError, match="atlantis"):
        synthesize(booking, {"count": 5, "complexity": {"domains": ["atlantis"]}}, seed=0, env=env)
    with pytest.raises(ConfigError, match="workflow_999"):
        synthesize(booking, {"count": 5, "quotas": {"workflow_999": 1}}, seed=0, env=env)


def test_a_malformed_from_field_names_its_template(booking, env):
    bad = WorkflowTemplate("broken", (TemplateStep("Search_Car_Location", {}, (), {}),
                                      TemplateStep("Search_Car_Rentals", {}, (0,),
                                                   {"pick_up_latitude": DependencyArg(0, "[0].coordinates..lat")})))
    eco = dataclasses.replace(booking, templates=booking.templates + [bad])
    with pytest.raises(SynthesisError, match=r"'broken' step 1 \(Search_Car_Rentals\) argument 'pick_up_latitude'"):
        synthesize(eco, SynthConfig(count=5), seed=0, env=env)
