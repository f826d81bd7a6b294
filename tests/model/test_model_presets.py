"""Model presets and their Hydra YAMLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from orchestra.model.config import ConfigError
from orchestra.model.presets import PRESETS, build_model, preset_config

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"

# Published totals (embeddings included), in millions of parameters.
PUBLISHED_SIZES = {"qwen2.5-0.5b": 494, "qwen2.5-1.5b": 1544, "qwen2.5-7b": 7616, "qwen3-0.6b": 596,
                   "qwen3-8b": 8191, "llama-3.2-1b": 1236}


@pytest.mark.parametrize("name", sorted(PUBLISHED_SIZES))
def test_preset_sizes_match_published_models(name):
    assert round(PRESETS[name].num_parameters() / 1e6) == PUBLISHED_SIZES[name]


def test_preset_features():
    assert PRESETS["qwen2.5-7b"].qkv_bias and not PRESETS["qwen2.5-7b"].tie_word_embeddings
    assert PRESETS["qwen3-0.6b"].qk_norm and PRESETS["qwen3-0.6b"].resolved_head_dim == 128
    assert PRESETS["llama-3.2-1b"].rope_type == "llama3" and PRESETS["llama-3.2-1b"].rope_factor == 32.0
    assert 2e6 < PRESETS["small"].num_parameters() < 8e6


def test_every_yaml_names_its_preset():
    files = sorted(CONF_DIR.glob("*.yaml"))
    assert {f.stem for f in files} == set(PRESETS)
    for file in files:
        conf = OmegaConf.load(file)
        # only `small` has weights in the repository (the shipped base); the others need a local checkpoint
        assert conf.path == ("checkpoints/small-base" if file.stem == "small" else None), file
        assert conf.preset == file.stem and conf.dtype in ("float32", "bfloat16")
        assert preset_config(conf.preset, conf.dtype).dtype == conf.dtype


def test_build_model_checks_checkpoint_against_preset(hf_checkpoints):
    conf = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "small.yaml"))
    with pytest.raises(ConfigError, match="does not match preset 'small'.*hidden_size: preset 256, checkpoint 64"):
        build_model(**dict(conf, path=hf_checkpoints["qwen2"][0]))
    with pytest.raises(ConfigError, match="unknown model preset 'gpt-5'"):
        build_model("gpt-5")
