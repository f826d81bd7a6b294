"""Batched sampler: jitted prefill/extend and a jitted `lax.while_loop` decoder over a donated KV cache.

Usage:
    sampler = Sampler(model, stop_sequences=chat.stop_sequences(tokenizer), pad_id=tokenizer.pad_token_id)
    state = sampler.prefill(prompt_token_lists)
    out, state = sampler.generate(state, max_new_tokens=128, params=SamplingParams(temperature=1.0), seed=0)
    state = sampler.extend(state, observation_token_lists)     # multi-turn: the prefix is not recomputed
    out, state = sampler.generate(state, ...)

Each call consumes (donates) the state it is given; use the returned state.

Shapes are bucketed so few programs get compiled: new tokens are left-padded to a power of two
(at least `min_bucket`) and the cache capacity is a multiple of `cache_block` (coarser for long
rows, see `_capacity_bucket`). Attention reads the whole cache every step, so the cache is kept
tight: the decoder runs in chunks of `chunk_steps` and the cache grows just before a chunk needs
room, instead of being sized for the longest possible row up front (on CPU, reading the cache is
about half of a decode step).

Log-probs: `SampleOutput.logprobs` is log pi(token) under the model's unmodified distribution
(softmax of the raw logits, temperature 1, no top-k/top-p): what the RL trainer needs.
`SampleOutput.sampling_logprobs` is the log-prob under the distribution actually sampled from
(after temperature, top-k, top-p); it is 0 for greedy decoding.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from orchestra.model.modeling import KVCache, Transformer

_NEG_INF = -1e30


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 means greedy
    top_k: int = 0  # 0 means no top-k filter
    top_p: float = 1.0  # 1 means no nucleus filter

    def __post_init__(self):
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"invalid sampling params {self}")


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class DeviceState:
    cache: KVCache
    next_positions: jax.Array  # [B] int32: position of each row's next token (= real tokens so far)
    next_logits: jax.Array  # [B, V] float32: logits for each row's next token


@dataclasses.dataclass
class DecodeState:
    device: DeviceState
    length: int  # cache slots written (host copy, so shapes can be chosen without a device sync)

    @property
    def batch_size(self) -> int:
        return self.device.next_positions.shape[0]

    @property
    def capacity(self) -> int:
        return self.device.cache.capacity


@dataclasses.dataclass(frozen=True)
class SampleOutput:
    tokens: np.ndarray  # [B, N] int32; pad_id after a row's end
    logprobs: np.ndarray  # [B, N] float32; log pi(token), raw model at temperature 1; 0 after the end
    sampling_logprobs: np.ndarray  # [B, N] float32; under the processed sampling distribution
    lengths: np.ndarray  # [B] int32; tokens generated per row, a final stop sequence included
    stopped: np.ndarray  # [B] bool; True if the row ended on a stop sequence, False if it ran out of tokens

    def row(self, index: int) -> list[int]:
        return self.tokens[index, : self.lengths[index]].tolist()


def _bucket(length: int, minimum: int) -> int:
    """Smallest power of two >= length (and >= minimum)."""
    return max(minimum, 1 << max(0, length - 1).bit_length())


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _capacity_bucket(needed: int, block: int) -> int:
    """Cache capacity for `needed` slots: a multiple of `block`, with about four sizes per doubling
    beyond that, so long multi-turn rows compile few programs and waste at most ~25% of the reads."""
    return _round_up(needed, max(block, 1 << max(0, needed.bit_length() - 3)))


def _stop_patterns(stop_sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned [N, K] patterns and a mask of the positions that must match. N and K are
    padded to at least 4 so that most stop sets share one compiled decoder; padding rows require
    token -2, which never occurs."""
    if any(len(seq) == 0 for seq in stop_sequences):
        raise ValueError("stop sequences must be non-empty")
    width = max([4] + [len(seq) for seq in stop_sequences])
    patterns = np.full((max(4, len(stop_sequences)), width), -2, np.int32)
    care = np.zeros_like(patterns, dtype=bool)
    care[:, -1] = True
    for row, seq in enumerate(stop_sequences):
        patterns[row, width - len(seq) :] = seq
        care[row, width - len(seq) :] = True
    return patterns, care


