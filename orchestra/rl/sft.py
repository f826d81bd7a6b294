"""Supervised warm start on gold episodes, with the loss on the policy's own tokens only."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from orchestra.data.types import Task, ToolSpec
from orchestra.env.views import ResponseView, ToolView
from orchestra.model.chat import encode_chat
from orchestra.rl.episodes import gold_messages, tool_schemas
from orchestra.rl.learner import strided_parts
from orchestra.rl.trainer import minibatches


@dataclasses.dataclass(frozen=True)
class TokenBatch:
    tokens: np.ndarray      # [B, T] int32, right-padded with 0
    loss_mask: np.ndarray   # [B, T] int32: 1 where the token was written by the policy
    segment_ids: np.ndarray  # [B, T] int32: 1 on real tokens, 0 on padding


def encode_gold_episodes(tasks: list[Task], tools: dict[str, ToolSpec], tokenizer, view: ResponseView,
                         tool_view: ToolView, max_len: int) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Token ids and policy masks of each task's gold episode; episodes longer than `max_len` are
    skipped (their count is returned) rather than cut, so no example loses its ending."""
    ids, masks, skipped = [], [], 0
    for task in tasks:
        enc = encode_chat(tokenizer, gold_messages(task, view), tool_schemas(task, tools, tool_view))
        if len(enc.token_ids) > max_len:
            skipped += 1
            continue
        ids.append(enc.token_ids)
        masks.append(enc.policy_mask)
    return ids, masks, skipped


def pad_batch(ids: list[np.ndarray], masks: list[np.ndarray], length: int) -> TokenBatch:
    b = len(ids)
    tokens = np.zeros((b, length), np.int32)
    loss_mask = np.zeros((b, length), np.int32)
    segments = np.zeros((b, length), np.int32)
    for i, (x, m) in enumerate(zip(ids, masks)):
        n = min(len(x), length)
        tokens[i, :n], loss_mask[i, :n], segments[i, :n] = x[:n], m[:n], 1
    return TokenBatch(tokens, loss_mask, segments)


def batches(ids, masks, batch_size: int, rng: np.random.Generator, bucket: int = 256):
    """Endless batches, one epoch at a time: rows of similar length together and the batches in random
    order (`trainer.minibatches`), each padded to `bucket * 2**k` of its longest row, so gold episodes
    of 600 to 1,600 tokens do not all pad to 2,048. Each epoch leaves out a random `len % batch_size`."""
    lengths = np.array([len(x) for x in ids])
    while True:
        kept = rng.permutation(len(ids))[: len(ids) - len(ids) % batch_size]
        for rows, length in minibatches(lengths, kept, batch_size, bucket, rng):
            yield pad_batch([ids[i] for i in rows], [masks[i] for i in rows], length)


def summed_token_loss(model, tokens, loss_mask, segment_ids) -> tuple[jax.Array, jax.Array]:
    """Summed cross-entropy of predicting each policy token from its prefix, and the token count."""
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1] - 1), (tokens.shape[0], tokens.shape[1] - 1))
    logits, _ = model(tokens[:, :-1], positions, segment_ids[:, :-1])
    weights = loss_mask[:, 1:].astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
    return (ce * weights).sum(), weights.sum()


def next_token_loss(model, tokens, loss_mask, segment_ids) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy of predicting each policy token from its prefix; also the token count."""
    total, count = summed_token_loss(model, tokens, loss_mask, segment_ids)
    return total / jnp.maximum(count, 1.0), count


@functools.partial(nnx.jit, static_argnames="micro_batches")
def sft_step(model, optimizer: nnx.Optimizer, tokens, loss_mask, segment_ids, micro_batches: int = 1):
    """One step on the batch's mean token loss. The forward and backward passes run on
    `micro_batches` parts of the rows in turn (part i: rows i, i + n, ...) with the gradients summed:
    the same step in less memory, since the attention scores of the whole batch are never held."""
    parts = strided_parts((tokens, loss_mask, segment_ids), micro_batches, "an SFT batch")
    scale = 1.0 / jnp.maximum(loss_mask[:, 1:].sum().astype(jnp.float32), 1.0)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def part_loss(p, part):
        total, count = summed_token_loss(nnx.merge(graphdef, p, rest), *part)
        return total * scale, count

    def one(carry, part):
        (loss, count), grads = jax.value_and_grad(part_loss, has_aux=True)(params, part)
        return jax.tree.map(jnp.add, carry, ((loss, count), grads)), None

    zero = ((jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)), jax.tree.map(jnp.zeros_like, params))
    ((loss, count), grads), _ = jax.lax.scan(one, zero, parts)
    optimizer.update(model, grads)
    return loss, count


def run_sft(model, tokenizer, tasks: list[Task], tools: dict[str, ToolSpec], view: ResponseView, tool_view: ToolView,
            steps: int, batch_size: int, lr: float, warmup_steps: int, max_len: int, seed: int,
            on_step=None, micro_batches: int = 1) -> dict:
    """Warm-start `model` in place on the gold episodes of `tasks`; returns a summary."""
    ids, masks, skipped = encode_gold_episodes(tasks, tools, tokenizer, view, tool_view, max_len)
    if len(ids) < batch_size:
        raise ValueError(f"rl.sft: only {len(ids)} gold episodes fit max_len={max_len} "
                         f"({skipped} longer ones skipped); need at least batch_size={batch_size}")
    warmup = max(warmup_steps, 1)  # from lr / warmup_steps, so the first step already moves
    schedule = optax.warmup_cosine_decay_schedule(lr / warmup, lr, warmup, max(steps, warmup + 1), lr * 0.1)
    optimizer = nnx.Optimizer(model, optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule)),
                              wrt=nnx.Param)
    stream = batches(ids, masks, batch_size, np.random.default_rng(seed))
    losses = []
    for step in range(steps):
        b = next(stream)
        loss, count = sft_step(model, optimizer, b.tokens, b.loss_mask, b.segment_ids, micro_batches)
        losses.append(float(loss))
        if on_step is not None:
            on_step(step, float(loss), int(b.segment_ids.sum()))
    return {"episodes": len(ids), "skipped_too_long": skipped, "losses": losses}
