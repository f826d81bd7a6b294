"""Sampler: greedy equals transformers, sampling knobs, stop sequences, log-probs, multi-turn extend."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from orchestra.model.chat import TOOL_CALL_CLOSE, stop_sequences
from orchestra.model.loader import load_model
from orchestra.model.sampler import Sampler, SamplingParams, _inverse_cdf_sample, _nucleus_mask

PROMPTS = [list(np.random.RandomState(seed).randint(7, 320, n)) for seed, n in ((1, 5), (2, 12), (3, 9))]
NEW = 12
GREEDY = SamplingParams(temperature=0.0)


def make_sampler(model, stops=()):
    # small buckets and chunks so the tests cross chunk borders and grow the cache
    return Sampler(model, stop_sequences=stops, pad_id=0, min_bucket=8, cache_block=16, chunk_steps=6)


@pytest.fixture(scope="module")
def qwen2(hf_checkpoints):
    path, torch_model = hf_checkpoints["qwen2"]
    return load_model(path), torch_model


@nnx.jit
def _forward(model, tokens):
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    return model(tokens, positions)[0]


def full_logits(model, row, width=48) -> np.ndarray:
    """Logits of one unpadded row (right-padded to a fixed width for a single compile)."""
    padded = jnp.asarray([list(row) + [0] * (width - len(row))])
    return np.asarray(_forward(model, padded))[0, : len(row)]


def test_greedy_matches_transformers_generate(qwen2):
    model, torch_model = qwen2
    output, _ = make_sampler(model).sample(PROMPTS, NEW, GREEDY)
    for row, prompt in enumerate(PROMPTS):
        generated = torch_model.generate(
            torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=NEW, do_sample=False, eos_token_id=None, pad_token_id=0,
        )
        assert output.row(row) == generated[0, len(prompt):].tolist()
    assert output.lengths.tolist() == [NEW] * 3 and not output.stopped.any()
    assert (output.sampling_logprobs == 0).all()


def test_top_k_one_equals_greedy(qwen2):
    model, _ = qwen2
    sampler = make_sampler(model)
    greedy, _ = sampler.sample(PROMPTS, NEW, GREEDY)
    sampled, _ = sampler.sample(PROMPTS, NEW, SamplingParams(temperature=1.0, top_k=1), seed=5)
    np.testing.assert_array_equal(sampled.tokens, greedy.tokens)
    np.testing.assert_allclose(sampled.logprobs, greedy.logprobs, atol=1e-5)
    np.testing.assert_allclose(sampled.sampling_logprobs, 0.0, atol=1e-6)  # one candidate: probability 1


def _filtered_logprobs(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """Reference log-probs of the processed sampling distribution (-inf outside its support)."""
    scaled = logits.astype(np.float64) / temperature
    order = np.argsort(-scaled, axis=-1)
    sorted_scaled = np.take_along_axis(scaled, order, axis=-1)
    keep = np.ones_like(sorted_scaled, dtype=bool)
    if top_k:
        keep[:, top_k:] = False
    probs = np.exp(sorted_scaled - sorted_scaled.max(-1, keepdims=True)) * keep
    probs /= probs.sum(-1, keepdims=True)
    keep &= (np.cumsum(probs, -1) - probs) < top_p
    masked = np.where(keep, sorted_scaled, -np.inf)
    masked = masked - np.logaddexp.reduce(masked, axis=-1, keepdims=True)
    result = np.empty_like(masked)
    np.put_along_axis(result, order, masked, axis=-1)
    return result


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=0.7),  # plain tempered sampling: the default for RL
    SamplingParams(temperature=1.3, top_p=0.8),
    SamplingParams(temperature=3.0, top_k=3),
], ids=["temperature", "top_p", "top_k"])
def test_logprobs_equal_full_forward(qwen2, params):
    model, _ = qwen2
    sampler = make_sampler(model)
    output, _ = sampler.sample(PROMPTS, NEW, params, seed=3)
    greedy, _ = sampler.sample(PROMPTS, NEW, GREEDY)
    assert (output.tokens != greedy.tokens).any()  # it really sampled
    for row, prompt in enumerate(PROMPTS):
        tokens = output.row(row)
        logits = full_logits(model, prompt + tokens)[len(prompt) - 1 : -1]
        picked = np.arange(len(tokens)), np.asarray(tokens)
        raw = np.asarray(jax.nn.log_softmax(logits, axis=-1))
        processed = _filtered_logprobs(logits, params.temperature, params.top_k, params.top_p)
        assert np.isfinite(processed[picked]).all()  # every sample lies in the filtered support
        np.testing.assert_allclose(output.logprobs[row, : len(tokens)], raw[picked], atol=1e-4)
        np.testing.assert_allclose(output.sampling_logprobs[row, : len(tokens)], processed[picked], atol=1e-4)


def test_stops_after_closing_tool_call(hf_checkpoints, tiny_tokenizer):
    """Boost </tool_call> so the model emits it, then check each row stops right after it."""
    model = load_model(hf_checkpoints["qwen2"][0])  # a private copy: its weights get changed
    close = tiny_tokenizer.convert_tokens_to_ids(TOOL_CALL_CLOSE)
    unstopped, _ = make_sampler(model).sample(PROMPTS, NEW, GREEDY)
    favourite = unstopped.tokens[0, 3]  # make </tool_call> a louder copy of a token greedy picks
    embed = model.embed[...]  # tied embeddings: this row is also the output projection
    model.embed[...] = embed.at[close].set(1.5 * embed[favourite])
    reference, _ = make_sampler(model).sample(PROMPTS, NEW, GREEDY)
    stops = stop_sequences(tiny_tokenizer)
    output, _ = make_sampler(model, stops).sample(PROMPTS, NEW, GREEDY)

    assert (reference.tokens == close).any()
    for row in range(len(PROMPTS)):
        ends = [i for i, t in enumerate(reference.row(row)) if [t] in stops]
        expected_length = ends[0] + 1 if ends else NEW
        assert output.lengths[row] == expected_length
        assert output.stopped[row] == bool(ends)
        assert output.row(row) == reference.row(row)[:expected_length]
        assert (output.tokens[row, expected_length:] == 0).all() and (output.logprobs[row, expected_length:] == 0).all()


def test_multi_token_stop_sequence(qwen2):
    model, _ = qwen2
    reference, _ = make_sampler(model).sample(PROMPTS, NEW, GREEDY)
    stop = reference.row(1)[7:9]  # a two-token sequence row 1 produces at steps 7-8
    output, _ = make_sampler(model, [stop]).sample(PROMPTS, NEW, GREEDY)
    for row in range(len(PROMPTS)):
        tokens = reference.row(row)
        ends = [i + 2 for i in range(NEW - 1) if tokens[i : i + 2] == stop]
        expected = ends[0] if ends else NEW
        assert output.lengths[row] == expected and output.row(row) == tokens[:expected]
    assert output.lengths[1] <= 9


def test_extend_equals_generation_from_concatenated_prompt(qwen2):
    model, _ = qwen2
    reference, _ = make_sampler(model).sample(PROMPTS, NEW, GREEDY)
    stop = reference.row(1)[4:5]  # rows stop at different steps, leaving holes in the cache
    sampler = make_sampler(model, [stop])
    first, state = sampler.sample(PROMPTS, NEW, GREEDY)
    observations = [[11, 12, 13], [], [21, 22, 23, 24, 25]]  # row 1 gets nothing and just continues
    state = sampler.extend(state, observations)
    second, state = sampler.generate(state, NEW, GREEDY)

    concatenated = [p + first.row(i) + o for i, (p, o) in enumerate(zip(PROMPTS, observations))]
    fresh, _ = sampler.sample(concatenated, NEW, GREEDY)
    np.testing.assert_array_equal(second.tokens, fresh.tokens)
    np.testing.assert_array_equal(second.lengths, fresh.lengths)
    np.testing.assert_allclose(second.logprobs, fresh.logprobs, atol=1e-4)
    assert len(set(first.lengths.tolist())) > 1


def test_inactive_rows_produce_nothing(qwen2):
    model, _ = qwen2
    sampler = make_sampler(model)
    everyone, _ = sampler.sample(PROMPTS, NEW, GREEDY)
    output, _ = sampler.generate(sampler.prefill(PROMPTS), NEW, GREEDY, active=[True, False, True])
    assert output.lengths.tolist() == [NEW, 0, NEW]
    assert (output.tokens[1] == 0).all() and (output.logprobs[1] == 0).all()
    np.testing.assert_array_equal(output.tokens[[0, 2]], everyone.tokens[[0, 2]])


def test_inverse_cdf_draws_follow_the_distribution():
    vocab, draws = 300, 40000  # 300 is not a multiple of the block size
    logits = np.random.RandomState(0).normal(0, 1.5, vocab).astype(np.float32)
    logits[::7] = -1e30  # filtered tokens
    rows = jnp.broadcast_to(jnp.asarray(logits), (draws, vocab))  # one independent draw per row
    tokens = np.asarray(jax.jit(_inverse_cdf_sample)(rows, jax.random.key(0)))
    frequencies = np.bincount(tokens, minlength=vocab) / draws
    probs = np.asarray(jax.nn.softmax(logits))
    assert frequencies[::7].sum() == 0
    assert 0.5 * np.abs(frequencies - probs).sum() < 0.05  # expected ~0.03 from sampling noise alone
    assert 0.5 * np.abs(frequencies - np.roll(probs, 1)).sum() > 0.3  # an off-by-one would show


@pytest.mark.parametrize("top_p", [0.05, 0.5, 0.9, 0.99])
def test_nucleus_mask_equals_sorted_cumsum_rule(top_p):
    logits = np.random.RandomState(1).normal(0, 2.0, (16, 300)).astype(np.float32)
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))
    expected = np.isfinite(_filtered_logprobs(logits, 1.0, 0, top_p))
    assert (np.asarray(jax.jit(_nucleus_mask, static_argnums=1)(jnp.asarray(probs), top_p)) == expected).all()


def test_repeated_prompts_are_encoded_once_with_the_same_results(qwen2):
    model, _ = qwen2
    sampler = make_sampler(model)
    group = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[2], PROMPTS[1], PROMPTS[0]]  # 3 distinct of 6
    state = sampler.prefill(group)
    assert state.batch_size == 6
    output, _ = sampler.generate(state, NEW, GREEDY)
    alone, _ = sampler.sample(PROMPTS, NEW, GREEDY)
    for row, source in enumerate([0, 1, 0, 2, 1, 0]):
        assert output.row(row) == alone.row(source)
        np.testing.assert_allclose(output.logprobs[row], alone.logprobs[source], atol=1e-5)
    sampled, _ = sampler.generate(sampler.prefill(group), NEW, SamplingParams(temperature=1.0), seed=2)
    assert sampled.row(0) != sampled.row(2) or sampled.row(2) != sampled.row(5)  # rows draw independently
