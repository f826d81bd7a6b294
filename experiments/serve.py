"""Serve a policy over the OpenAI API: python -m experiments.serve model.path=DIR [Hydra overrides].

    python -m experiments.serve model.path=/ckpt/policy serve.port=8000
    python -m experiments.serve model=qwen2.5-1.5b model.path=/ckpt/policy     # checked against the preset shape
    python -m experiments.serve model=small model.tokenizer=outputs/tokenizer  # random weights (smoke tests)

Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (see orchestra.eval.server).
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from orchestra.eval.server import ModelBackend, OpenAIServer, ServerConfig


class SetupError(ValueError):
    """A configuration that names no usable policy."""


def load_policy(model_cfg):
    """(model, tokenizer, default served name) from `model.path` or a random `model.preset`."""
    from orchestra.model.chat import load_tokenizer
    from orchestra.model.loader import load_model
    from orchestra.model.presets import build_model

    tokenizer_dir = model_cfg.get("tokenizer") or model_cfg.path
    if not tokenizer_dir:
        raise SetupError("a random model.preset needs model.tokenizer (a tokenizer directory), "
                         "or set model.path to a checkpoint directory")
    tokenizer = load_tokenizer(to_absolute_path(tokenizer_dir))
    if model_cfg.path:
        path = to_absolute_path(model_cfg.path)
        if model_cfg.preset:
            model = build_model(model_cfg.preset, path, model_cfg.dtype)
        else:
            model = load_model(path, dtype=model_cfg.dtype)
        return model, tokenizer, str(model_cfg.path)
    if not model_cfg.preset:
        raise SetupError("set model.path (a checkpoint directory) or model.preset (random weights)")
    model = build_model(model_cfg.preset, None, model_cfg.dtype, seed=model_cfg.get("seed", 0))
    return model, tokenizer, f"orchestra-{model_cfg.preset}"


def server_config(serve_cfg, default_name: str, extra_aliases=(), port: int | None = None) -> ServerConfig:
    name = serve_cfg.name or default_name
    aliases = [str(a) for a in serve_cfg.aliases] + [str(a) for a in extra_aliases]
    if os.path.exists(name):
        aliases.append(os.path.abspath(name))  # a client may send the path in either spelling
    return ServerConfig(
        host=serve_cfg.host,
        port=serve_cfg.port if port is None else port,
        model_name=name,
        aliases=tuple(dict.fromkeys(a for a in aliases if a != name)),
        max_batch=serve_cfg.max_batch,
        batch_wait_s=serve_cfg.batch_wait_ms / 1000,
        default_max_tokens=serve_cfg.default_max_tokens,
        max_tokens_limit=serve_cfg.max_tokens_limit,
        max_body_bytes=int(serve_cfg.max_body_mb * 1024 * 1024),
    )


def build_server(cfg: DictConfig, port: int | None = None, extra_aliases=()) -> tuple[OpenAIServer, ModelBackend]:
    model, tokenizer, name = load_policy(cfg.model)
    backend = ModelBackend(model, tokenizer, context_length=cfg.serve.context_length)
    return OpenAIServer(backend, server_config(cfg.serve, name, extra_aliases, port)), backend


@hydra.main(config_path="../conf", config_name="serve", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        server, backend = build_server(cfg)
    except (SetupError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    names = ", ".join(server.names)
    print(f"serving {names} (context {backend.context_length} tokens) at {server.url}", flush=True)
    try:
        server.serve_forever(max_seconds=cfg.serve.max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
