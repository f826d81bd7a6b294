"""The learner: the policy (and, for PPO, a value head), its frozen reference, and the update step.

One RL update takes a padded batch of rollouts ([batch, time] arrays) and runs `epochs` passes of
minibatch steps of the clipped objective with a KL penalty to the frozen reference and an entropy
bonus, all masked to the policy's own tokens. GRPO gets one advantage per sequence (group-relative);
PPO gets per-token advantages from GAE over a value head.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from orchestra.model.modeling import KVCache, Transformer
from orchestra.rl.losses import (aggregate, clipped_policy_loss, clipped_value_loss, entropy_from_logits, gae,
                                 kl_penalty, token_log_probs)

ALGORITHMS = ("grpo", "ppo")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    algorithm: str = "grpo"
    clip_low: float = 0.2
    clip_high: float = 0.28
    kl_coef: float = 0.01
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0
    aggregation: str = "token_mean"
    # PPO only
    gamma: float = 1.0
    lam: float = 0.95
    value_coef: float = 0.5
    value_clip: float = 0.2

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"rl.algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.clip_low < 0 or self.clip_high < 0 or self.kl_coef < 0 or self.entropy_coef < 0:
            raise ValueError("rl: clip_low, clip_high, kl_coef and entropy_coef must not be negative")


class ValueHead(nnx.Module):
    def __init__(self, hidden_size: int, rngs: nnx.Rngs):
        self.proj = nnx.Linear(hidden_size, 1, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, hidden):
        return self.proj(hidden.astype(jnp.float32))[..., 0]


class Learner(nnx.Module):
    """What the optimizer updates: the policy, plus a value head for PPO."""

    def __init__(self, policy: Transformer, with_value_head: bool, seed: int = 0):
        self.policy = policy
        self.value_head = ValueHead(policy.config.hidden_size, nnx.Rngs(seed)) if with_value_head else None


def make_optimizer(learner: Learner, lr: float, warmup_steps: int, total_steps: int, weight_decay: float,
                   max_grad_norm: float, b2: float = 0.999) -> nnx.Optimizer:
    """AdamW with gradient clipping and a learning rate that rises linearly over `warmup_steps`
    updates (from lr / warmup_steps, so the first update already moves) and then decays by cosine
    to lr / 10 at `total_steps` updates."""
    warmup = max(warmup_steps, 1)
    schedule = optax.warmup_cosine_decay_schedule(lr / warmup, lr, warmup, max(total_steps, warmup + 1),
                                                  end_value=lr * 0.1)
    tx = optax.chain(optax.clip_by_global_norm(max_grad_norm),
                     optax.adamw(schedule, b2=b2, weight_decay=weight_decay))
    return nnx.Optimizer(learner, tx, wrt=nnx.Param)


def _positions(part: dict):
    """RoPE positions of a part's input tokens: from 0, or from each row's `start` (a part after a
    shared prefix)."""
    steps = jnp.arange(part["tokens"].shape[1] - 1)
    if "start" in part:
        return part["start"][:, None] + steps
    return jnp.broadcast_to(steps, (part["tokens"].shape[0], steps.shape[0]))


def part_hidden_states(policy: Transformer, part: dict):
    """Final hidden states of a part's input tokens (`tokens[:, :-1]`), [rows, time - 1].

    A part with `prefix_tokens` [groups, width] (a group's shared prompt, right-padded with segment 0)
    is the rows' continuations after that prompt: the prompt is encoded once per group into a cache
    that the group's rows (consecutive, rows / groups each) attend to, and gradients flow through it.
    Each row's logits equal those of one pass over its whole sequence."""
    tokens, segments = part["tokens"][:, :-1], part["segment_ids"][:, :-1]
    if "prefix_tokens" not in part:
        return policy.hidden_states(tokens, _positions(part), segments)[0]
    prefix = part["prefix_tokens"]
    groups, width = prefix.shape
    cache = KVCache.zeros(policy.config, groups, width + tokens.shape[1])
    _, cache = policy.hidden_states(prefix, jnp.broadcast_to(jnp.arange(width), prefix.shape),
                                    part["prefix_segment_ids"], cache)
    per_group = lambda x: jnp.repeat(x, tokens.shape[0] // groups, axis=0)
    cache = KVCache([per_group(k) for k in cache.keys], [per_group(v) for v in cache.values],
                    per_group(cache.segment_ids), cache.length)
    return policy.hidden_states(tokens, _positions(part), segments, cache)[0]


@nnx.jit
def sequence_log_probs(policy: Transformer, part: dict):
    """log pi(token_t | prefix) for t >= 1 of a part's tokens, as [batch, time - 1]."""
    return token_log_probs(policy.logits(part_hidden_states(policy, part)), part["tokens"][:, 1:])


@nnx.jit
def sequence_values(learner: Learner, part: dict):
    return learner.value_head(part_hidden_states(learner.policy, part))


def loss_fn(learner: Learner, batch: dict, cfg: LossConfig):
    tokens, mask = batch["tokens"], batch["loss_mask"][:, 1:]
    hidden = part_hidden_states(learner.policy, batch)
    logits = learner.policy.logits(hidden)
    logp = token_log_probs(logits, tokens[:, 1:])
    pg, stats = clipped_policy_loss(logp, batch["old_logp"], batch["advantages"], mask, cfg.clip_low,
                                    cfg.clip_high, cfg.aggregation)
    kl = aggregate(kl_penalty(logp, batch["ref_logp"], cfg.kl_estimator), mask, cfg.aggregation)
    # A term with coefficient 0 is only reported: no gradient through it (the entropy's is a full
    # pass over the vocabulary per token).
    entropy = aggregate(entropy_from_logits(logits if cfg.entropy_coef else jax.lax.stop_gradient(logits)), mask,
                        cfg.aggregation)
    if not cfg.kl_coef:
        kl = jax.lax.stop_gradient(kl)
    loss = pg + cfg.kl_coef * kl - cfg.entropy_coef * entropy
    metrics = {"policy_loss": pg, "kl": kl, "entropy": entropy, **stats}
    if cfg.algorithm == "ppo":
        values = learner.value_head(hidden)
        value_loss = clipped_value_loss(values, batch["old_values"], batch["returns"], mask, cfg.value_clip,
                                        cfg.aggregation)
        loss = loss + cfg.value_coef * value_loss
        metrics["value_loss"] = value_loss
    return loss, metrics


def policy_weight(loss_mask, aggregation: str):
    """A part's weight in the minibatch's loss: its policy tokens (token mean) or its sequences with
    policy tokens (sequence mean of token means)."""
    tokens_per_row = loss_mask[:, 1:].sum(-1).astype(jnp.float32)
    return tokens_per_row.sum() if aggregation == "token_mean" else (tokens_per_row > 0).sum().astype(jnp.float32)


@nnx.jit(static_argnums=(2,))
def _part_gradients(learner: Learner, part: dict, cfg: LossConfig):
    (loss, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(learner, part, cfg)
    weight = policy_weight(part["loss_mask"], cfg.aggregation)
    return jax.tree.map(lambda x: x * weight, (dict(metrics, loss=loss), grads)), weight


@jax.jit
def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


def summed(outputs):
    """The sum of a sequence of equally shaped pytrees (one jitted add per item)."""
    total = None
    for out in outputs:
        total = out if total is None else _add(total, out)
    return total


@nnx.jit
def apply_mean_gradients(model, optimizer: nnx.Optimizer, weighted_sum):
    """((metrics, gradients) summed over parts, each times its part's weight; the summed weight) ->
    one optimizer step on the weighted mean. Returns the mean metrics and the gradient norm."""
    (metrics, grads), weight = weighted_sum
    metrics, grads = jax.tree.map(lambda x: x / jnp.maximum(weight, 1.0), (metrics, grads))
    optimizer.update(model, grads)
    return dict(metrics, grad_norm=optax.tree.norm(grads))


def update_step(learner: Learner, optimizer: nnx.Optimizer, parts: list[dict], cfg: LossConfig) -> dict:
    """One optimizer step on a minibatch given as micro-batches: one forward and backward pass per
    part, each padded only to its own length, their gradients summed with each part weighted by its
    share of the minibatch's policy tokens (token mean) or of its sequences with policy tokens
    (sequence mean). That is the same step as one pass over all the rows, holding one part's
    attention scores at a time, and a part of short rows costs what short rows cost."""
    if not parts:
        raise ValueError("update_step needs at least one micro-batch")
    return apply_mean_gradients(learner, optimizer, summed(_part_gradients(learner, p, cfg) for p in parts))


def ppo_targets(rewards_at_end: np.ndarray, values: np.ndarray, mask: np.ndarray, cfg: LossConfig):
    """Per-token advantages and returns: the episode reward sits on each row's last policy token."""
    rewards = np.zeros_like(values)
    last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
    has = mask.any(axis=1)
    rewards[np.arange(len(last))[has], last[has]] = rewards_at_end[has]
    adv, ret = gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(mask), cfg.gamma, cfg.lam)
    return np.asarray(adv), np.asarray(ret)
