"""The pure-functional, cache-backed tool environment (Jumanji/gymnax style).

    state, timestep = env.reset(key, params, task_ids)
    state, timestep = env.step(state, calls, params)

`params` (`EnvParams`) holds every device table: the sorted cache hashes, the pre-tokenised
observations (one row per cached response, then one per error message) and per-entry success flags.
`calls` (`TurnCalls`) are the calls of one turn, already parsed and hashed on the host by
`CallEncoder` (the only Python per turn). Everything in `reset` and `step` is jnp: it jit-compiles
once per shape and vmaps over a batch.

A turn may hold up to `max_calls_per_turn` calls. The episode ends when a turn holds no call (the
policy answered in text), after `max_turns` turns, or when the episode's `max_calls` budget is spent
(calls past the budget are not executed and get no observation).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from orchestra.data.types import ToolSpec
from orchestra.env.cache import ApiCache, CacheTable
from orchestra.data.canonical import canonical_key, hash64, split_hash
from orchestra.env.codec import TOOL_RESPONSE_CLOSE, TOOL_RESPONSE_OPEN, ParsedCall, parse_tool_calls
from orchestra.env.validators import ErrorTable, error_row
from orchestra.env.views import ResponseView

Tokenize = Callable[[str], list[int]]


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    max_turns: int = 8
    max_calls: int = 16
    max_calls_per_turn: int = 4

    def __post_init__(self):
        for name in ("max_turns", "max_calls", "max_calls_per_turn"):
            if getattr(self, name) < 1:
                raise ValueError(f"env.{name} must be at least 1, got {getattr(self, name)}")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EnvParams:
    cache: CacheTable
    obs_tokens: jax.Array     # [n_entries + n_errors, max_obs_len] int32, padded with 0
    obs_lengths: jax.Array    # [n_entries + n_errors] int32
    entry_success: jax.Array  # [n_entries] bool


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TurnCalls:
    """The calls of one turn, encoded on the host. Slot i holds a call when `mask[i]`."""
    key_hash: jax.Array   # [C, 2] uint32 canonical-key hash words (zeros when not parsed)
    parsed: jax.Array     # [C] bool: the block parsed into a call
    error_row: jax.Array  # [C] int32 error-table row to answer with on a cache miss
    mask: jax.Array       # [C] bool


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EnvState:
    task_index: jax.Array    # [] int32
    turn: jax.Array          # [] int32, turns taken
    n_calls: jax.Array       # [] int32, calls executed
    call_entry: jax.Array    # [max_calls] int32, cache entry of each executed call, -1 on a miss
    call_row: jax.Array      # [max_calls] int32, observation row answered
    call_success: jax.Array  # [max_calls] bool
    done: jax.Array          # [] bool


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TimeStep:
    obs_tokens: jax.Array   # [C, max_obs_len] int32 observation of each call of the turn
    obs_lengths: jax.Array  # [C] int32, 0 for slots without an executed call
    entry: jax.Array        # [C] int32 cache entry, -1 on a miss
    success: jax.Array      # [C] bool
    executed: jax.Array     # [C] bool: the slot held a call within the budget
    done: jax.Array         # [] bool


class ToolEnv:
    def __init__(self, config: EnvConfig = EnvConfig()):
        self.config = config

    def reset(self, key: jax.Array, params: EnvParams, task_ids: jax.Array) -> tuple[EnvState, TimeStep]:
        """Start an episode on a task drawn uniformly from `task_ids` (a pool of one fixes the task)."""
        task_ids = jnp.atleast_1d(jnp.asarray(task_ids, jnp.int32))
        task = task_ids[jax.random.randint(key, (), 0, task_ids.shape[0])]
        m, c = self.config.max_calls, self.config.max_calls_per_turn
        state = EnvState(task, jnp.int32(0), jnp.int32(0), jnp.full((m,), -1, jnp.int32),
                         jnp.full((m,), -1, jnp.int32), jnp.zeros((m,), bool), jnp.bool_(False))
        width = params.obs_tokens.shape[1]
        timestep = TimeStep(jnp.zeros((c, width), jnp.int32), jnp.zeros((c,), jnp.int32),
                            jnp.full((c,), -1, jnp.int32), jnp.zeros((c,), bool), jnp.zeros((c,), bool),
                            jnp.bool_(False))
        return state, timestep

    def step(self, state: EnvState, calls: TurnCalls, params: EnvParams) -> tuple[EnvState, TimeStep]:
        cfg = self.config
        n_entries = params.entry_success.shape[0]
        # Calls count against the budget in order; nothing runs once the episode is done.
        slot = state.n_calls + jnp.cumsum(calls.mask) - 1
        executed = calls.mask & (slot < cfg.max_calls) & ~state.done
        entry = jnp.where(calls.parsed, params.cache.lookup(calls.key_hash), -1)
        hit = entry >= 0
        row = jnp.where(hit, entry, n_entries + calls.error_row)
        success = hit & params.entry_success[jnp.maximum(entry, 0)]
        obs = params.obs_tokens[row] * executed[:, None]
        lengths = jnp.where(executed, params.obs_lengths[row], 0)

        write = jnp.where(executed, slot, cfg.max_calls)  # out of range -> dropped
        n_calls = state.n_calls + executed.sum(dtype=jnp.int32)
        turn = state.turn + jnp.where(state.done, 0, 1).astype(jnp.int32)
        done = state.done | (turn >= cfg.max_turns) | (n_calls >= cfg.max_calls) | ~calls.mask.any()
        new_state = EnvState(
            state.task_index, turn, n_calls,
            state.call_entry.at[write].set(jnp.where(hit, entry, -1), mode="drop"),
            state.call_row.at[write].set(row, mode="drop"),
            state.call_success.at[write].set(success, mode="drop"),
            done)
        entry_out = jnp.where(executed, entry, -1)
        return new_state, TimeStep(obs, lengths, entry_out, success & executed, executed, done)


class CallEncoder:
    """The host side of a turn: generated text -> `TurnCalls` (numpy) plus the parsed calls."""

    def __init__(self, tools: dict[str, ToolSpec], errors: ErrorTable, max_calls_per_turn: int):
        self.tools, self.errors, self.max_calls_per_turn = tools, errors, max_calls_per_turn

    def encode_parsed(self, parsed: list[ParsedCall]) -> TurnCalls:
        c = self.max_calls_per_turn
        key_hash = np.zeros((c, 2), np.uint32)
        ok = np.zeros((c,), bool)
        rows = np.zeros((c,), np.int32)
        mask = np.zeros((c,), bool)
        for i, p in enumerate(parsed[:c]):  # calls past the per-turn limit are not executed
            mask[i] = True
            rows[i] = error_row(p, self.tools, self.errors)
            if p.ok:
                ok[i] = True
                key_hash[i] = split_hash(hash64(canonical_key(p.call.function, p.call.arguments)))
        return TurnCalls(key_hash, ok, rows, mask)

    def encode_text(self, text: str) -> tuple[TurnCalls, list[ParsedCall]]:
        parsed = parse_tool_calls(text)
        return self.encode_parsed(parsed), parsed


def build_observation_table(texts: list[str], tokenize: Tokenize) -> tuple[np.ndarray, np.ndarray]:
    """Token rows `<tool_response>\\n{body}\\n</tool_response>`, one per text, zero-padded."""
    head, tail = tokenize(TOOL_RESPONSE_OPEN + "\n"), tokenize("\n" + TOOL_RESPONSE_CLOSE)
    rows = [head + tokenize(t) + tail for t in texts]
    width = max(len(r) for r in rows)
    tokens = np.zeros((len(rows), width), np.int32)
    lengths = np.array([len(r) for r in rows], np.int32)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
    return tokens, lengths


def make_env_params(cache: ApiCache, errors: ErrorTable, view: ResponseView, tokenize: Tokenize) -> EnvParams:
    """Render and tokenise every response and error message once, and put the tables on device."""
    texts = [view.render(r) for r in cache.responses]
    texts += [json.dumps(m, ensure_ascii=False) for m in errors.messages]
    tokens, lengths = build_observation_table(texts, tokenize)
    return EnvParams(cache.device_table(), jnp.asarray(tokens), jnp.asarray(lengths),
                     jnp.asarray(cache.successes))