def _nucleus_mask(probs: jax.Array, top_p: float, iterations: int = 32) -> jax.Array:
    """Keep token i iff the probability mass of tokens strictly more likely than i is < top_p (the
    usual sorted-cumsum rule), found by bisecting for the probability threshold: a few passes over
    the vocabulary instead of a sort, which on CPU costs more than the rest of a decode step."""

    def mass_above(threshold):
        return jnp.sum(jnp.where(probs > threshold[:, None], probs, 0.0), axis=-1)

    def halve(_, bounds):
        low, high = bounds  # mass_above(low) >= top_p > mass_above(high)
        middle = (low + high) / 2
        below = mass_above(middle) < top_p
        return jnp.where(below, low, middle), jnp.where(below, middle, high)

    low, high = jnp.zeros(probs.shape[:1], probs.dtype), jnp.max(probs, axis=-1)
    low, _ = jax.lax.fori_loop(0, iterations, halve, (low, high))
    # The last kept token's probability is the threshold itself, in (low, high]; tokens at or
    # below `low` have too much mass above them. The most likely token is always kept.
    return probs > low[:, None]


def _last_true(mask: jax.Array) -> jax.Array:
    """Index of the last True along the last axis (0 if none)."""
    return mask.shape[-1] - 1 - jnp.argmax(mask[..., ::-1], axis=-1)


def _inverse_cdf_sample(logits: jax.Array, key: jax.Array) -> jax.Array:
    """One categorical draw per row from one uniform number per row (Gumbel noise over the whole
    vocabulary costs several times more on CPU). The CDF is walked in two levels, blocks then
    tokens within the chosen block, because a cumsum over a large vocabulary is slow on CPU.
    Tokens of probability 0 are never drawn."""
    batch, vocab = logits.shape
    block = max(64, 1 << (int(vocab**0.5) - 1).bit_length())  # about sqrt(vocab)
    probs = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    blocks = jnp.pad(probs, ((0, 0), (0, -vocab % block))).reshape(batch, -1, block)
    block_mass = jnp.sum(blocks, axis=-1)
    block_end = jnp.cumsum(block_mass, axis=-1)
    target = jax.random.uniform(key, (batch,), probs.dtype) * block_end[:, -1]
    # first block ending beyond the target; rounding can overshoot, so never past the last non-empty one
    chosen = jnp.minimum(jnp.sum(block_end <= target[:, None], axis=-1), _last_true(block_mass > 0))
    pick = lambda array: jnp.take_along_axis(array, chosen[:, None], axis=1)[:, 0]
    remaining = target - (pick(block_end) - pick(block_mass))
    within = jnp.take_along_axis(blocks, chosen[:, None, None], axis=1)[:, 0]  # [batch, block]
    offset = jnp.sum(jnp.cumsum(within, axis=-1) <= remaining[:, None], axis=-1)
    offset = jnp.minimum(offset, _last_true(within > 0))
    return (chosen * block + offset).astype(jnp.int32)


def _process_and_sample(logits, key, params: SamplingParams):
    """Sample one token per row. Returns (token, log pi(token) raw, log-prob under sampling dist)."""
    raw_logprobs = jax.nn.log_softmax(logits, axis=-1)
    if params.temperature == 0:
        token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        picked = jnp.take_along_axis(raw_logprobs, token[:, None], axis=-1)[:, 0]
        return token, picked, jnp.zeros_like(picked)

    candidates = logits / params.temperature
    candidate_ids = None  # candidates are the whole vocabulary unless top-k picks some
    if params.top_k:
        candidates, candidate_ids = jax.lax.top_k(candidates, params.top_k)
    if params.top_p < 1:
        keep = _nucleus_mask(jax.nn.softmax(candidates, axis=-1), params.top_p)
        candidates = jnp.where(keep, candidates, _NEG_INF)
    choice = _inverse_cdf_sample(candidates, key)
    token = choice if candidate_ids is None else jnp.take_along_axis(candidate_ids, choice[:, None], axis=-1)[:, 0]
    picked = jnp.take_along_axis(raw_logprobs, token[:, None], axis=-1)[:, 0]
    if params == SamplingParams(temperature=1.0):
        return token, picked, picked  # the sampling distribution is the policy itself
    sampling_logprob = jnp.take_along_axis(jax.nn.log_softmax(candidates, axis=-1), choice[:, None], axis=-1)[:, 0]
    return token, picked, sampling_logprob


