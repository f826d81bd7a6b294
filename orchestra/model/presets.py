"""Published model shapes, so a user with weights only sets `model.path`, plus a `small` CPU preset.

Values are those of the checkpoints' config.json files (instruct variants where they differ, e.g.
max_position_embeddings). `build_model` loads weights from a path and checks they have the preset's
shape, or initialises the preset randomly when no path is given.
"""

from __future__ import annotations

from pathlib import Path

from orchestra.model.config import ConfigError, ModelConfig
from orchestra.model.modeling import Transformer, init_model

_QWEN_TOKENS = dict(bos_token_id=151643, eos_token_id=151645)

PRESETS: dict[str, ModelConfig] = {
    "qwen2.5-0.5b": ModelConfig(
        model_type="qwen2", vocab_size=151936, hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2,
        intermediate_size=4864, rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6,
        max_position_embeddings=32768, dtype="bfloat16", **_QWEN_TOKENS,
    ),
    "qwen2.5-1.5b": ModelConfig(
        model_type="qwen2", vocab_size=151936, hidden_size=1536, num_layers=28, num_heads=12, num_kv_heads=2,
        intermediate_size=8960, rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6,
        max_position_embeddings=32768, dtype="bfloat16", **_QWEN_TOKENS,
    ),
    "qwen2.5-7b": ModelConfig(
        model_type="qwen2", vocab_size=152064, hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4,
        intermediate_size=18944, rope_theta=1000000.0, tie_word_embeddings=False, rms_norm_eps=1e-6,
        max_position_embeddings=32768, dtype="bfloat16", **_QWEN_TOKENS,
    ),
    "qwen3-0.6b": ModelConfig(
        model_type="qwen3", vocab_size=151936, hidden_size=1024, num_layers=28, num_heads=16, num_kv_heads=8,
        head_dim=128, intermediate_size=3072, rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6,
        max_position_embeddings=40960, dtype="bfloat16", **_QWEN_TOKENS,
    ),
    "qwen3-8b": ModelConfig(
        model_type="qwen3", vocab_size=151936, hidden_size=4096, num_layers=36, num_heads=32, num_kv_heads=8,
        head_dim=128, intermediate_size=12288, rope_theta=1000000.0, tie_word_embeddings=False, rms_norm_eps=1e-6,
        max_position_embeddings=40960, dtype="bfloat16", **_QWEN_TOKENS,
    ),
    "llama-3.2-1b": ModelConfig(
        model_type="llama", vocab_size=128256, hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8,
        head_dim=64, intermediate_size=8192, rope_theta=500000.0, rope_type="llama3", rope_factor=32.0,
        rope_low_freq_factor=1.0, rope_high_freq_factor=4.0, rope_original_max_position=8192,
        tie_word_embeddings=True, rms_norm_eps=1e-5, max_position_embeddings=131072, dtype="bfloat16",
        bos_token_id=128000, eos_token_id=(128001, 128008, 128009),
    ),
    # A few million parameters (about 4.2M), Qwen2.5 layout, for CPU experiments and tests.
    "small": ModelConfig(
        model_type="qwen2", vocab_size=4096, hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2,
        intermediate_size=768, rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6,
        max_position_embeddings=4096, dtype="float32",
    ),
}

# Fields that fix the parameter shapes; a checkpoint must agree with its preset on all of them.
SHAPE_FIELDS = (
    "model_type", "vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
    "resolved_head_dim", "intermediate_size", "tie_word_embeddings",
)


def preset_config(preset: str, dtype: str | None = None) -> ModelConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}; known: {sorted(PRESETS)}")
    config = PRESETS[preset]
    return config.replace(dtype=dtype) if dtype else config


def build_model(preset: str | None, path: str | Path | None = None, dtype: str | None = None,
                seed: int = 0) -> Transformer:
    """Load weights from `path` (checked against the preset's shape; any shape with preset None)
    or, without a path, a random model of the preset's shape."""
    from orchestra.model.loader import load_model

    if preset is None and path is not None:
        return load_model(path, dtype=dtype)
    config = preset_config(preset, dtype)
    if path is None:
        return init_model(config, seed)
    model = load_model(path, dtype=dtype)
    mismatched = [
        f"{field}: preset {getattr(config, field)!r}, checkpoint {getattr(model.config, field)!r}"
        for field in SHAPE_FIELDS
        if getattr(config, field) != getattr(model.config, field)
    ]
    if mismatched:
        raise ConfigError(f"checkpoint {str(path)!r} does not match preset {preset!r}: " + "; ".join(mismatched))
    return model
