"""Supervised warm start on gold episodes, with the loss on the policy's own tokens only."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from orchestra.data.types import Task, ToolSpec
from orchestra.env.views import ResponseView, ToolView
from orchestra.model.chat import encode_chat
from orchestra.rl.episodes import gold_messages, hidden_value_turns, tool_schemas
from orchestra.rl.learner import apply_mean_gradients, summed
from orchestra.rl.trainer import micro_batches


@dataclasses.dataclass(frozen=True)
class TokenBatch:
    tokens: np.ndarray      # [B, T] int32, right-padded with 0
    loss_mask: np.ndarray   # [B, T] int32: 1 where the token was written by the policy
    segment_ids: np.ndarray  # [B, T] int32: 1 on real tokens, 0 on padding


def encode_gold_episodes(tasks: list[Task], tools: dict[str, ToolSpec], tokenizer, view: ResponseView,
                         tool_view: ToolView, max_len: int, mask_hidden: bool = True,
                         ) -> tuple[list[np.ndarray], list[np.ndarray], int, int]:
    """Token ids and policy masks of each task's gold episode; episodes longer than `max_len` are
    skipped (their count is returned) rather than cut, so no example loses its ending. With
    `mask_hidden`, a turn whose call passes a value the view hid (`hidden_value_turns`) stays in the
    episode as context but out of the loss (the count of such turns is returned): imitating it would
    teach the policy to make values up."""
    ids, masks, skipped, masked = [], [], 0, 0
    for task in tasks:
        enc = encode_chat(tokenizer, gold_messages(task, view), tool_schemas(task, tools, tool_view))
        if len(enc.token_ids) > max_len:
            skipped += 1
            continue
        mask = enc.policy_mask
        if mask_hidden:
            hidden = hidden_value_turns(task, view)
            mask, masked = masked_turns(mask, hidden), masked + sum(hidden)
        ids.append(enc.token_ids)
        masks.append(mask)
    return ids, masks, skipped, masked


def masked_turns(policy_mask: np.ndarray, drop: list[bool]) -> np.ndarray:
    """`policy_mask` with the k-th assistant message's tokens (its k-th run of ones) zeroed where
    `drop[k]`; messages past `drop` (the final answer) are kept."""
    mask = policy_mask.copy()
    starts = np.flatnonzero(np.diff(np.concatenate([[0], policy_mask])) == 1)
    ends = np.flatnonzero(np.diff(np.concatenate([policy_mask, [0]])) == -1) + 1
    for k, (start, end) in enumerate(zip(starts, ends)):
        if k < len(drop) and drop[k]:
            mask[start:end] = 0
    return mask


def pad_batch(ids: list[np.ndarray], masks: list[np.ndarray], length: int) -> TokenBatch:
    b = len(ids)
    tokens = np.zeros((b, length), np.int32)
    loss_mask = np.zeros((b, length), np.int32)
    segments = np.zeros((b, length), np.int32)
    for i, (x, m) in enumerate(zip(ids, masks)):
        n = min(len(x), length)
        tokens[i, :n], loss_mask[i, :n], segments[i, :n] = x[:n], m[:n], 1
    return TokenBatch(tokens, loss_mask, segments)


def batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless batches of episode indices, one epoch at a time, in random order; each epoch leaves
    out a random `n % batch_size`."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start: start + batch_size]


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


@nnx.jit
def _part_gradients(model, tokens, loss_mask, segment_ids):
    (total, count), grads = nnx.value_and_grad(summed_token_loss, has_aux=True)(model, tokens, loss_mask,
                                                                                 segment_ids)
    return ({"loss": total}, grads), count


def sft_step(model, optimizer: nnx.Optimizer, parts: list[TokenBatch]) -> tuple[float, int]:
    """One step on the mean token loss over every part's policy tokens, one forward and backward
    pass per part (micro-batches, each padded to its own length) with the gradients summed: the
    same step as one pass over all the rows. Returns the loss and the number of policy tokens."""
    weighted = summed(_part_gradients(model, p.tokens, p.loss_mask, p.segment_ids) for p in parts)
    out = apply_mean_gradients(model, optimizer, weighted)
    return float(out["loss"]), int(sum(p.loss_mask[:, 1:].sum() for p in parts))


def run_sft(model, tokenizer, tasks: list[Task], tools: dict[str, ToolSpec], view: ResponseView, tool_view: ToolView,
            steps: int, batch_size: int, lr: float, warmup_steps: int, max_len: int, seed: int,
            on_step=None, micro_batch_size: int | None = None, bucket: int = 128, mask_hidden: bool = True) -> dict:
    """Warm-start `model` in place on the gold episodes of `tasks`; returns a summary."""
    ids, masks, skipped, masked = encode_gold_episodes(tasks, tools, tokenizer, view, tool_view, max_len, mask_hidden)
    if len(ids) < batch_size:
        raise ValueError(f"rl.sft: only {len(ids)} gold episodes fit max_len={max_len} "
                         f"({skipped} longer ones skipped); need at least batch_size={batch_size}")
    warmup = max(warmup_steps, 1)  # from lr / warmup_steps, so the first step already moves
    schedule = optax.warmup_cosine_decay_schedule(lr / warmup, lr, warmup, max(steps, warmup + 1), lr * 0.1)
    optimizer = nnx.Optimizer(model, optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule)),
                              wrt=nnx.Param)
    lengths = np.array([len(x) for x in ids])
    stream = batches(len(ids), batch_size, np.random.default_rng(seed))
    losses = []
    for step in range(steps):
        parts = [pad_batch([ids[i] for i in rows if i >= 0], [masks[i] for i in rows if i >= 0], length)
                 for rows, length in micro_batches(next(stream), lengths, micro_batch_size or batch_size, bucket)]
        loss, _ = sft_step(model, optimizer, parts)
        losses.append(loss)
        if on_step is not None:
            on_step(step, loss, int(sum(p.segment_ids.sum() for p in parts)))
    return {"episodes": len(ids), "skipped_too_long": skipped, "losses": losses, "masked_turns": masked}