class Sampler:
    def __init__(
        self,
        model: Transformer,
        stop_sequences: Sequence[Sequence[int]] = (),
        pad_id: int = 0,
        min_bucket: int = 16,
        cache_block: int = 128,
        chunk_steps: int = 64,
    ):
        self.config = model.config
        self.graphdef, self.params = nnx.split(model)
        self.pad_id = pad_id
        self.min_bucket = min_bucket
        self.cache_block = cache_block
        self.chunk_steps = chunk_steps
        self.stop_sequences = [list(seq) for seq in stop_sequences]
        # Host-made inputs are placed like the jitted outputs they are later mixed with, so the
        # first call and later calls see the same argument shardings and share one compilation.
        self._placement = _replicated_placement(self.params)
        self._stop_patterns, self._stop_care = jax.device_put(_stop_patterns(self.stop_sequences), self._placement)

    def update_params(self, model: Transformer) -> None:
        """Use new weights (e.g. after an RL step); compiled programs are reused."""
        self.params = nnx.state(model)
        self._placement = _replicated_placement(self.params)

    # ----------------------------------------------------------------------------- state management

    def empty_state(self, batch_size: int, capacity: int = 0) -> DecodeState:
        capacity = _capacity_bucket(max(capacity, 1), self.cache_block)
        device = DeviceState(
            cache=KVCache.zeros(self.config, batch_size, capacity),
            next_positions=jnp.zeros((batch_size,), jnp.int32),
            next_logits=jnp.zeros((batch_size, self.config.vocab_size), jnp.float32),
        )
        return DecodeState(jax.device_put(device, self._placement), length=0)

    def _ensure_capacity(self, state: DecodeState, needed: int) -> DecodeState:
        if needed <= state.capacity:
            return state
        return DecodeState(_grow(state.device, _capacity_bucket(needed, self.cache_block)), state.length)

    def prefill(self, prompts: Sequence[Sequence[int]]) -> DecodeState:
        """Encode prompts (token-id lists of any lengths) into a fresh cache.

        Identical prompts (a GRPO group samples one prompt many times) are encoded once and their
        cache rows copied; the distinct prompts are padded to a power-of-two count to bound compiles."""
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("prefill needs a non-empty list of non-empty prompts")
        bucket = _bucket(max(len(p) for p in prompts), self.min_bucket)
        distinct: dict[tuple[int, ...], int] = {}
        source_rows = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
        encoded_rows = _bucket(len(distinct), 1)
        if encoded_rows >= len(prompts):
            return self.extend(self.empty_state(len(prompts), bucket), prompts)
        unique = list(distinct) + [next(iter(distinct))] * (encoded_rows - len(distinct))
        state = self.extend(self.empty_state(encoded_rows, bucket), unique)
        rows = jax.device_put(np.asarray(source_rows, np.int32), self._placement)
        return DecodeState(_take_rows(state.device, rows), state.length)

    def extend(self, state: DecodeState, new_tokens: Sequence[Sequence[int]]) -> DecodeState:
        """Append tokens (e.g. tool observations) to each row, reusing the cached prefix.
        A row may get no tokens; it then keeps its pending next-token logits."""
        if len(new_tokens) != state.batch_size:
            raise ValueError(f"extend got {len(new_tokens)} rows for a batch of {state.batch_size}")
        longest = max(len(row) for row in new_tokens)
        if longest == 0:
            return state
        bucket = _bucket(longest, self.min_bucket)
        tokens = np.full((state.batch_size, bucket), self.pad_id, np.int32)
        real = np.zeros((state.batch_size, bucket), np.int32)
        for row, ids in enumerate(new_tokens):  # left padding: each row's last token sits in the last slot
            if len(ids):
                tokens[row, bucket - len(ids) :] = ids
                real[row, bucket - len(ids) :] = 1
        state = self._ensure_capacity(state, state.length + bucket)
        tokens, real = jax.device_put((tokens, real), self._placement)
        device = _extend(self.graphdef, self.params, state.device, tokens, real)
        return DecodeState(device, state.length + bucket)

    # ----------------------------------------------------------------------------------- generation

    def generate(
        self,
        state: DecodeState,
        max_new_tokens: int,
        params: SamplingParams = SamplingParams(),
        seed: int | jax.Array = 0,
        active: Sequence[bool] | None = None,
    ) -> tuple[SampleOutput, DecodeState]:
        """Sample up to max_new_tokens per row; a row stops after any stop sequence.
        `active`: rows to generate for (others produce nothing); default all."""
        batch = state.batch_size
        done = np.zeros(batch, bool) if active is None else ~np.asarray(active, bool)
        if done.shape != (batch,):
            raise ValueError(f"active has shape {done.shape}, batch is {batch}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
        key = jax.random.key(seed) if isinstance(seed, int) else seed
        history = np.full((batch, self._stop_patterns.shape[1]), -1, np.int32)
        history, done = jax.device_put((history, done), self._placement)

        chunks = []
        while sum(c["tokens"].shape[1] for c in chunks) < max_new_tokens:
            produced = sum(c["tokens"].shape[1] for c in chunks)
            steps = min(self.chunk_steps, max_new_tokens - produced)
            state = self._ensure_capacity(state, state.length + steps)
            chunk_key = jax.device_put(jax.random.fold_in(key, produced), self._placement)
            device, history, done, chunk = _decode_chunk(
                self.graphdef, self.params, state.device, history, done, chunk_key,
                self._stop_patterns, self._stop_care, steps, params, self.pad_id,
            )
            chunk = jax.device_get(chunk)  # one host sync per chunk
            state = DecodeState(device, state.length + int(chunk["steps_taken"]))
            chunks.append(chunk)
            if chunk["steps_taken"] < steps:  # every row finished early
                break

        def joined(name, fill):
            array = np.concatenate([c[name] for c in chunks], axis=1)
            return np.pad(array, ((0, 0), (0, max_new_tokens - array.shape[1])), constant_values=fill)

        output = SampleOutput(
            tokens=joined("tokens", self.pad_id),
            logprobs=joined("logprobs", 0.0),
            sampling_logprobs=joined("sampling_logprobs", 0.0),
            lengths=np.sum([c["lengths"] for c in chunks], axis=0).astype(np.int32),
            stopped=np.any([c["stopped"] for c in chunks], axis=0),
        )
        return output, state

    def sample(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        params: SamplingParams = SamplingParams(),
        seed: int | jax.Array = 0,
    ) -> tuple[SampleOutput, DecodeState]:
        """prefill + generate."""
        state = self.prefill(prompts)
        return self.generate(state, max_new_tokens, params, seed)


# ----------------------------------------------------------------------------------- jitted pieces


def _replicated_placement(params) -> jax.sharding.Sharding:
    """Replicated over the mesh the parameters live on (or their single device)."""
    sharding = jax.tree.leaves(params)[0].sharding
    if isinstance(sharding, jax.sharding.NamedSharding):
        return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    return jax.sharding.SingleDeviceSharding(next(iter(sharding.device_set)))


@functools.partial(jax.jit, static_argnums=(1,))  # no donation: the grown arrays cannot reuse the old buffers
def _grow(device: DeviceState, capacity: int) -> DeviceState:
    extra = capacity - device.cache.capacity
    cache = KVCache(
        keys=[jnp.pad(k, [(0, 0), (0, 0), (0, 0), (0, extra)]) for k in device.cache.keys],
        values=[jnp.pad(v, [(0, 0), (0, 0), (0, extra), (0, 0)]) for v in device.cache.values],
        segment_ids=jnp.pad(device.cache.segment_ids, [(0, 0), (0, extra)]),
        length=device.cache.length,
    )
    return dataclasses.replace(device, cache=cache)


@jax.jit
def _take_rows(device: DeviceState, rows: jax.Array) -> DeviceState:
    take = lambda array: jnp.take(array, rows, axis=0)
    cache = device.cache
    return DeviceState(
        cache=KVCache(
            [take(k) for k in cache.keys], [take(v) for v in cache.values], take(cache.segment_ids), cache.length
        ),
        next_positions=take(device.next_positions),
        next_logits=take(device.next_logits),
    )


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(2,))
def _extend(graphdef, params, device: DeviceState, tokens, real) -> DeviceState:
    model = nnx.merge(graphdef, params)
    positions = jnp.maximum(device.next_positions[:, None] + jnp.cumsum(real, axis=1) - 1, 0)
    hidden, cache = model.hidden_states(tokens, positions, real, device.cache)
    has_new = real[:, -1] == 1
    return DeviceState(
        cache=cache,
        next_positions=device.next_positions + real.sum(axis=1),
        next_logits=jnp.where(has_new[:, None], model.logits(hidden[:, -1]), device.next_logits),
    )


