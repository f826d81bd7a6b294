"""The policy model: a Flax NNX decoder for Qwen2/2.5, Qwen3 and Llama 3 checkpoints, its loader and
saver, the Qwen2.5 chat format with tools, and a jitted KV-cache sampler.

This package sits on the ground floor of the import graph: it imports no other orchestra package.
"""

from orchestra.model.chat import (
    CHAT_TEMPLATE,
    EncodedChat,
    encode_chat,
    install_chat_template,
    load_tokenizer,
    render_chat,
    stop_sequences,
    tool_responses_text,
)
from orchestra.model.config import ConfigError, ModelConfig
from orchestra.model.loader import CheckpointError, load_model, save_model
from orchestra.model.modeling import KVCache, Transformer, init_model
from orchestra.model.presets import PRESETS, build_model, preset_config
from orchestra.model.sampler import DecodeState, SampleOutput, Sampler, SamplingParams

__all__ = [
    "CHAT_TEMPLATE", "EncodedChat", "encode_chat", "install_chat_template", "load_tokenizer", "render_chat",
    "stop_sequences", "tool_responses_text", "ConfigError", "ModelConfig", "CheckpointError", "load_model",
    "save_model", "KVCache", "Transformer", "init_model", "PRESETS", "build_model", "preset_config",
    "DecodeState", "SampleOutput", "Sampler", "SamplingParams",
]
