"""Flax NNX decoder for Qwen2/Qwen2.5, Qwen3 and Llama 3, numerically matching transformers.

Attention masking uses one mechanism everywhere: `segment_ids` [B, T] (int, 0 = padding). A query
attends to a key iff the key is at an earlier or equal slot, has the same segment id, and is not
padding. An HF-style attention mask (1 real / 0 pad) is a valid `segment_ids`. Positions are passed
explicitly, so left padding only needs positions that start at 0 on each row's first real token.

The KV cache holds `capacity` slots per row, written left to right for all rows at once (`length`
slots are used). Slots that hold padding keep segment id 0 and are never attended to, so rows of
different lengths share one cache without gathers.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from orchestra.model.config import ModelConfig

_MASKED = -1e30  # finite so a fully masked (padding) query row gives no NaN


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class KVCache:
    # Layouts make both attention products plain batched matmuls, so the cache is never transposed
    # (on CPU a transposed read of the keys costs more than the rest of a decode step).
    keys: list[jax.Array]  # per layer [B, num_kv_heads, head_dim, capacity]
    values: list[jax.Array]  # per layer [B, num_kv_heads, capacity, head_dim]
    segment_ids: jax.Array  # [B, capacity] int32; 0 = empty slot or padding
    length: jax.Array  # int32 scalar: slots written so far (same for every row)

    @property
    def capacity(self) -> int:
        return self.segment_ids.shape[1]

    @classmethod
    def zeros(cls, config: ModelConfig, batch: int, capacity: int) -> "KVCache":
        key_shape = (batch, config.num_kv_heads, config.resolved_head_dim, capacity)
        value_shape = (batch, config.num_kv_heads, capacity, config.resolved_head_dim)
        return cls(
            keys=[jnp.zeros(key_shape, config.jax_dtype) for _ in range(config.num_layers)],
            values=[jnp.zeros(value_shape, config.jax_dtype) for _ in range(config.num_layers)],
            segment_ids=jnp.zeros((batch, capacity), jnp.int32),
            length=jnp.zeros((), jnp.int32),
        )


def rope_inverse_frequencies(config: ModelConfig) -> np.ndarray:
    """Inverse frequencies in float32, computed as transformers does (incl. llama3 scaling)."""
    dim = config.resolved_head_dim
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    inv_freq = (1.0 / (np.float32(config.rope_theta) ** exponents)).astype(np.float32)
    if config.rope_type == "default":
        return inv_freq
    # llama3: keep high frequencies, divide low ones by `factor`, interpolate in between.
    factor, low, high = config.rope_factor, config.rope_low_freq_factor, config.rope_high_freq_factor
    old_context = config.rope_original_max_position
    low_freq_wavelen, high_freq_wavelen = old_context / low, old_context / high
    wavelen = 2 * np.pi / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return np.where(is_medium, smoothed, scaled).astype(np.float32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Half-split (rotate_half) rotary embedding in float32. x [B,T,H,D]; cos, sin [B,T,1,D/2]."""
    x32 = x.astype(jnp.float32)
    first, second = jnp.split(x32, 2, axis=-1)
    rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
    return rotated.astype(x.dtype)


def _normal(rngs: nnx.Rngs, shape: tuple[int, ...], dtype) -> jax.Array:
    return (0.02 * jax.random.normal(rngs.params(), shape, jnp.float32)).astype(dtype)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, dtype):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return self.scale[...] * normed.astype(x.dtype)  # same order of casts as transformers


class Linear(nnx.Module):
    """y = x @ kernel (+ bias); kernel is [in, out], the transpose of torch's weight."""

    def __init__(self, in_features: int, out_features: int, use_bias: bool, dtype, rngs: nnx.Rngs):
        self.kernel = nnx.Param(_normal(rngs, (in_features, out_features), dtype))
        self.bias = nnx.Param(jnp.zeros((out_features,), dtype)) if use_bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x @ self.kernel[...]
        return y + self.bias[...] if self.bias is not None else y


