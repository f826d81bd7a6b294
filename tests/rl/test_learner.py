"""The learner's update step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from orchestra.model.config import ModelConfig
from orchestra.model.modeling import init_model
from orchestra.rl.config import rl_config
from orchestra.rl.learner import Learner, LossConfig, update_step
from orchestra.rl.trainer import micro_batches, take_rows


@pytest.mark.parametrize("algorithm,aggregation", [("grpo", "token_mean"), ("grpo", "seq_mean_token_mean"),
                                                   ("ppo", "token_mean")])
def test_micro_batched_update_equals_the_one_pass_update(algorithm, aggregation):
    config = ModelConfig(model_type="qwen2", vocab_size=64, hidden_size=32, num_layers=2, num_heads=2,
                         num_kv_heads=1, intermediate_size=64, max_position_embeddings=64, dtype="float32")
    rng = np.random.default_rng(0)
    b, t = 8, 24
    lengths = rng.integers(6, t + 1, b)
    lengths[0] = t
    real = np.arange(t)[None, :] < lengths[:, None]   # right-padded rows of different lengths
    mask = ((rng.random((b, t)) < 0.5) & real).astype(np.int32)
    mask[3] = 0  # a row with no policy tokens: its micro-batch's weight must not count it
    batch = {"tokens": rng.integers(0, 64, (b, t)).astype(np.int32), "loss_mask": mask,
             "segment_ids": real.astype(np.int32),
             "old_logp": -rng.random((b, t - 1)).astype(np.float32) * 4,
             "ref_logp": -rng.random((b, t - 1)).astype(np.float32) * 4,
             "advantages": rng.normal(size=(b,) if algorithm == "grpo" else (b, t - 1)).astype(np.float32)}
    if algorithm == "ppo":
        batch["returns"] = rng.normal(size=(b, t - 1)).astype(np.float32)
        batch["old_values"] = rng.normal(size=(b, t - 1)).astype(np.float32)
    cfg = LossConfig(algorithm=algorithm, aggregation=aggregation, entropy_coef=0.01)
    # one pass over every row at full width, against passes of 3 rows (the last filled with a padding
    # row), each cut to its own longest row rounded up to 4 tokens
    one_pass = [take_rows(batch, np.arange(b), t)]
    passes = [take_rows(batch, rows, length) for rows, length in micro_batches(np.arange(b), lengths, 3, 4)]
    assert len(passes) == 3 and len({p["tokens"].shape[1] for p in passes}) > 1
    results = []
    for parts in (one_pass, passes):
        learner = Learner(init_model(config, 0), with_value_head=algorithm == "ppo")
        optimizer = nnx.Optimizer(learner, optax.sgd(1.0), wrt=nnx.Param)  # parameters move by the gradient
        metrics = update_step(learner, optimizer, [{k: jnp.asarray(v) for k, v in p.items()} for p in parts], cfg)
        results.append((jax.tree.leaves(nnx.to_pure_dict(nnx.state(learner))), metrics))
    (one, m1), (three, m3) = results
    assert set(m1) == set(m3)
    for k in m1:
        assert float(m3[k]) == pytest.approx(float(m1[k]), rel=1e-4, abs=1e-6), k
    assert max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(one, three)) < 1e-5
    with pytest.raises(ValueError, match="at least one micro-batch"):
        update_step(learner, optimizer, [], cfg)


def test_a_micro_batch_size_that_does_not_divide_the_minibatch_is_a_config_error():
    assert rl_config({"algorithm": "grpo", "minibatch_size": 16, "micro_batch_size": 4}, 0).train.micro_batch_size == 4
    with pytest.raises(ValueError, match=r"rl.micro_batch_size \(6\) must divide rl.minibatch_size \(16\)"):
        rl_config({"algorithm": "grpo", "minibatch_size": 16, "micro_batch_size": 6}, 0)
