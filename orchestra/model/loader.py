"""Load Hugging Face safetensors checkpoints into the NNX model, and save them back.

One table maps Hugging Face parameter names to NNX state paths; it is used in both directions.
Loading builds the model abstractly (`nnx.eval_shape`), reads each tensor with the safetensors
numpy API, and places it with `jax.device_put` under the sharding that the mesh and the partition
rules give its path (replicated unless a rule says otherwise). Every missing, unexpected or
mis-shaped tensor is collected and reported in one `CheckpointError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from safetensors import safe_open
from safetensors.numpy import save_file

from orchestra.model.config import ModelConfig
from orchestra.model.modeling import Transformer, abstract_model

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message lists every problem found."""


# (Hugging Face name, NNX path, transpose). {layer} is a layer index, {proj} a projection name.
# torch Linear weights are [out, in]; our kernels are [in, out], hence the transposes.
PARAMETER_TABLE: tuple[tuple[str, str, bool], ...] = (
    ("model.embed_tokens.weight", "embed", False),
    ("model.norm.weight", "final_norm.scale", False),
    ("lm_head.weight", "lm_head", True),
    ("model.layers.{layer}.input_layernorm.weight", "layers.{layer}.input_norm.scale", False),
    ("model.layers.{layer}.post_attention_layernorm.weight", "layers.{layer}.post_attn_norm.scale", False),
    ("model.layers.{layer}.self_attn.{proj}_proj.weight", "layers.{layer}.attn.{proj}_proj.kernel", True),
    ("model.layers.{layer}.self_attn.{proj}_proj.bias", "layers.{layer}.attn.{proj}_proj.bias", False),
    ("model.layers.{layer}.self_attn.{proj}_norm.weight", "layers.{layer}.attn.{proj}_norm.scale", False),
    ("model.layers.{layer}.mlp.{proj}_proj.weight", "layers.{layer}.mlp.{proj}_proj.kernel", True),
)
_PLACEHOLDERS = {"layer": r"(?P<layer>\d+)", "proj": r"(?P<proj>[a-z]+)"}


def _template_regex(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for name, group in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), group)
    return re.compile(pattern + r"\Z")


_HF_TO_NNX = [(_template_regex(hf), nnx_path, transpose) for hf, nnx_path, transpose in PARAMETER_TABLE]
_NNX_TO_HF = [(_template_regex(nnx_path), hf, transpose) for hf, nnx_path, transpose in PARAMETER_TABLE]


def hf_to_nnx_path(hf_name: str) -> tuple[str, bool] | None:
    """(NNX path, transpose) for a Hugging Face parameter name, or None if the table has no entry."""
    for regex, template, transpose in _HF_TO_NNX:
        match = regex.match(hf_name)
        if match:
            return template.format(**match.groupdict()), transpose
    return None


def nnx_to_hf_name(nnx_path: str) -> tuple[str, bool]:
    for regex, template, transpose in _NNX_TO_HF:
        match = regex.match(nnx_path)
        if match:
            return template.format(**match.groupdict()), transpose
    raise KeyError(f"no Hugging Face name for NNX parameter {nnx_path!r}")


def read_hf_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {str(path)!r} does not exist")
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise CheckpointError(f"checkpoint directory {str(path)!r} has no {CONFIG_FILE}")
    return json.loads(config_file.read_text())


def _checkpoint_files(path: Path) -> list[Path]:
    index_file = path / INDEX_FILE
    if index_file.is_file():
        weight_map = json.loads(index_file.read_text()).get("weight_map")
        if not weight_map:
            raise CheckpointError(f"{index_file} has no weight_map")
        files = [path / name for name in sorted(set(weight_map.values()))]
        absent = [str(f.name) for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(f"{index_file} names files that do not exist: {absent}")
        return files
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"checkpoint directory {str(path)!r} has no *.safetensors files")
    return files


def _sharding_for(nnx_path: str, mesh: Mesh, partition_rules: Sequence[tuple[str, PartitionSpec]]) -> NamedSharding:
    """First rule whose regex matches the NNX path wins; unmatched parameters are replicated."""
    for pattern, spec in partition_rules:
        if re.search(pattern, nnx_path):
            return NamedSharding(mesh, spec)
    return NamedSharding(mesh, PartitionSpec())


def _is_ignorable(hf_name: str, config: ModelConfig) -> bool:
    # Old checkpoints store RoPE buffers; tied models sometimes still store lm_head.
    return hf_name.endswith("rotary_emb.inv_freq") or (config.tie_word_embeddings and hf_name == "lm_head.weight")


