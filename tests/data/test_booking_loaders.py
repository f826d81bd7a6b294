"""The real Booking files load with the documented counts; each loader locates bad records."""

import json
import os

import pytest
from data_asserts import assert_located

from orchestra.data.booking import load_exact_match_values, load_tasks, load_templates
from orchestra.data.errors import DataError
from orchestra.data.io import read_jsonl
from orchestra.data.schemas import load_tools
from orchestra.data.canonical import canonical_key


def test_real_booking_folder_has_documented_counts(booking):
    assert len(booking.tools) == 40
    assert len(booking.tasks) == 81
    assert len(booking.templates) == 107
    assert len(booking.cache_entries) == 356
    assert len({canonical_key(e.function, e.arguments) for e in booking.cache_entries}) == 305


def test_every_real_task_records_overall_success_matching_its_steps(booking):
    rows = [obj for _, obj in read_jsonl(os.path.join(booking.root, "tasks.jsonl"))]
    assert all(isinstance(r.get("overall_success"), bool) for r in rows)
    assert [r["overall_success"] for r in rows] == [all(s.success for s in t.steps) for t in booking.tasks]


def test_real_exact_match_values_cover_every_called_function(booking):
    called = {s.call.function for t in booking.tasks for s in t.steps}
    assert len(called) == 26 and called <= set(booking.exact_match)


def _real_lines(booking, name, n=2):
    with open(os.path.join(booking.root, name), encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(n)]


def _write_lines(path, objs):
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), encoding="utf-8")
    return path


def _break_task(kind, obj):
    if kind == "missing":
        del obj["query"]
        return "query"
    if kind == "wrong_type":
        obj["steps"][0]["ground_truth"]["arguments"] = "not an object"
        return "steps[0].ground_truth.arguments"
    if kind == "unknown_function":
        obj["steps"][1]["ground_truth"]["function"] = "No_Such_Api"
        return "steps[1].ground_truth.function"
    if kind == "later_dependency":
        obj["steps"][0]["depends_on"] = [1]
        return "steps[0].depends_on"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "wrong_type", "unknown_function", "later_dependency"])
def test_load_tasks_locates_bad_record(booking, tmp_path, kind):
    good, bad = _real_lines(booking, "tasks.jsonl")
    assert len(bad["steps"]) >= 2
    field = _break_task(kind, bad)
    path = _write_lines(tmp_path / "tasks.jsonl", [good, bad])
    with pytest.raises(DataError) as e:
        load_tasks(path, booking.tools)
    assert_located(e.value, path, 2, field)


def test_load_tasks_locates_bad_json_line(booking, tmp_path):
    good = _real_lines(booking, "tasks.jsonl", 1)[0]
    path = _write_lines(tmp_path / "tasks.jsonl", [good, "", '{"query": "cut off'])
    with pytest.raises(DataError, match="not valid JSON") as e:
        load_tasks(path)
    assert_located(e.value, path, 3, None)


@pytest.mark.parametrize("edit, field", [
    (lambda o: o.pop("name"), "name"),
    (lambda o: o.update(parameters="a string"), "parameters"),
    (lambda o: o["parameters"].update(required=["no_such_param"]), "parameters.required"),
    (lambda o: o["parameters"]["properties"].update(extra={"type": 3}), "parameters.properties.extra"),
])
def test_load_tools_locates_bad_record(booking, tmp_path, edit, field):
    good, bad = _real_lines(booking, "tools.jsonl")
    edit(bad)
    path = _write_lines(tmp_path / "tools.jsonl", [good, bad])
    with pytest.raises(DataError) as e:
        load_tools(path)
    assert_located(e.value, path, 2, field)


def test_load_tools_rejects_bad_json_and_duplicate_names(booking, tmp_path):
    good = _real_lines(booking, "tools.jsonl", 1)[0]
    path = _write_lines(tmp_path / "tools.jsonl", [good, "[1, 2"])
    with pytest.raises(DataError) as e:
        load_tools(path)
    assert_located(e.value, path, 2, None)
    path = _write_lines(tmp_path / "tools.jsonl", [good, good])
    with pytest.raises(DataError, match="defined twice") as e:
        load_tools(path)
    assert_located(e.value, path, 2, "name")


@pytest.mark.parametrize("edit, field", [
    (lambda w: w.pop("id"), "workflows[1].id"),
    (lambda w: w["dependencies"]["0"].update(depends_on=[1]), "workflows[1].dependencies.0.depends_on"),
    (lambda w: w["dependencies"]["1"]["dependency_args"]["pick_up_latitude"].update(from_step=2),
     "workflows[1].dependencies.1.dependency_args.pick_up_latitude.from_step"),
    (lambda w: w["dependencies"]["1"].update(function=7), "workflows[1].dependencies.1.function"),
])
def test_load_templates_locates_bad_workflow(booking, tmp_path, edit, field):
    with open(os.path.join(booking.root, "workflow_templates.json"), encoding="utf-8") as f:
        data = json.load(f)
    assert data["workflows"][1]["id"] == "workflow_1"
    edit(data["workflows"][1])
    path = tmp_path / "workflow_templates.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_templates(path)
    assert_located(e.value, path, None, field)


def test_load_templates_and_exact_match_reject_bad_files(tmp_path):
    path = tmp_path / "workflow_templates.json"
    path.write_text('{"workflows": [', encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON") as e:
        load_templates(path)
    assert e.value.path == str(path)
    path = tmp_path / "exact_match_values.json"
    path.write_text('{"Search_Flights": "fromId"}', encoding="utf-8")
    with pytest.raises(DataError, match="list of parameter names") as e:
        load_exact_match_values(path)
    assert e.value.path == str(path)
