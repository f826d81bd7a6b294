"""Checkpoint loading and saving against transformers (torch), plus the listing errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from conftest import torch_logits
from safetensors.numpy import load_file, save_file
from transformers import AutoModelForCausalLM

from orchestra.model.config import ConfigError, ModelConfig
from orchestra.model.loader import CheckpointError, hf_to_nnx_path, load_model, nnx_to_hf_name, save_model

TOKENS = np.random.RandomState(0).randint(0, 320, (2, 48))
POSITIONS = np.broadcast_to(np.arange(48), (2, 48))


@nnx.jit
def _forward(model, tokens, positions):
    return model(tokens, positions)[0]


def our_logits(model, tokens=TOKENS, positions=POSITIONS) -> np.ndarray:
    return np.asarray(_forward(model, jnp.asarray(tokens), jnp.asarray(positions)))


@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "llama3"])
def test_loaded_logits_match_torch(hf_checkpoints, kind):
    path, torch_model = hf_checkpoints[kind]
    model = load_model(path)
    expected = torch_logits(torch_model, TOKENS)
    assert np.abs(expected).max() > 1.0  # peaked enough that a wrong layout would show
    np.testing.assert_allclose(our_logits(model), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["qwen2", "llama3"])
def test_saved_checkpoint_loads_in_transformers(hf_checkpoints, tiny_tokenizer, tmp_path, kind):
    path, torch_model = hf_checkpoints[kind]
    save_model(load_model(path), tmp_path / "out", tokenizer=tiny_tokenizer)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    np.testing.assert_allclose(torch_logits(reloaded, TOKENS), torch_logits(torch_model, TOKENS), atol=1e-5, rtol=0)
    assert (tmp_path / "out" / "tokenizer.json").is_file()


def test_sharded_save_round_trips(hf_checkpoints, tmp_path):
    path, torch_model = hf_checkpoints["qwen3"]
    save_model(load_model(path), tmp_path, max_shard_bytes=40_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    np.testing.assert_allclose(torch_logits(reloaded, TOKENS), torch_logits(torch_model, TOKENS), atol=1e-5, rtol=0)
    np.testing.assert_allclose(our_logits(load_model(tmp_path)), torch_logits(torch_model, TOKENS), atol=1e-4, rtol=0)


def test_bfloat16_load(hf_checkpoints):
    path, torch_model = hf_checkpoints["qwen2"]
    model = load_model(path, dtype="bfloat16")
    assert model.embed[...].dtype == jnp.bfloat16 and model.config.dtype == "bfloat16"
    logits = our_logits(model)
    assert logits.dtype == np.float32
    # bf16 weights and activations: close to fp32 in aggregate, not exact
    assert np.mean(np.abs(logits - torch_logits(torch_model, TOKENS))) < 0.1


def _corrupt_copy(source, target, edit):
    shutil.copytree(source, target)
    tensors = load_file(str(target / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})


def test_missing_and_misshaped_tensors_are_listed_together(hf_checkpoints, tmp_path):
    path, _ = hf_checkpoints["qwen3"]

    def edit(tensors):
        del tensors["model.layers.1.mlp.up_proj.weight"]
        del tensors["model.norm.weight"]
        tensors["model.layers.0.self_attn.k_proj.weight"] = tensors["model.layers.0.self_attn.k_proj.weight"][:-1]
        tensors["model.layers.0.self_attn.extra.weight"] = np.zeros(3, np.float32)

    _corrupt_copy(Path(path), tmp_path / "bad", edit)
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "bad")
    message = str(error.value)
    for expected in (
        "missing tensors (2)", "model.layers.1.mlp.up_proj.weight", "model.norm.weight",
        "mis-shaped tensors (1)", "model.layers.0.self_attn.k_proj.weight: checkpoint (63, 64), config expects (64, 64)",
        "unexpected tensors (1)", "model.layers.0.self_attn.extra.weight",
    ):
        assert expected in message


def test_missing_directory_and_config_errors(hf_checkpoints, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="has no config.json"):
        load_model(tmp_path / "empty")
    shutil.copy(f"{hf_checkpoints['qwen2'][0]}/config.json", tmp_path / "empty" / "config.json")
    with pytest.raises(CheckpointError, match="no \\*.safetensors files"):
        load_model(tmp_path / "empty")


def test_parameter_table_round_trips_names():
    for hf_name in ("model.embed_tokens.weight", "lm_head.weight", "model.layers.11.self_attn.q_proj.bias",
                    "model.layers.3.self_attn.k_norm.weight", "model.layers.0.mlp.down_proj.weight"):
        nnx_path, _ = hf_to_nnx_path(hf_name)
        assert nnx_to_hf_name(nnx_path)[0] == hf_name
    assert hf_to_nnx_path("model.layers.0.self_attn.rotary_emb.inv_freq") is None


def test_config_from_hf_variants():
    base = dict(model_type="llama", vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=128)
    config = ModelConfig.from_hf(base)  # no head_dim, no kv heads, no rope entries
    assert (config.resolved_head_dim, config.num_kv_heads, config.rope_theta) == (16, 4, 10000.0)
    legacy = ModelConfig.from_hf(dict(base, rope_theta=5e5, rope_scaling=dict(
        rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)))
    assert (legacy.rope_type, legacy.rope_theta, legacy.rope_factor) == ("llama3", 5e5, 32.0)
    assert ModelConfig.from_hf(legacy.to_hf()) == legacy
    with pytest.raises(ConfigError, match="sliding"):
        ModelConfig.from_hf(dict(base, model_type="qwen2", use_sliding_window=True))
    with pytest.raises(ConfigError, match="model_type 'gpt2'"):
        ModelConfig.from_hf(dict(base, model_type="gpt2"))
    with pytest.raises(ConfigError, match="lacks required keys"):
        ModelConfig.from_hf(dict(model_type="qwen2"))


def test_parameters_are_placed_by_mesh_and_rules(hf_checkpoints):
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("model",))
    rules = [(r"mlp\.(gate|up)_proj\.kernel", PartitionSpec(None, "model")), (r"^embed$", PartitionSpec("model", None))]
    model = load_model(hf_checkpoints["qwen2"][0], mesh=mesh, partition_rules=rules)
    assert model.layers[1].mlp.up_proj.kernel[...].sharding == NamedSharding(mesh, PartitionSpec(None, "model"))
    assert model.embed[...].sharding == NamedSharding(mesh, PartitionSpec("model", None))
    assert model.layers[0].attn.q_proj.bias[...].sharding == NamedSharding(mesh, PartitionSpec())  # default