def load_model(
    path: str | Path,
    dtype: str | None = None,
    mesh: Mesh | None = None,
    partition_rules: Sequence[tuple[str, PartitionSpec]] = (),
) -> Transformer:
    """Load a Hugging Face checkpoint directory into a `Transformer`.

    dtype: parameter dtype ("float32", "bfloat16"); default is the checkpoint's.
    mesh, partition_rules: where each parameter lives; rules are (regex on the NNX path, spec).
    """
    path = Path(path)
    config = ModelConfig.from_hf(read_hf_config(path), dtype=dtype)
    if mesh is None:
        mesh = Mesh(np.asarray(jax.devices()), ("data",))
    graphdef, abstract_state = nnx.split(abstract_model(config))
    flat_state = nnx.to_flat_state(abstract_state)
    expected = {".".join(str(p) for p in key): variable.get_value() for key, variable in flat_state}

    loaded: dict[str, jax.Array] = {}
    found: set[str] = set()  # NNX paths present in the checkpoint, usable or not
    unexpected, mis_shaped, duplicated = [], [], []
    for file in _checkpoint_files(path):
        with safe_open(str(file), framework="np") as reader:
            for hf_name in reader.keys():
                target = hf_to_nnx_path(hf_name)
                if target is None or target[0] not in expected:
                    if not _is_ignorable(hf_name, config):
                        unexpected.append(f"{hf_name} (in {file.name})")
                    continue
                nnx_path, transpose = target
                if nnx_path in found:
                    duplicated.append(f"{hf_name} (again in {file.name})")
                    continue
                found.add(nnx_path)
                want = expected[nnx_path]
                stored_shape = tuple(reader.get_slice(hf_name).get_shape())
                shape = stored_shape[::-1] if transpose else stored_shape
                if shape != tuple(want.shape):
                    want_hf = tuple(want.shape)[::-1] if transpose else tuple(want.shape)
                    mis_shaped.append(f"{hf_name}: checkpoint {stored_shape}, config expects {want_hf}")
                    continue
                array = reader.get_tensor(hf_name)
                array = np.ascontiguousarray(array.T if transpose else array).astype(want.dtype)
                loaded[nnx_path] = jax.device_put(array, _sharding_for(nnx_path, mesh, partition_rules))

    missing = [nnx_to_hf_name(p)[0] for p in expected if p not in found]
    problems = [
        (f"missing tensors ({len(missing)})", missing),
        (f"unexpected tensors ({len(unexpected)})", unexpected),
        (f"mis-shaped tensors ({len(mis_shaped)})", mis_shaped),
        (f"duplicated tensors ({len(duplicated)})", duplicated),
    ]
    problems = [(title, names) for title, names in problems if names]
    if problems:
        lines = [f"cannot load checkpoint {str(path)!r}:"]
        for title, names in problems:
            lines.append(f"  {title}:")
            lines.extend(f"    {name}" for name in names)
        raise CheckpointError("\n".join(lines))

    for key, variable in flat_state:
        variable.set_value(loaded[".".join(str(p) for p in key)])
    return nnx.merge(graphdef, nnx.from_flat_state(flat_state))


def save_model(model: Transformer, path: str | Path, tokenizer=None, max_shard_bytes: int = 4 * 1024**3) -> Path:
    """Write config.json and safetensors (sharded with an index above max_shard_bytes) that
    transformers' `AutoModelForCausalLM.from_pretrained` loads; also the tokenizer if given."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    for key, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        hf_name, transpose = nnx_to_hf_name(".".join(str(p) for p in key))
        array = np.asarray(jax.device_get(variable.get_value()))
        tensors[hf_name] = np.ascontiguousarray(array.T if transpose else array)

    shards: list[dict[str, np.ndarray]] = [{}]
    shard_bytes = 0
    for name in sorted(tensors):
        if shards[-1] and shard_bytes + tensors[name].nbytes > max_shard_bytes:
            shards.append({})
            shard_bytes = 0
        shards[-1][name] = tensors[name]
        shard_bytes += tensors[name].nbytes

    for stale in list(path.glob("*.safetensors")) + [path / INDEX_FILE]:
        stale.unlink(missing_ok=True)  # leftovers would be read as part of this checkpoint
    metadata = {"format": "pt"}  # transformers refuses safetensors without a known format
    if len(shards) == 1:
        save_file(shards[0], str(path / SINGLE_FILE), metadata=metadata)
    else:
        weight_map = {}
        for number, shard in enumerate(shards, start=1):
            file_name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(path / file_name), metadata=metadata)
            weight_map.update({name: file_name for name in shard})
        total = sum(t.nbytes for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (path / INDEX_FILE).write_text(json.dumps(index, indent=2))

    (path / CONFIG_FILE).write_text(json.dumps(model.config.to_hf(), indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))
    return path
