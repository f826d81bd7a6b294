"""One call that builds everything the environment needs from an ecosystem, and batched replay."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from orchestra.data.booking import Ecosystem
from orchestra.data.types import Call, CacheEntry, ToolSpec
from orchestra.env.cache import ApiCache
from orchestra.env.codec import ParsedCall
from orchestra.env.env import CallEncoder, EnvConfig, EnvParams, Tokenize, ToolEnv, TurnCalls, make_env_params
from orchestra.env.validators import ErrorTable
from orchestra.env.views import ResponseView


def byte_tokenize(text: str) -> list[int]:
    """A stand-in tokenizer (UTF-8 bytes) for code paths that need token ids but no model."""
    return list(text.encode("utf-8"))


@dataclasses.dataclass
class Environment:
    """The environment with its tables: what rollouts, replay and synthesis use together."""
    env: ToolEnv
    params: EnvParams
    encoder: CallEncoder
    cache: ApiCache
    errors: ErrorTable
    tools: dict[str, ToolSpec]
    view: ResponseView

    @classmethod
    def build(cls, tools: dict[str, ToolSpec], entries: list[CacheEntry], tokenize: Tokenize = byte_tokenize,
              config: EnvConfig = EnvConfig(), view: ResponseView = ResponseView(),
              on_conflict: str = "error") -> "Environment":
        cache = ApiCache.from_entries(entries, on_conflict)
        errors = ErrorTable(tools)
        params = make_env_params(cache, errors, view, tokenize)
        return cls(ToolEnv(config), params, CallEncoder(tools, errors, config.max_calls_per_turn),
                   cache, errors, tools, view)

    @classmethod
    def from_ecosystem(cls, eco: Ecosystem, **kwargs) -> "Environment":
        return cls.build(eco.tools, eco.cache_entries, **kwargs)

    def replay(self, traces: list[list[Call]]) -> np.ndarray:
        """Run each trace (one call per turn) through the jitted environment, all traces as one
        vmapped batch; returns [n_traces, max_len] success flags (False past a trace's end)."""
        if not traces:
            return np.zeros((0, 0), bool)
        n, steps = len(traces), max(len(t) for t in traces)
        c = self.env.config.max_calls_per_turn
        per_turn = []
        for k in range(steps):
            encoded = [self.encoder.encode_parsed([ParsedCall("", t[k])] if k < len(t) else [])
                       for t in traces]
            per_turn.append(jax.tree.map(lambda *xs: np.stack(xs), *encoded))
        calls = jax.tree.map(lambda *xs: np.stack(xs, axis=1), *per_turn)  # [n, steps, C, ...]
        success = _replay_batch(self.env, self.params, calls, n)
        return np.asarray(success)[:, :, 0] if c else np.zeros((n, steps), bool)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _replay_batch(env: ToolEnv, params: EnvParams, calls: TurnCalls, n: int) -> jax.Array:
    def one(calls_of_trace):
        state, _ = env.reset(jax.random.key(0), params, jnp.zeros((1,), jnp.int32))

        def body(state, turn_calls):
            state, ts = env.step(state, turn_calls, params)
            return state, ts.success
        _, success = jax.lax.scan(body, state, calls_of_trace)
        return success
    return jax.vmap(one)(calls)
