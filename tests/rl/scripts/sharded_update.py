"""Run with 2 emulated CPU devices: one update with the batch sharded over a 2-device mesh equals
the same update on a 1-device mesh, also when split into micro-batches of their own lengths, and
when split into groups whose shared prompt is encoded once (replicated, the rows sharded). Prints
the largest parameter difference of each."""

import sys

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from orchestra.model.config import ModelConfig
from orchestra.model.modeling import init_model
from orchestra.rl import trainer
from orchestra.rl.learner import Learner, LossConfig, update_step

algorithm = sys.argv[1]
assert jax.device_count() == 2, jax.devices()
config = ModelConfig(model_type="qwen2", vocab_size=64, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                     intermediate_size=64, max_position_embeddings=128, dtype="float32")
rng = np.random.default_rng(0)
b, t = 4, 32
lengths = np.array([32, 12, 30, 9])
real = np.arange(t)[None, :] < lengths[:, None]
tokens = rng.integers(0, 64, (b, t)).astype(np.int32)
loss_mask = ((rng.random((b, t)) < 0.6) & real).astype(np.int32)
for first, prompt in ((0, 8), (2, 5)):  # two groups of two rows, each of one prompt
    tokens[first + 1, :prompt] = tokens[first, :prompt]
    loss_mask[first: first + 2, :prompt] = 0
batch = {
    "tokens": tokens,
    "loss_mask": loss_mask,
    "segment_ids": real.astype(np.int32),
    "old_logp": -rng.random((b, t - 1)).astype(np.float32) * 4,
    "ref_logp": -rng.random((b, t - 1)).astype(np.float32) * 4,
    "advantages": rng.normal(size=(b,) if algorithm == "grpo" else (b, t - 1)).astype(np.float32),
}
if algorithm == "ppo":
    batch["returns"] = rng.normal(size=(b, t - 1)).astype(np.float32)
    batch["old_values"] = rng.normal(size=(b, t - 1)).astype(np.float32)
cfg = LossConfig(algorithm=algorithm, entropy_coef=0.01)


def updated(devices, split="one"):
    mesh = jax.make_mesh((len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,))
    learner = Learner(init_model(config, 0), with_value_head=algorithm == "ppo")
    optimizer = nnx.Optimizer(learner, optax.sgd(1.0), wrt=nnx.Param)  # parameters move by the gradient itself
    for module in (learner, optimizer):
        nnx.update(module, jax.device_put(nnx.state(module), NamedSharding(mesh, P())))
    # one pass over the 4 rows, passes of 2 rows of similar length, each cut to its own longest row, or
    # a pass per group
    if split == "shared":
        parts = [trainer.shared_prompt_part(batch, np.arange(g, g + 2), lengths, 8) for g in (0, 2)]
    else:
        cuts = [(np.arange(b), t)] if split == "one" else trainer.micro_batches(np.arange(b), lengths, 2, 8)
        parts = [trainer.take_rows(batch, r, n) for r, n in cuts]
    placed = [trainer.place_part(part, mesh) for part in parts]
    metrics = update_step(learner, optimizer, placed, cfg)
    assert all(p["tokens"].sharding.num_devices == len(devices) for p in placed)
    return jax.tree.leaves(nnx.to_pure_dict(nnx.state(learner))), float(metrics["loss"])


single, loss1 = updated(jax.devices()[:1])
for split in ("one", "micro", "shared"):  # the sharded update, in one pass, two micro-batches, two groups
    sharded, loss2 = updated(jax.devices(), split)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(sharded, single))
    print(f"split={split} max_param_diff={diff:.3e} loss_diff={abs(loss1 - loss2):.3e}")
