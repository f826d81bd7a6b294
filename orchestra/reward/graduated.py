"""The graduated reward, vectorised: one jitted, vmapped call scores a batch of encoded rollouts.

    reward_fn = make_reward_fn(RewardConfig())       # compiled once per shape, mode and penalty
    out = reward_fn(calls, gold)                     # EncodedCalls [B, C, ...], EncodedGold [B, S, ...]
    out.reward                                       # [B]; out.ast, out.step_position, ... for logging

The definitions are those of `orchestra.reward.reference` (the specification; tests hold the two
equal). The weights are traced arguments, so configs that differ only in weights (most ablations)
share one compilation. Each pair (call c, gold step s) gets its AST score from slot-by-slot type
comparisons ([C, S, P]) and one comparison of argument hashes; the matchings and the orchestration
claims are short `fori_loop`s over gold steps.
Positions (`call_step`, `step_position`) index the rows of `EncodedCalls`, i.e. the rollout's
`<tool_call>` blocks, dropped ones included.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from orchestra.reward.config import MODES, RewardConfig
from orchestra.reward.encode import EncodedCalls, EncodedGold


class RewardBreakdown(NamedTuple):
    """The reward and its parts (a leading batch axis from the batched function)."""
    reward: jax.Array         # [] float32
    atomic: jax.Array         # [] R_atomic
    orch: jax.Array           # [] R_orch
    binary: jax.Array         # [] the binary baseline, 0 or 1
    ast: jax.Array            # [C] AST score of each call (0 on rows that are not calls)
    semantic: jax.Array       # [C] semantic score of each call
    call_step: jax.Array      # [C] int32 gold step each call was matched to, -1 for none
    step_score: jax.Array     # [S] orchestration score of each gold step
    step_position: jax.Array  # [S] int32 call row that served each gold step, -1 for none


def _lowest_bit_index(bits: jax.Array) -> jax.Array:
    """The index of the lowest set bit of each uint32 (-1 where none is set)."""
    lowest = bits & (~bits + jnp.uint32(1))  # two's complement: only the lowest set bit survives
    return 31 - jax.lax.clz(lowest).astype(jnp.int32)


def _claim_positions(serves: jax.Array, depends: jax.Array, one_to_one: tuple[bool, ...]) -> jax.Array:
    """`reference.claim_positions` for K rules at once (one loop over the gold steps serves all):
    for rule k and each gold step i in order, the first call row p with `serves[k, p, i]` after the
    rows of all the steps i depends on (which must all have one), -1 for none; a rule with
    `one_to_one[k]` lets a row serve one step only. serves: [K, C, S] -> positions [K, S].

    Sets of call rows are the bits of a uint32, so the loop body works on scalars per rule, not
    on [C] vectors (several times faster under vmap); hence at most 32 call rows."""
    n_rules, n_calls, n_steps = serves.shape
    if n_calls > 32:
        raise ValueError(f"the batch reward takes at most 32 calls per rollout, got max_calls={n_calls}")
    row_bits = jnp.left_shift(jnp.uint32(1), jnp.arange(n_calls, dtype=jnp.uint32))
    serve_bits = jnp.sum(jnp.where(serves, row_bits[None, :, None], jnp.uint32(0)), axis=1,
                         dtype=jnp.uint32)                                      # [K, S]; distinct bits: sum = or
    exclusive = jnp.asarray(one_to_one)
    steps = jnp.arange(n_steps)

    def claim(i, carry):
        positions, claimed = carry                                   # [K, S] int32, [K] uint32
        deps = depends[i]                                            # [S]
        deps_served = jnp.all(~deps | (positions >= 0), axis=1)      # [K]
        after = jnp.max(jnp.where(deps, positions, -1), axis=1)      # [K], -1 .. 31
        # rows after `after`: all bits shifted left by after + 1 (a shift by 32 is written out as 0)
        later = jnp.where(after >= 31, jnp.uint32(0),
                          jnp.left_shift(jnp.uint32(0xFFFFFFFF), (after + 1).astype(jnp.uint32)))
        eligible = serve_bits[:, i] & later & jnp.where(exclusive, ~claimed, jnp.uint32(0xFFFFFFFF))
        eligible = jnp.where(deps_served, eligible, jnp.uint32(0))
        found = eligible != 0
        p = _lowest_bit_index(eligible)                              # the first eligible row
        positions = jnp.where(steps == i, jnp.where(found, p, -1)[:, None], positions)
        claimed = claimed | (eligible & (~eligible + jnp.uint32(1)))  # its bit (none when not found)
        return positions, claimed

    init = (jnp.full((n_rules, n_steps), -1, jnp.int32), jnp.zeros((n_rules,), jnp.uint32))
    return jax.lax.fori_loop(0, n_steps, claim, init)[0]


def _strict_matching(same_name: jax.Array, ast_pair: jax.Array) -> jax.Array:
    """One-to-one best fit (`reference.strict_matching`): repeatedly pair the call and step with the
    highest AST score; among equal scores the first in row-major order, i.e. the earlier call, then
    the earlier step. Returns the step of each call, -1 for none."""
    n_calls, n_steps = same_name.shape
    flat = jnp.arange(n_calls * n_steps).reshape(n_calls, n_steps)
    rows, cols = flat // n_steps, flat % n_steps

    def pair(_, carry):
        scores, call_step = carry
        best = jnp.max(scores)
        first = jnp.min(jnp.where(scores == best, flat, n_calls * n_steps))
        c, s = first // n_steps, first % n_steps
        ok = best >= 0
        call_step = jnp.where(ok & (rows[:, 0] == c), s, call_step)
        scores = jnp.where(ok & ((rows == c) | (cols == s)), -1.0, scores)
        return scores, call_step

    init = (jnp.where(same_name, ast_pair, -1.0), jnp.full((n_calls,), -1, jnp.int32))
    return jax.lax.fori_loop(0, min(n_calls, n_steps), pair, init)[1]


class RewardWeights(NamedTuple):
    """The config's weights, passed to the jitted function as traced scalars: configs that differ
    only in weights share one compilation."""
    atomic: float
    orch: float
    binary: float
    name: float
    params: float
    values: float
    params_all: float  # 1.0: params_credit "all", 0.0: "coverage"

    @classmethod
    def from_config(cls, config: RewardConfig) -> RewardWeights:
        # floats always: an int weight (`reward.w_orch=1`) would be a new dtype, hence a new compilation
        return cls(*(float(w) for w in (config.w_atomic, config.w_orch, config.w_binary, config.w_name,
                                        config.w_params, config.w_values, config.params_credit == "all")))


def score_rollout(calls: EncodedCalls, gold: EncodedGold, weights: RewardWeights, mode: str,
                  penalise_extra_calls: bool) -> RewardBreakdown:
    """The reward of one rollout (no batch axis)."""
    same_name = (calls.function[:, None] == gold.function[None, :]) & calls.mask[:, None] & gold.mask[None, :]

    # AST score of every (call, step) pair, from [C, S, P] type comparisons and [C, S] hash comparisons.
    compatible = (calls.type_id[:, None, :] == gold.type_id[None, :, :]) & (gold.type_id[None, :, :] > 0)
    n_gold, n_given = gold.n_params[None, :], calls.n_params[:, None]
    # coverage * type share = (shared / |P*|) * (compatible / shared) = compatible / |P*|
    params_level = jnp.where(n_gold > 0, compatible.sum(-1) / jnp.maximum(n_gold, 1), n_given == 0)
    # all: every gold parameter given with a compatible type, and no other one
    params_level = jnp.where(weights.params_all > 0, (params_level == 1) & (n_given == n_gold), params_level)
    exact = same_name & jnp.all(calls.args_hash[:, None, :] == gold.args_hash[None, :, :], axis=-1)
    ast_pair = jnp.where(same_name, weights.name + weights.params * params_level + weights.values * exact, 0.0)

    # Atomic validity.
    if mode == "paper":  # the first gold step with the call's name
        first = jnp.min(jnp.where(same_name, jnp.arange(same_name.shape[1]), same_name.shape[1]), axis=1)
        call_step = jnp.where(first < same_name.shape[1], first, -1).astype(jnp.int32)
    else:
        call_step = _strict_matching(same_name, ast_pair)
    matched = call_step >= 0
    step_of_call = jnp.maximum(call_step, 0)
    ast = jnp.where(matched, jnp.take_along_axis(ast_pair, step_of_call[:, None], axis=1)[:, 0], 0.0)
    semantic = (matched & gold.success[step_of_call] & calls.success).astype(jnp.float32)
    n_calls = calls.mask.sum()
    atomic = jnp.where(n_calls > 0, (ast.sum() + semantic.sum()) / (2 * jnp.maximum(n_calls, 1)), 0.0)

    # Orchestration consistency (names only) and the binary baseline (exact calls, one to one).
    positions = _claim_positions(jnp.stack([same_name, exact]), gold.depends,
                                 one_to_one=(mode == "strict", True))
    step_position, exact_position = positions[0], positions[1]
    step_score = ((step_position >= 0) & gold.success & gold.mask).astype(jnp.float32)
    n_steps = gold.mask.sum()
    extra_calls = (calls.mask & ~matched).sum() if penalise_extra_calls else 0
    orch = step_score.sum() / jnp.maximum(n_steps + extra_calls, 1)
    binary = ((n_calls == n_steps) & jnp.all((exact_position >= 0) | ~gold.mask)).astype(jnp.float32)

    reward = weights.atomic * atomic + weights.orch * orch + weights.binary * binary
    return RewardBreakdown(reward.astype(jnp.float32), atomic.astype(jnp.float32), orch.astype(jnp.float32),
                           binary, ast.astype(jnp.float32), semantic, call_step, step_score, step_position)


TRACES = {"batch_reward": 0}  # how often the batch reward was traced (each trace is a compilation)


@functools.partial(jax.jit, static_argnames=("mode", "penalise_extra_calls"))
def batch_reward(calls: EncodedCalls, gold: EncodedGold, weights: RewardWeights, mode: str,
                 penalise_extra_calls: bool) -> RewardBreakdown:
    """`score_rollout` vmapped over the leading batch axis, jitted once per shape, mode and penalty."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    TRACES["batch_reward"] += 1
    one = functools.partial(score_rollout, mode=mode, penalise_extra_calls=penalise_extra_calls)
    return jax.vmap(one, in_axes=(0, 0, None))(calls, gold, weights)


def make_reward_fn(config: RewardConfig):
    """The batch reward of a config: (EncodedCalls [B, C, ...], EncodedGold [B, S, ...]) -> RewardBreakdown."""
    return functools.partial(batch_reward, weights=RewardWeights.from_config(config), mode=config.mode,
                             penalise_extra_calls=config.penalise_extra_calls)
