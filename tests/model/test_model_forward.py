"""Forward-pass invariants: KV-cached decoding, left padding and packed segments equal plain forwards."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from orchestra.model.loader import load_model
from orchestra.model.modeling import KVCache


@nnx.jit
def forward(model, tokens, positions, segment_ids):
    return model(tokens, positions, segment_ids)[0]


@nnx.jit
def cached_forward(model, tokens, positions, segment_ids, cache):
    return model(tokens, positions, segment_ids, cache)


WIDTH = 32


def plain_logits(model, row) -> np.ndarray:
    """One unpadded sequence; right padding to WIDTH (never attended to by earlier tokens) keeps
    a single compiled shape."""
    tokens = jnp.asarray([list(row) + [0] * (WIDTH - len(row))])
    segments = jnp.asarray([[1] * len(row) + [0] * (WIDTH - len(row))])
    return np.asarray(forward(model, tokens, jnp.arange(WIDTH)[None], segments))[0, : len(row)]


# qwen2 (the main target) and llama3 (scaled RoPE); qwen3's q/k norms are checked by the loading tests
@pytest.fixture(scope="module", params=["qwen2", "llama3"])
def model(request, hf_checkpoints):
    return load_model(hf_checkpoints[request.param][0])


def test_cached_decoding_equals_full_forward(model):
    rows = np.random.RandomState(1).randint(0, 320, (2, 24))
    full = np.stack([plain_logits(model, row) for row in rows])
    # positions equal slots here; the left-padding test covers positions that differ from slots
    cache = KVCache.zeros(model.config, batch=2, capacity=32)
    pieces = []
    # two chunks of 8 (the second appended to a non-empty cache), then 8 single-token steps
    for start, stop in [(0, 8), (8, 16)] + [(i, i + 1) for i in range(16, 24)]:
        tokens = jnp.asarray(rows[:, start:stop])
        positions = jnp.broadcast_to(jnp.arange(start, stop), tokens.shape)
        logits, cache = cached_forward(model, tokens, positions, jnp.ones_like(tokens), cache)
        pieces.append(np.asarray(logits))
    assert int(cache.length) == 24
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-4, rtol=0)


def test_left_padded_batch_equals_unpadded_rows(model):
    state = np.random.RandomState(2)
    rows = [state.randint(0, 320, n).tolist() for n in (5, 17, 11)]
    width = WIDTH
    tokens = np.zeros((1, width), np.int32).repeat(3, 0)
    segments = np.zeros_like(tokens)
    positions = np.zeros_like(tokens)
    for i, row in enumerate(rows):
        tokens[i, width - len(row):] = row
        segments[i, width - len(row):] = 1
        positions[i, width - len(row):] = np.arange(len(row))
    logits = np.asarray(forward(model, jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(segments)))
    assert np.isfinite(logits).all()
    for i, row in enumerate(rows):
        np.testing.assert_allclose(logits[i, width - len(row):], plain_logits(model, row), atol=1e-4, rtol=0)


def test_packed_segments_equal_separate_rows(model):
    state = np.random.RandomState(3)
    first, second = state.randint(0, 320, 9).tolist(), state.randint(0, 320, 6).tolist()
    pad = WIDTH - 15
    tokens = jnp.asarray([first + second + [0] * pad])
    segments = jnp.asarray([[1] * 9 + [2] * 6 + [0] * pad])
    positions = jnp.asarray([list(range(9)) + list(range(6)) + [0] * pad])
    logits = np.asarray(forward(model, tokens, positions, segments))[0]
    np.testing.assert_allclose(logits[:9], plain_logits(model, first), atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits[9:15], plain_logits(model, second), atol=1e-4, rtol=0)


def test_mis_shaped_inputs_are_named(model):
    tokens = jnp.zeros((2, 5), jnp.int32)
    with pytest.raises(ValueError, match=r"positions has shape \(2, 4\), tokens have \(2, 5\)"):
        model(tokens, jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match=r"tokens must be \[batch, steps\]"):
        model(jnp.zeros((5,), jnp.int32), jnp.zeros((5,), jnp.int32))
    with pytest.raises(ValueError, match="cache holds 3 rows, tokens have 2"):
        model(tokens, jnp.zeros((2, 5), jnp.int32), cache=KVCache.zeros(model.config, batch=3, capacity=8))
