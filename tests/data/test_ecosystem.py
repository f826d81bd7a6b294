"""A user's own ecosystem: tools + recorded calls (+ templates, tasks) load, validate and round-trip."""

import json
import os

import pytest
from data_asserts import assert_located

from orchestra.data.booking import load_booking
from orchestra.data.ecosystem import load_calls, load_ecosystem, save_ecosystem, write_calls_jsonl
from orchestra.data.errors import DataError
from orchestra.data.types import CacheEntry
from orchestra.data.canonical import canonical_key


def test_booking_saved_as_ecosystem_loads_back_the_same(booking, tmp_path):
    save_ecosystem(booking, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["calls.jsonl", "tasks.jsonl", "tools.jsonl"]
    eco = load_ecosystem(tmp_path / "tools.jsonl", tmp_path / "calls.jsonl",
                         templates_path=os.path.join(booking.root, "workflow_templates.json"),
                         tasks_path=tmp_path / "tasks.jsonl")
    assert eco.tools == booking.tools
    assert eco.tasks == booking.tasks
    assert eco.templates == booking.templates
    assert eco.root == str(tmp_path)
    # calls.jsonl holds each distinct call once; the tasks add their own gold calls again.
    assert len(load_calls(tmp_path / "calls.jsonl")) == 305
    keys = {canonical_key(e.function, e.arguments) for e in eco.cache_entries}
    assert keys == {canonical_key(e.function, e.arguments) for e in booking.cache_entries}
    # The same folder also serves as data.root.
    assert load_booking(tmp_path).tasks == booking.tasks


def test_calls_round_trip_exactly_including_null_and_list_responses(tmp_path):
    entries = [CacheEntry("A", {"x": 1, "y": "é"}, {"status": True, "data": [1, 2]}),
               CacheEntry("A", {"x": 1, "y": "é"}, {"status": True, "data": [1, 2]}),  # duplicates are kept
               CacheEntry("B", {}, None),
               CacheEntry("B", {"q": [1.5, None]}, [{"id": "z"}])]
    path = tmp_path / "calls.jsonl"
    write_calls_jsonl(entries, path)
    assert load_calls(path) == entries


def test_tools_may_be_openai_form_and_templates_are_checked_against_them(booking, tmp_path):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"type": "function", "function": t.to_json()} for t in booking.tools.values()]),
                     encoding="utf-8")
    calls = tmp_path / "calls.jsonl"
    write_calls_jsonl(booking.cache_entries[:3], calls)
    eco = load_ecosystem(tools, calls, templates_path=os.path.join(booking.root, "workflow_templates.json"))
    assert eco.tools == booking.tools and len(eco.templates) == 107 and len(eco.cache_entries) == 3

    with open(os.path.join(booking.root, "workflow_templates.json"), encoding="utf-8") as f:
        data = json.load(f)
    data["workflows"][2]["dependencies"]["1"]["function"] = "Not_A_Tool"
    templates = tmp_path / "workflow_templates.json"
    templates.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match="Not_A_Tool") as e:
        load_ecosystem(tools, calls, templates_path=templates)
    assert_located(e.value, templates, None, "workflows[2].dependencies.1.function")


@pytest.mark.parametrize("bad, field", [
    ('{"function": "Search_Flights", "arguments": {"fromId": "BOS.AIRPORT"}', None),  # cut-off JSON
    ({"function": "Search_Flights", "arguments": {}}, "response"),
    ({"function": "Search_Flights", "arguments": ["BOS"], "response": {}}, "arguments"),
    ({"function": 3, "arguments": {}, "response": {}}, "function"),
    ({"function": "No_Such_Api", "arguments": {}, "response": {}}, "function"),
])
def test_bad_call_record_names_file_line_and_field(booking, tmp_path, bad, field):
    good = {"function": "Search_Flights", "arguments": {"fromId": "BOS.AIRPORT"}, "response": {"status": True}}
    path = tmp_path / "calls.jsonl"
    path.write_text("".join((b if isinstance(b, str) else json.dumps(b)) + "\n" for b in [good, good, bad]),
                    encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_calls(path, booking.tools)
    assert_located(e.value, path, 3, field)


def test_missing_calls_file_is_an_error_naming_it(booking, tmp_path):
    with pytest.raises(DataError, match="file not found") as e:
        load_ecosystem(os.path.join(booking.root, "tools.jsonl"), tmp_path / "calls.jsonl")
    assert e.value.path == str(tmp_path / "calls.jsonl")
