"""Model configuration: one frozen dataclass shared by the model, loader, saver and sampler.

`ModelConfig.from_hf` reads a Hugging Face `config.json` dict (Qwen2/Qwen2.5, Qwen3, Llama 3) in
either the transformers-5 layout (`rope_parameters`) or the older one (`rope_theta` + `rope_scaling`).
`ModelConfig.to_hf` writes a dict that transformers 5 loads back into the same architecture.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

SUPPORTED_MODEL_TYPES = ("qwen2", "qwen3", "llama")
SUPPORTED_ROPE_TYPES = ("default", "llama3")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
_ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "llama": "LlamaForCausalLM"}


class ConfigError(ValueError):
    """A config.json that this model code cannot represent faithfully."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    model_type: str  # "qwen2" | "qwen3" | "llama"
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    head_dim: int | None = None  # None means hidden_size // num_heads
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0
    rope_type: str = "default"  # "default" | "llama3"
    rope_factor: float = 1.0  # llama3 scaling only
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_position: int = 8192
    max_position_embeddings: int = 32768
    dtype: str = "float32"  # parameter and activation dtype
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(f"model_type {self.model_type!r} not supported; expected one of {SUPPORTED_MODEL_TYPES}")
        if self.rope_type not in SUPPORTED_ROPE_TYPES:
            raise ConfigError(f"rope_type {self.rope_type!r} not supported; expected one of {SUPPORTED_ROPE_TYPES}")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype {self.dtype!r} not supported; expected one of {tuple(_DTYPES)}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")

    # The HF architectures fix these two features, so they follow from model_type.
    @property
    def qkv_bias(self) -> bool:
        """Qwen2/2.5: biases on the q, k and v projections (not on o)."""
        return self.model_type == "qwen2"

    @property
    def qk_norm(self) -> bool:
        """Qwen3: RMSNorm over head_dim on queries and keys, before RoPE."""
        return self.model_type == "qwen3"

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_heads

    @property
    def jax_dtype(self) -> jnp.dtype:
        return _DTYPES[self.dtype]

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def num_parameters(self) -> int:
        d, f, v, hd = self.hidden_size, self.intermediate_size, self.vocab_size, self.resolved_head_dim
        q, kv = self.num_heads * hd, self.num_kv_heads * hd
        attention = d * (q + 2 * kv) + q * d + (q + 2 * kv if self.qkv_bias else 0) + (2 * hd if self.qk_norm else 0)
        per_layer = attention + 3 * d * f + 2 * d
        head = 0 if self.tie_word_embeddings else v * d
        return v * d + self.num_layers * per_layer + d + head

    @classmethod
    def from_hf(cls, hf: dict[str, Any], dtype: str | None = None) -> "ModelConfig":
        """Build from a Hugging Face config.json dict. `dtype` overrides the checkpoint's dtype."""
        model_type = hf.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(
                f"config.json model_type {model_type!r} not supported; expected one of {SUPPORTED_MODEL_TYPES}"
            )
        if hf.get("use_sliding_window"):
            raise ConfigError("config.json has use_sliding_window=true; sliding-window attention is not implemented")
        if hf.get("mlp_bias"):
            raise ConfigError("config.json has mlp_bias=true; MLP biases are not implemented")
        if model_type == "llama" and hf.get("hidden_act", "silu") != "silu":
            raise ConfigError(f"hidden_act {hf['hidden_act']!r} not supported; only silu")
        required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        missing = [key for key in required if key not in hf]
        if missing:
            raise ConfigError(f"config.json lacks required keys {missing}")

        rope = dict(hf.get("rope_parameters") or {})
        legacy_scaling = hf.get("rope_scaling") or {}
        for key, value in legacy_scaling.items():  # pre-v5 configs: rope_scaling + top-level rope_theta
            rope.setdefault(key, value)
        if "type" in rope and "rope_type" not in rope:
            rope["rope_type"] = rope["type"]
        rope_theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
        rope_type = rope.get("rope_type", "default")

        # Llama and Qwen3 put `attention_bias` on q, k, v AND o; no published checkpoint uses it.
        if model_type != "qwen2" and hf.get("attention_bias"):
            raise ConfigError(f"config.json has attention_bias=true for {model_type}; not implemented")

        eos = hf.get("eos_token_id")
        checkpoint_dtype = hf.get("dtype") or hf.get("torch_dtype") or "float32"
        return cls(
            model_type=model_type,
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            num_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
            intermediate_size=hf["intermediate_size"],
            # transformers' Qwen3Config defaults head_dim to 128; the others derive it from the hidden size
            head_dim=hf.get("head_dim", 128 if model_type == "qwen3" else None),
            rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            rope_theta=float(rope_theta),
            rope_type=rope_type,
            rope_factor=float(rope.get("factor", 1.0)),
            rope_low_freq_factor=float(rope.get("low_freq_factor", 1.0)),
            rope_high_freq_factor=float(rope.get("high_freq_factor", 4.0)),
            rope_original_max_position=int(rope.get("original_max_position_embeddings", 8192)),
            max_position_embeddings=hf.get("max_position_embeddings", 32768),
            dtype=dtype or checkpoint_dtype,
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
            pad_token_id=hf.get("pad_token_id"),
        )

    def to_hf(self) -> dict[str, Any]:
        """A config.json dict in the transformers-5 layout."""
        rope: dict[str, Any] = {"rope_type": self.rope_type, "rope_theta": self.rope_theta}
        if self.rope_type == "llama3":
            rope.update(
                factor=self.rope_factor,
                low_freq_factor=self.rope_low_freq_factor,
                high_freq_factor=self.rope_high_freq_factor,
                original_max_position_embeddings=self.rope_original_max_position,
            )
        hf: dict[str, Any] = {
            "architectures": [_ARCHITECTURES[self.model_type]],
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "rope_parameters": rope,
            "max_position_embeddings": self.max_position_embeddings,
            "dtype": self.dtype,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_id) if isinstance(self.eos_token_id, tuple) else self.eos_token_id,
            "pad_token_id": self.pad_token_id,
        }
        if self.head_dim is not None or self.model_type == "qwen3":
            hf["head_dim"] = self.resolved_head_dim
        if self.model_type != "qwen2":
            hf["attention_bias"] = False
        return hf
