"""Tool schemas in OpenAI's `{"type": "function", "function": {...}}` form load like the tools.jsonl form."""

import json

import pytest
from data_asserts import assert_located

from orchestra.data.errors import DataError
from orchestra.data.schemas import load_tools, parse_tool


def _openai(tool_json):
    fn = dict(tool_json)
    fn["parameters"] = dict(fn["parameters"], type="object")
    return {"type": "function", "function": fn}


def test_every_real_tool_in_openai_form_parses_to_the_same_spec(booking):
    for tool in booking.tools.values():
        assert parse_tool(_openai(tool.to_json())) == tool


def test_openai_form_loads_from_json_list_and_jsonl(booking, tmp_path):
    tools = list(booking.tools.values())[:5]
    as_list = tmp_path / "tools.json"
    as_list.write_text(json.dumps([_openai(t.to_json()) for t in tools]), encoding="utf-8")
    as_lines = tmp_path / "tools.jsonl"
    as_lines.write_text("".join(json.dumps(_openai(t.to_json())) + "\n" for t in tools), encoding="utf-8")
    expected = {t.name: t for t in tools}
    assert load_tools(as_list) == expected
    assert load_tools(as_lines) == expected


def test_openai_form_error_names_the_nested_field(tmp_path):
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps({"type": "function", "function": {"description": "no name"}}) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_tools(path)
    assert_located(e.value, path, 1, "function.name")
