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
from orchestra.rl.trainer import micro_batches, shared_prompt_part, take_rows

TINY = ModelConfig(model_type="qwen2", vocab_size=64, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                   intermediate_size=64, max_position_embeddings=64, dtype="float32")


def updated(parts, cfg):
    """The parameters and metrics after one SGD step (parameters move by the gradient itself)."""
    learner = Learner(init_model(TINY, 0), with_value_head=cfg.algorithm == "ppo")
    optimizer = nnx.Optimizer(learner, optax.sgd(1.0), wrt=nnx.Param)
    metrics = update_step(learner, optimizer, [{k: jnp.asarray(v) for k, v in p.items()} for p in parts], cfg)
    return jax.tree.leaves(nnx.to_pure_dict(nnx.state(learner))), metrics


def loss_batch(tokens, loss_mask, segment_ids, algorithm, rng):
    """A padded batch of rows with random sampler and reference log-probs and advantages (and PPO's
    returns and old values)."""
    b, t = tokens.shape
    batch = {"tokens": tokens, "loss_mask": loss_mask, "segment_ids": segment_ids,
             "old_logp": -rng.random((b, t - 1)).astype(np.float32) * 4,
             "ref_logp": -rng.random((b, t - 1)).astype(np.float32) * 4,
             "advantages": rng.normal(size=(b,) if algorithm == "grpo" else (b, t - 1)).astype(np.float32)}
    if algorithm == "ppo":
        batch["returns"] = rng.normal(size=(b, t - 1)).astype(np.float32)
        batch["old_values"] = rng.normal(size=(b, t - 1)).astype(np.float32)
    return batch


def assert_same_update(a, b):
    (params_a, metrics_a), (params_b, metrics_b) = a, b
    assert set(metrics_a) == set(metrics_b)
    for k in metrics_a:
        assert float(metrics_b[k]) == pytest.approx(float(metrics_a[k]), rel=1e-4, abs=1e-6), k
    assert max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(params_a, params_b)) < 1e-5


@pytest.mark.parametrize("algorithm,aggregation", [("grpo", "token_mean"), ("grpo", "seq_mean_token_mean"),
                                                   ("ppo", "token_mean")])
def test_micro_batched_update_equals_the_one_pass_update(algorithm, aggregation):
    rng = np.random.default_rng(0)
    b, t = 8, 24
    lengths = rng.integers(6, t + 1, b)
    lengths[0] = t
    real = np.arange(t)[None, :] < lengths[:, None]   # right-padded rows of different lengths
    mask = ((rng.random((b, t)) < 0.5) & real).astype(np.int32)
    mask[3] = 0  # a row with no policy tokens: its micro-batch's weight must not count it
    batch = loss_batch(rng.integers(0, 64, (b, t)).astype(np.int32), mask, real.astype(np.int32), algorithm, rng)
    cfg = LossConfig(algorithm=algorithm, aggregation=aggregation, entropy_coef=0.01)
    # one pass over every row at full width, against passes of 3 rows (the last filled with a padding
    # row), each cut to its own longest row rounded up to 4 tokens
    one_pass = [take_rows(batch, np.arange(b), t)]
    passes = [take_rows(batch, rows, length) for rows, length in micro_batches(np.arange(b), lengths, 3, 4)]
    assert len(passes) == 3 and len({p["tokens"].shape[1] for p in passes}) > 1
    assert_same_update(updated(one_pass, cfg), updated(passes, cfg))
    learner = Learner(init_model(TINY, 0), with_value_head=False)
    optimizer = nnx.Optimizer(learner, optax.sgd(1.0), wrt=nnx.Param)
    with pytest.raises(ValueError, match="at least one micro-batch"):
        update_step(learner, optimizer, [], cfg)


def test_a_micro_batch_size_that_does_not_divide_the_minibatch_is_a_config_error():
    assert rl_config({"algorithm": "grpo", "minibatch_size": 16, "micro_batch_size": 4}, 0).train.micro_batch_size == 4
    with pytest.raises(ValueError, match=r"rl.micro_batch_size \(6\) must divide rl.minibatch_size \(16\)"):
        rl_config({"algorithm": "grpo", "minibatch_size": 16, "micro_batch_size": 6}, 0)


@pytest.mark.parametrize("algorithm,aggregation", [("grpo", "token_mean"), ("grpo", "seq_mean_token_mean"),
                                                   ("ppo", "token_mean")])
def test_an_update_with_each_groups_prompt_encoded_once_equals_the_one_pass_update(algorithm, aggregation):
    rng = np.random.default_rng(1)
    group, t = 4, 40
    rows, mask, lengths = [], [], []
    for prompt_length in (13, 6):   # two groups, each of one prompt and four continuations
        prompt = rng.integers(0, 64, prompt_length)
        for _ in range(group):
            length = int(rng.integers(prompt_length + 3, t + 1))
            row = np.concatenate([prompt, rng.integers(0, 64, length - prompt_length)])
            m = (rng.random(length) < 0.6).astype(np.int32)
            m[:prompt_length], m[prompt_length] = 0, 1   # policy tokens after the prompt, observations between
            rows.append(np.pad(row, (0, t - length)))
            mask.append(np.pad(m, (0, t - length)))
            lengths.append(length)
    b, lengths = len(rows), np.array(lengths)
    batch = loss_batch(np.stack(rows).astype(np.int32), np.stack(mask),
                       (np.arange(t)[None, :] < lengths[:, None]).astype(np.int32), algorithm, rng)
    cfg = LossConfig(algorithm=algorithm, aggregation=aggregation, entropy_coef=0.01)
    shared = [shared_prompt_part(batch, np.arange(g * group, (g + 1) * group), lengths, 8) for g in range(2)]
    # the prefix stops one token before the first policy token, and each row's pass covers the rest
    for g, (part, prompt_length) in enumerate(zip(shared, (13, 6))):
        start = prompt_length - 1
        assert part["start"].tolist() == [start] * group and part["prefix_segment_ids"].sum() == start
        assert part["prefix_tokens"].shape[1] % 8 == 0 and part["tokens"].shape[1] % 8 == 0
        for i, row in enumerate(range(g * group, (g + 1) * group)):
            assert part["tokens"][i, : lengths[row] - start].tolist() == batch["tokens"][row, start: lengths[row]].tolist()
    assert_same_update(updated([take_rows(batch, np.arange(b), t)], cfg), updated(shared, cfg))


def test_rows_that_part_before_the_policy_speaks_share_only_their_common_prompt():
    tokens = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 9, 4, 5, 6, 7, 8]], np.int32)
    mask = np.array([[0, 0, 0, 0, 0, 1, 1, 1]] * 2, np.int32)
    batch = {"tokens": tokens, "loss_mask": mask, "segment_ids": np.ones_like(tokens)}
    part = shared_prompt_part(batch, np.arange(2), np.array([8, 8]), 4)
    assert part["start"].tolist() == [2, 2] and part["prefix_tokens"][0, :2].tolist() == [1, 2]
    assert part["prefix_segment_ids"][0].tolist() == [1, 1, 0, 0]
    assert part["tokens"][:, :6].tolist() == tokens[:, 2:].tolist()
