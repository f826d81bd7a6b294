"""What the policy sees of responses and tools: the full JSON, or compact views for small policies.

Response views:
- `full`: the whole response as compact JSON.
- `pruned`: the top-level `data` wrapper unwrapped (paths in the templates are relative to it), lists
  cut to their first `max_list_items`, strings cut to `max_string_chars`, nesting below `max_depth`
  replaced by "...", keys in `drop_keys` removed, and the text cut to `max_chars` characters.
The budget is in characters rather than tokens so that the view needs no tokenizer: the environment's
pre-tokenised observations and the SFT episodes are built from the very same text, and a character
budget bounds the token count (no token spans less than one character).

Tool views:
- `full`: the schemas as given (with descriptions).
- `compact`: name, each parameter's type (or `{"type", "enum"}`), and the required names; no
  descriptions and no JSON-schema wrapping, so a dozen candidate tools still make a short prompt.
"""

from __future__ import annotations

import dataclasses
import json

from orchestra.data.types import ToolSpec

ELLIPSIS = "..."


@dataclasses.dataclass(frozen=True)
class ResponseView:
    kind: str = "pruned"
    max_list_items: int = 3
    max_string_chars: int = 64
    max_depth: int = 4
    drop_keys: tuple[str, ...] = ("__typename",)
    max_chars: int = 600

    def __post_init__(self):
        if self.kind not in ("full", "pruned"):
            raise ValueError(f"env.response_view.kind must be 'full' or 'pruned', got {self.kind!r}")
        for name in ("max_list_items", "max_string_chars", "max_depth", "max_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"env.response_view.{name} must be at least 1, got {getattr(self, name)}")

    def render(self, response) -> str:
        if self.kind == "full":
            return json.dumps(response, ensure_ascii=False, separators=(",", ":"))
        if isinstance(response, dict) and "data" in response and (
                "status" in response or "message" in response) and response.get("status") is not False:
            response = response["data"]
        text = json.dumps(self._prune(response, 0), ensure_ascii=False, separators=(",", ":"))
        return text if len(text) <= self.max_chars else text[: self.max_chars] + ELLIPSIS

    def _prune(self, value, depth: int):
        if isinstance(value, str):
            return value if len(value) <= self.max_string_chars else value[: self.max_string_chars] + ELLIPSIS
        if not isinstance(value, dict | list):
            return value
        if depth >= self.max_depth:
            return ELLIPSIS
        if isinstance(value, list):
            return [self._prune(v, depth + 1) for v in value[: self.max_list_items]]
        return {k: self._prune(v, depth + 1) for k, v in value.items() if k not in self.drop_keys}


@dataclasses.dataclass(frozen=True)
class ToolView:
    kind: str = "compact"

    def __post_init__(self):
        if self.kind not in ("full", "compact"):
            raise ValueError(f"env.tool_view.kind must be 'full' or 'compact', got {self.kind!r}")

    def schema(self, tool: ToolSpec) -> dict:
        """The tool as the system prompt lists it: an OpenAI-style function schema (`full`), or the
        compact form."""
        if self.kind == "full":
            s = tool.to_json()
            params = dict(s["parameters"], type="object")
            return {"type": "function", "function": {"name": s["name"], "description": s["description"],
                                                     "parameters": params}}
        params = {p.name: p.type if p.enum is None else {"type": p.type, "enum": list(p.enum)}
                  for p in tool.parameters}
        return {"name": tool.name, "parameters": params, "required": list(tool.required)}
