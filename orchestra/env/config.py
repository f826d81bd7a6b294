"""Environment objects from the `env` config group, with every key checked."""

from __future__ import annotations

from collections.abc import Mapping

from orchestra.data.booking import Ecosystem
from orchestra.data.config import from_mapping
from orchestra.env.build import Environment, byte_tokenize
from orchestra.env.env import EnvConfig, Tokenize
from orchestra.env.views import ResponseView, ToolView


def env_config(cfg: Mapping) -> tuple[EnvConfig, ResponseView, ToolView, str]:
    cfg = dict(cfg)
    response_view = from_mapping(ResponseView, dict(cfg.pop("response_view", {})), "env.response_view")
    tool_view = from_mapping(ToolView, dict(cfg.pop("tool_view", {})), "env.tool_view")
    on_conflict = cfg.pop("on_conflict", "error")
    return from_mapping(EnvConfig, cfg, "env"), response_view, tool_view, on_conflict


def environment_from_config(cfg: Mapping, eco: Ecosystem, tokenize: Tokenize = byte_tokenize) -> tuple[Environment, ToolView]:
    config, response_view, tool_view, on_conflict = env_config(cfg)
    env = Environment.from_ecosystem(eco, tokenize=tokenize, config=config, view=response_view,
                                     on_conflict=on_conflict)
    return env, tool_view
