"""Policy-gradient losses and advantage estimators, masked to the tokens the policy produced.

Shapes: per-token arrays are [batch, time]; `mask` is 1 on policy tokens and 0 on prompt,
observation and padding tokens. Every loss term goes through `aggregate`, so a zero in the mask
removes a token's contribution (and its gradient) exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

AGGREGATIONS = ("token_mean", "seq_mean_token_mean")
KL_ESTIMATORS = ("k1", "k2", "k3")


def aggregate(per_token: jax.Array, mask: jax.Array, mode: str = "token_mean") -> jax.Array:
    """token_mean: mean over every policy token of the batch; seq_mean_token_mean: the mean over
    sequences (with at least one policy token) of each sequence's token mean."""
    mask = mask.astype(per_token.dtype)
    if mode == "token_mean":
        return (per_token * mask).sum() / jnp.maximum(mask.sum(), 1.0)
    if mode == "seq_mean_token_mean":
        tokens = mask.sum(-1)
        seq = (per_token * mask).sum(-1) / jnp.maximum(tokens, 1.0)
        has = (tokens > 0).astype(per_token.dtype)
        return (seq * has).sum() / jnp.maximum(has.sum(), 1.0)
    raise ValueError(f"rl.loss_aggregation must be one of {AGGREGATIONS}, got {mode!r}")


def group_advantages(rewards: jax.Array, normalise_std: bool = True, eps: float = 1e-6) -> jax.Array:
    """GRPO: each reward minus its group's mean, divided by the group's standard deviation.
    `rewards` is [n_groups, group_size]; a group whose rewards are all equal gets advantage 0."""
    centred = rewards - rewards.mean(axis=-1, keepdims=True)
    if not normalise_std:
        return centred
    return centred / (rewards.std(axis=-1, keepdims=True) + eps)


def gae(rewards: jax.Array, values: jax.Array, mask: jax.Array, gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation over the policy tokens of each sequence.

    rewards, values, mask: [batch, time]. Only positions with mask 1 are steps of the chain: a
    step's successor is the next masked position (observation tokens in between are skipped), and
    after the last policy token the value is 0. Returns (advantages, returns), zero off the mask.
    """
    mask_f = mask.astype(values.dtype)

    def backward(carry, xs):
        next_value, next_adv = carry
        r, v, m = xs
        delta = r + gamma * next_value - v
        adv = delta + gamma * lam * next_adv
        # off-mask positions pass the carry through untouched
        new_carry = (jnp.where(m > 0, v, next_value), jnp.where(m > 0, adv, next_adv))
        return new_carry, adv * m

    zeros = jnp.zeros(values.shape[0], values.dtype)
    _, adv = jax.lax.scan(backward, (zeros, zeros), (rewards.T, values.T, mask_f.T), reverse=True)
    adv = adv.T
    return adv, (adv + values) * mask_f


def kl_penalty(logp: jax.Array, ref_logp: jax.Array, estimator: str = "k3") -> jax.Array:
    """Per-token estimate of KL(policy || reference) from samples of the policy.
    k1: log r (unbiased, high variance); k2: (log r)^2 / 2; k3: r' - 1 - log r' with
    r' = ref/policy (unbiased, low variance, always >= 0)."""
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * jnp.square(log_ratio)
    if estimator == "k3":
        return jnp.expm1(-log_ratio) + log_ratio
    raise ValueError(f"rl.kl_estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


def clipped_policy_loss(logp, old_logp, advantages, mask, clip_low: float, clip_high: float,
                        aggregation: str = "token_mean") -> tuple[jax.Array, dict]:
    """PPO's clipped surrogate with separate low and high clip ranges (ratio kept in
    [1 - clip_low, 1 + clip_high]); advantages are per token ([batch, time]) or per sequence ([batch])."""
    if advantages.ndim == logp.ndim - 1:
        advantages = advantages[..., None]
    ratio = jnp.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = jnp.maximum(unclipped, clipped)
    clip_frac = aggregate((clipped > unclipped).astype(logp.dtype), mask, aggregation)
    return aggregate(per_token, mask, aggregation), {"clip_fraction": clip_frac,
                                                     "ratio_mean": aggregate(ratio, mask, aggregation)}


def clipped_value_loss(values, old_values, returns, mask, clip: float, aggregation: str = "token_mean") -> jax.Array:
    """Half squared error of the value head, with the update clipped around the old values."""
    clipped = old_values + jnp.clip(values - old_values, -clip, clip)
    per_token = 0.5 * jnp.maximum(jnp.square(values - returns), jnp.square(clipped - returns))
    return aggregate(per_token, mask, aggregation)


def entropy_from_logits(logits: jax.Array) -> jax.Array:
    """Per-position entropy of the categorical distribution given by `logits` [..., vocab]."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -(jnp.exp(logp) * logp).sum(-1)


def token_log_probs(logits: jax.Array, tokens: jax.Array) -> jax.Array:
    """log softmax(logits)[token] for each position: logits [b, t, v], tokens [b, t]."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