class Attention(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, hd, dtype = config.hidden_size, config.resolved_head_dim, config.jax_dtype
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, hd
        self.q_proj = Linear(d, config.num_heads * hd, config.qkv_bias, dtype, rngs)
        self.k_proj = Linear(d, config.num_kv_heads * hd, config.qkv_bias, dtype, rngs)
        self.v_proj = Linear(d, config.num_kv_heads * hd, config.qkv_bias, dtype, rngs)
        self.o_proj = Linear(config.num_heads * hd, d, False, dtype, rngs)
        self.q_norm = RMSNorm(hd, config.rms_norm_eps, dtype) if config.qk_norm else None
        self.k_norm = RMSNorm(hd, config.rms_norm_eps, dtype) if config.qk_norm else None

    def __call__(self, x, cos, sin, mask, cache_kv=None, cache_length=None):
        """x [B,T,d]; mask [B,T,S] bool. With cache_kv=(keys, values) the new keys and values are
        written at slots [cache_length, cache_length+T) and attention runs over all S cache slots."""
        batch, steps, _ = x.shape
        groups = self.num_heads // self.num_kv_heads
        q = self.q_proj(x).reshape(batch, steps, self.num_heads, self.head_dim)
        k = self.k_proj(x).reshape(batch, steps, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x).reshape(batch, steps, self.num_kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # Cache layouts (see KVCache): keys [B, KvH, D, S], values [B, KvH, S, D].
        k, v = k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3)
        q = q.reshape(batch, steps, self.num_kv_heads, groups, self.head_dim).transpose(0, 2, 3, 1, 4)
        if cache_kv is not None:
            k = jax.lax.dynamic_update_slice(cache_kv[0], k, (0, 0, 0, cache_length))
            v = jax.lax.dynamic_update_slice(cache_kv[1], v, (0, 0, cache_length, 0))
        scores = jnp.einsum("bkgtd,bkds->bkgts", q, k, preferred_element_type=jnp.float32)
        scores = jnp.where(mask[:, None, None], scores * (self.head_dim**-0.5), _MASKED)
        probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        out = jnp.einsum("bkgts,bksd->bkgtd", probs, v)
        out = out.transpose(0, 3, 1, 2, 4).reshape(batch, steps, self.num_heads * self.head_dim)
        return self.o_proj(out), (k, v)


class MLP(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, f, dtype = config.hidden_size, config.intermediate_size, config.jax_dtype
        self.gate_proj = Linear(d, f, False, dtype, rngs)
        self.up_proj = Linear(d, f, False, dtype, rngs)
        self.down_proj = Linear(f, d, False, dtype, rngs)

    def __call__(self, x):
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        dtype = config.jax_dtype
        self.input_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)
        self.attn = Attention(config, rngs)
        self.post_attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)
        self.mlp = MLP(config, rngs)

    def __call__(self, x, cos, sin, mask, cache_kv=None, cache_length=None):
        attended, new_kv = self.attn(self.input_norm(x), cos, sin, mask, cache_kv, cache_length)
        x = x + attended
        return x + self.mlp(self.post_attn_norm(x)), new_kv


class Transformer(nnx.Module):
    """Causal LM. `model(tokens, positions, segment_ids, cache) -> (logits float32 [B,T,V], cache)`."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.config = config
        dtype = config.jax_dtype
        self.embed = nnx.Param(_normal(rngs, (config.vocab_size, config.hidden_size), dtype))
        self.layers = nnx.List([DecoderLayer(config, rngs) for _ in range(config.num_layers)])
        self.final_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)
        if config.tie_word_embeddings:
            self.lm_head = None
        else:
            self.lm_head = nnx.Param(_normal(rngs, (config.hidden_size, config.vocab_size), dtype))

    def __call__(self, tokens, positions, segment_ids=None, cache: KVCache | None = None):
        hidden, cache = self.hidden_states(tokens, positions, segment_ids, cache)
        return self.logits(hidden), cache

    def hidden_states(self, tokens, positions, segment_ids=None, cache: KVCache | None = None):
        """Final-norm hidden states [B,T,d] (and the updated cache, or None without one)."""
        tokens = jnp.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be [batch, steps], got shape {tokens.shape}")
        batch, steps = tokens.shape
        if segment_ids is None:
            segment_ids = jnp.ones((batch, steps), jnp.int32)
        segment_ids = jnp.asarray(segment_ids, jnp.int32)
        for name, array in (("positions", positions), ("segment_ids", segment_ids)):
            if jnp.shape(array) != tokens.shape:
                raise ValueError(f"{name} has shape {jnp.shape(array)}, tokens have {tokens.shape}")
        if cache is not None and cache.segment_ids.shape[0] != batch:
            raise ValueError(f"cache holds {cache.segment_ids.shape[0]} rows, tokens have {batch}")

        if cache is None:
            key_segments, key_slots, query_slots = segment_ids, jnp.arange(steps), jnp.arange(steps)
        else:
            key_segments = jax.lax.dynamic_update_slice(cache.segment_ids, segment_ids, (0, cache.length))
            key_slots = jnp.arange(cache.capacity)
            query_slots = cache.length + jnp.arange(steps)
        mask = (
            (key_slots[None, None, :] <= query_slots[None, :, None])
            & (key_segments[:, None, :] == segment_ids[:, :, None])
            & (key_segments[:, None, :] != 0)
        )

        inv_freq = jnp.asarray(rope_inverse_frequencies(self.config))
        angles = jnp.asarray(positions, jnp.float32)[..., None] * inv_freq  # [B,T,D/2]
        cos, sin = jnp.cos(angles)[:, :, None, :], jnp.sin(angles)[:, :, None, :]

        x = jnp.take(self.embed[...], tokens, axis=0)
        new_keys, new_values = [], []
        for index, layer in enumerate(self.layers):
            cache_kv = None if cache is None else (cache.keys[index], cache.values[index])
            x, (k, v) = layer(x, cos, sin, mask, cache_kv, None if cache is None else cache.length)
            new_keys.append(k)
            new_values.append(v)
        x = self.final_norm(x)
        if cache is None:
            return x, None
        return x, KVCache(new_keys, new_values, key_segments, cache.length + steps)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """float32 logits from final hidden states."""
        if self.lm_head is None:
            return jnp.einsum("...d,vd->...v", hidden, self.embed[...], preferred_element_type=jnp.float32)
        return jnp.einsum("...d,dv->...v", hidden, self.lm_head[...], preferred_element_type=jnp.float32)


def init_model(config: ModelConfig, seed: int = 0) -> Transformer:
    """A randomly initialised model (tests, benchmarks, training from scratch)."""
    return Transformer(config, nnx.Rngs(params=seed))


def abstract_model(config: ModelConfig) -> Transformer:
    """The model with shapes and dtypes only; no memory is allocated."""
    return nnx.eval_shape(lambda: Transformer(config, nnx.Rngs(params=0)))
