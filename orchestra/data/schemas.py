"""Tool schemas: the `tools.jsonl` form and OpenAI's `{"type": "function", "function": {...}}` form."""

from __future__ import annotations

import os

from orchestra.data.errors import DataError
from orchestra.data.io import read_json, read_jsonl, require
from orchestra.data.types import ParamSpec, ToolSpec


def parse_tool(obj: dict, *, path: str = "<memory>", line: int | None = None) -> ToolSpec:
    """One tool schema, in either form."""
    prefix = ""
    if obj.get("type") == "function" and isinstance(obj.get("function"), dict):
        obj, prefix = obj["function"], "function."
    name = require(obj, "name", str, path=path, line=line, prefix=prefix)
    description = obj.get("description", "") or ""
    params = obj.get("parameters", {"properties": {}, "required": []})
    if not isinstance(params, dict):
        raise DataError("expected an object", path=path, line=line, field=prefix + "parameters")
    props = params.get("properties", {})
    if not isinstance(props, dict):
        raise DataError("expected an object", path=path, line=line, field=prefix + "parameters.properties")
    specs = []
    for pname, p in props.items():
        where = f"{prefix}parameters.properties.{pname}"
        if not isinstance(p, dict):
            raise DataError("expected an object", path=path, line=line, field=where)
        ptype = p.get("type", "string")
        if not isinstance(ptype, str):
            raise DataError("'type' must be a string", path=path, line=line, field=where)
        enum = p.get("enum")
        if enum is not None and not isinstance(enum, list):
            raise DataError("'enum' must be a list", path=path, line=line, field=where)
        specs.append(ParamSpec(pname, ptype, p.get("description", "") or "",
                               tuple(enum) if enum is not None else None, p.get("items")))
    required = params.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise DataError("expected a list of names", path=path, line=line, field=prefix + "parameters.required")
    unknown = [r for r in required if r not in props]
    if unknown:
        raise DataError(f"required parameters not in properties: {unknown}", path=path, line=line,
                        field=prefix + "parameters.required")
    return ToolSpec(name, description, tuple(specs), tuple(required), obj.get("response"))


def load_tools(path: str | os.PathLike) -> dict[str, ToolSpec]:
    """Tool schemas from a JSONL file (one schema a line) or a JSON file holding a list of schemas."""
    path = os.fspath(path)
    if path.endswith(".jsonl"):
        rows = list(read_jsonl(path))
    else:
        data = read_json(path)
        if not isinstance(data, list):
            raise DataError("expected a JSON list of tool schemas", path=path)
        rows = [(None, obj) for obj in data]
    tools: dict[str, ToolSpec] = {}
    for line, obj in rows:
        if not isinstance(obj, dict):
            raise DataError("expected a tool schema object", path=path, line=line)
        tool = parse_tool(obj, path=path, line=line)
        if tool.name in tools:
            raise DataError(f"tool '{tool.name}' is defined twice", path=path, line=line, field="name")
        tools[tool.name] = tool
    return tools
