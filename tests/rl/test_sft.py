"""The SFT warm start's step."""

import dataclasses

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from orchestra.env.views import ResponseView, ToolView
from orchestra.model.config import ModelConfig
from orchestra.model.modeling import init_model
from orchestra.rl.config import rl_config
from orchestra.rl.episodes import hidden_value_steps
from orchestra.rl.sft import encode_gold_episodes, next_token_loss, pad_batch, sft_step
from orchestra.rl.trainer import micro_batches
from tests.rl import tiny


def test_a_micro_batched_sft_step_equals_the_one_pass_step():
    config = ModelConfig(model_type="qwen2", vocab_size=64, hidden_size=32, num_layers=2, num_heads=2,
                         num_kv_heads=1, intermediate_size=64, max_position_embeddings=64, dtype="float32")
    rng = np.random.default_rng(0)
    b, t = 8, 24
    lengths = rng.integers(6, t + 1, b)
    lengths[0] = t
    ids = [rng.integers(1, 64, n).astype(np.int32) for n in lengths]
    masks = [(rng.random(n) < 0.5).astype(np.int32) for n in lengths]
    masks[5][:] = 0  # rows hold different numbers of policy tokens: the mean is over all of the batch's
    one_pass = [pad_batch(ids, masks, t)]
    # passes of 2 rows of similar length, each padded to its own longest row rounded up to 4 tokens
    passes = [pad_batch([ids[i] for i in rows], [masks[i] for i in rows], length)
              for rows, length in micro_batches(np.arange(b), lengths, 2, 4)]
    assert len({p.tokens.shape[1] for p in passes}) > 1
    results = []
    for parts in (one_pass, passes):
        model = init_model(config, 0)
        optimizer = nnx.Optimizer(model, optax.sgd(1.0), wrt=nnx.Param)  # parameters move by the gradient itself
        loss, count = sft_step(model, optimizer, parts)
        results.append((loss, count, jax.tree.leaves(nnx.to_pure_dict(nnx.state(model)))))
    (loss1, count1, one), (loss4, count4, four) = results
    whole = one_pass[0]
    reference, reference_count = next_token_loss(init_model(config, 0), whole.tokens, whole.loss_mask,
                                                 whole.segment_ids)
    assert loss1 == pytest.approx(float(reference), rel=1e-5)
    assert loss4 == pytest.approx(loss1, rel=1e-5) and count4 == count1 == int(reference_count)
    assert max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(one, four)) < 1e-5


def test_an_sft_micro_batch_size_that_does_not_divide_the_batch_is_a_config_error():
    sft = rl_config({"algorithm": "grpo", "sft": {"batch_size": 8, "micro_batch_size": 2}}, 0).sft
    assert sft.micro_batch_size == 2
    with pytest.raises(ValueError, match=r"rl.sft.micro_batch_size \(3\) must divide rl.sft.batch_size \(8\)"):
        rl_config({"algorithm": "grpo", "sft": {"batch_size": 8, "micro_batch_size": 3}}, 0)


def test_hidden_value_steps_flags_a_value_the_view_cut_and_not_one_it_shows_or_the_request_states():
    task = tiny.token_task()
    assert hidden_value_steps(task, ResponseView()) == [False, True, False]
    assert hidden_value_steps(task, ResponseView(kind="full")) == [False, False, False]
    stated = dataclasses.replace(task, query=task.query + " Token " + task.steps[1].call.arguments["city"])
    assert hidden_value_steps(stated, ResponseView()) == [False, False, False]


def test_sft_keeps_a_turn_that_passes_a_hidden_value_out_of_the_loss_and_only_that_turn():
    tok, task, view = tiny.tokenizer(), tiny.token_task(), ResponseView()
    (ids,), (masked,), _, dropped = encode_gold_episodes([task], tiny.TOOLS, tok, view, ToolView(), 4096)
    (_,), (full,), _, none = encode_gold_episodes([task], tiny.TOOLS, tok, view, ToolView(), 4096, mask_hidden=False)
    assert (dropped, none) == (1, 0)
    runs = np.flatnonzero(np.diff(np.concatenate([[0], full])) == 1)
    assert len(runs) == 4  # three calls and the final answer
    text = tok.decode(ids[full.astype(bool) & ~masked.astype(bool)])
    assert task.steps[1].call.arguments["city"] in text.replace(" ", "")  # exactly the token turn left the loss
    assert "h1" not in text and "Paris" not in text
    assert masked.sum() < full.sum() and np.all(masked <= full)
    second = runs[1]
    assert masked[second] == 0 and full[second] == 1 and masked[runs[2]] == 1 and masked[runs[3]] == 1
