"""One process of a 2-process run on localhost: join through jax.distributed.initialize, take one
update step with the global batch split across the processes, print a checksum of the parameters."""

import sys

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
port, process_id = sys.argv[1], int(sys.argv[2])
from orchestra.rl.config import DistributedConfig  # noqa: E402

DistributedConfig(f"127.0.0.1:{port}", 2, process_id).initialize()

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from orchestra.model.config import ModelConfig  # noqa: E402
from orchestra.model.modeling import init_model  # noqa: E402
from orchestra.rl.learner import Learner, LossConfig, make_optimizer, update_step  # noqa: E402
from orchestra.rl.trainer import data_mesh  # noqa: E402

assert jax.process_count() == 2 and jax.device_count() == 2
mesh = data_mesh()
config = ModelConfig(model_type="qwen2", vocab_size=64, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                     intermediate_size=64, max_position_embeddings=128, dtype="float32")
learner = Learner(init_model(config, 0), with_value_head=False)
optimizer = make_optimizer(learner, 1e-2, 1, 10, 0.0, 1.0)
replicated = NamedSharding(mesh, P())
for module in (learner, optimizer):
    state = nnx.state(module)
    nnx.update(module, jax.tree.map(lambda x: jax.make_array_from_process_local_data(replicated, np.asarray(x)), state))
rng = np.random.default_rng(0)  # both processes build the same global batch, each feeds its half
b, t = 4, 16
batch = {"tokens": rng.integers(0, 64, (b, t)).astype(np.int32), "loss_mask": np.ones((b, t), np.int32),
         "segment_ids": np.ones((b, t), np.int32), "old_logp": np.full((b, t - 1), -4.0, np.float32),
         "ref_logp": np.full((b, t - 1), -4.0, np.float32), "advantages": np.array([1, -1, 1, -1], np.float32)}
rows = slice(process_id * 2, process_id * 2 + 2)
sharded = {k: jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), v[rows], v.shape)
           for k, v in batch.items()}
metrics = update_step(learner, optimizer, [sharded], LossConfig())
total = sum(float(np.asarray(x.addressable_data(0)).sum()) for x in jax.tree.leaves(nnx.state(learner)))
print(f"process {process_id} loss={float(metrics['loss'].addressable_data(0)):.6f} checksum={total:.6f}")
jax.distributed.shutdown()
