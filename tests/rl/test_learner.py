"""The learner's update step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from orchestra.model.config import ModelConfig
from orchestra.model.modeling import init_model
from orchestra.rl.config import rl_config
from orchestra.rl.learner import Learner, LossConfig, make_optimizer, update_step



@pytest.mark.parametrize("algorithm,aggregation", [("grpo", "token_mean"), ("grpo", "seq_mean_token_mean"),
                                                   ("ppo", "token_mean")])
def test_micro_batched_update_equals_the_one_pass_update(algorithm, aggregation):
    config = ModelConfig(model_type="qwen2", vocab_size=64, hidden_size=32, num_layers=2, num_heads=2,
                         num_kv_heads=1, intermediate_size=64, max_position_embeddings=64, dtype="float32")
    rng = np.random.default_rng(0)
    b, t = 8, 24
    mask = (rng.random((b, t)) < 0.5).astype(np.int32)
    mask[3] = 0  # a row with no policy tokens: its micro-batch's share must not count it
    batch = {"tokens": rng.integers(0, 64, (b, t)).astype(np.int32), "loss_mask": mask,
             "segment_ids": np.ones((b, t), np.int32),
             "old_logp": -rng.random((b, t - 1)).astype(np.float32) * 4,
             "ref_logp": -rng.random((b, t - 1)).astype(np.float32) * 4,
             "advantages": rng.normal(size=(b,) if algorithm == "grpo" else (b, t - 1)).astype(np.float32)}
    if algorithm == "ppo":
        batch["returns"] = rng.normal(size=(b, t - 1)).astype(np.float32)
        batch["old_values"] = rng.normal(size=(b, t - 1)).astype(np.float32)
    cfg = LossConfig(algorithm=algorithm, aggregation=aggregation, entropy_coef=0.01)
    results = []
    for micro_batches in (1, 4):
        learner = Learner(init_model(config, 0), with_value_head=algorithm == "ppo")
        optimizer = make_optimizer(learner, 1e-2, 1, 10, 0.0, 1.0)
        metrics = update_step(learner, optimizer, {k: jnp.asarray(v) for k, v in batch.items()}, cfg, micro_batches)
        results.append((jax.tree.leaves(nnx.to_pure_dict(nnx.state(learner))), metrics))
    (one, m1), (four, m4) = results
    assert set(m1) == set(m4)
    for k in m1:
        assert float(m4[k]) == pytest.approx(float(m1[k]), rel=1e-4, abs=1e-6), k
    assert max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(one, four)) < 1e-5
    with pytest.raises(ValueError, match="micro-batches"):
        update_step(learner, optimizer, {k: jnp.asarray(v) for k, v in batch.items()}, cfg, 3)


def test_a_micro_batch_size_that_does_not_divide_the_minibatch_is_a_config_error():
    assert rl_config({"algorithm": "grpo", "minibatch_size": 16, "micro_batch_size": 4}, 0).train.micro_batches == 4
    assert rl_config({"algorithm": "grpo", "minibatch_size": 16, "micro_batch_size": None}, 0).train.micro_batches == 1
    with pytest.raises(ValueError, match=r"rl.micro_batch_size \(6\) must divide rl.minibatch_size \(16\)"):
        rl_config({"algorithm": "grpo", "minibatch_size": 16, "micro_batch_size": 6}, 0)