@functools.partial(jax.jit, static_argnums=(0, 8, 9, 10), donate_argnums=(2, 3, 4))
def _decode_chunk(graphdef, params, device, history, done, key, stop_patterns, stop_care, steps, sampling, pad_id):
    """Up to `steps` decode steps (fewer once every row is done).
    Each step samples from the pending logits, records the token, then feeds it to the model."""
    model = nnx.merge(graphdef, params)
    batch = done.shape[0]
    start_done = done

    def cond(carry):
        step, _, _, done, _ = carry
        return (step < steps) & ~jnp.all(done)

    def body(carry):
        step, device, history, done, out = carry
        step_key = jax.random.fold_in(key, step)
        token, logprob, sampling_logprob = _process_and_sample(device.next_logits, step_key, sampling)
        active = ~done
        token = jnp.where(active, token, pad_id)
        record = lambda buffer, values: jax.lax.dynamic_update_slice(buffer, values[:, None], (0, step))
        out = dict(
            tokens=record(out["tokens"], token),
            logprobs=record(out["logprobs"], jnp.where(active, logprob, 0.0)),
            sampling_logprobs=record(out["sampling_logprobs"], jnp.where(active, sampling_logprob, 0.0)),
            lengths=out["lengths"] + active,
        )
        history = jnp.concatenate([history[:, 1:], token[:, None]], axis=1)  # last K tokens of this call
        matches = (history[:, None, :] == stop_patterns[None]) | ~stop_care[None]
        stopped = jnp.any(jnp.all(matches, axis=-1), axis=-1) & active

        # Finished rows feed padding (segment 0), which is never attended to.
        hidden, cache = model.hidden_states(
            token[:, None], device.next_positions[:, None], active[:, None].astype(jnp.int32), device.cache
        )
        device = DeviceState(
            cache=cache,
            next_positions=device.next_positions + active,
            next_logits=jnp.where(active[:, None], model.logits(hidden[:, 0]), device.next_logits),
        )
        return step + 1, device, history, done | stopped, out

    out = dict(
        tokens=jnp.full((batch, steps), pad_id, jnp.int32),
        logprobs=jnp.zeros((batch, steps), jnp.float32),
        sampling_logprobs=jnp.zeros((batch, steps), jnp.float32),
        lengths=jnp.zeros((batch,), jnp.int32),
    )
    steps_taken, device, history, done, out = jax.lax.while_loop(cond, body, (jnp.int32(0), device, history, done, out))
    return device, history, done, dict(out, stopped=done & ~start_done, steps_taken=steps_taken)
