"""The RL loop: rollouts against the environment, the reward, and the learner's update, per step.

    trainer = Trainer(policy, tokenizer, environment, tool_view, train_tasks, reward_config, config, run_dir)
    trainer.train(progress)

A step draws its tasks from a generator seeded by (seed, step) and samples with a key derived from
the same pair, so a run resumed from a checkpoint continues exactly as an uninterrupted one would.
Arrays of a batch are sharded over the `data` axis of a mesh over every device (parameters
replicated); on one device that is a no-op.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from orchestra.data.types import Task
from orchestra.env.build import Environment
from orchestra.env.views import ToolView
from orchestra.model.chat import stop_sequences
from orchestra.model.modeling import Transformer
from orchestra.model.sampler import Sampler
from orchestra.reward import RewardConfig, RewardVocab, encode_calls, encode_task, make_reward_fn, stack
from orchestra.rl.checkpoint import Checkpointer
from orchestra.rl.episodes import hidden_value_turns, turn_window
from orchestra.rl.learner import (Learner, LossConfig, make_optimizer, ppo_targets, sequence_log_probs,
                                  sequence_values, update_step)
from orchestra.rl.losses import group_advantages
from orchestra.rl.metrics_logger import MetricsLogger
from orchestra.rl.rollout import RolloutConfig, RolloutWorker, Rollouts


MAX_REWARD_CALLS = 32  # the vectorised reward's limit on blocks per rollout


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 20
    tasks_per_step: int = 4        # distinct tasks per step; each is sampled rollout.group_size times
    epochs: int = 1                # passes over a step's rollouts
    minibatch_size: int = 16       # rows per update
    micro_batch_size: int | None = None   # rows per forward/backward pass (gradients summed); None: the minibatch
    lr: float = 1e-5
    warmup_steps: int = 2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    normalise_std: bool = True     # GRPO: divide by the group's standard deviation
    # GRPO: leave out of the update the rows of groups whose rewards are all equal (advantage 0: no
    # policy gradient, only their KL term), so the update's compute goes where there is signal.
    skip_zero_advantage: bool = True
    length_bucket: int = 128       # each micro-batch padded to a multiple of this (one compiled shape per length)
    # One pass per group, its shared prompt encoded once (`learner.part_hidden_states`): each
    # minibatch's update is the same, the prompt's cost paid once per group instead of once per row;
    # minibatches hold whole groups (or whole shares of one).
    share_prompt: bool = False
    checkpoint_every: int = 10
    checkpoint_keep: int = 2
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "tasks_per_step", "epochs", "minibatch_size", "length_bucket"):
            if getattr(self, name) < 1:
                raise ValueError(f"rl.{name} must be at least 1, got {getattr(self, name)}")
        if self.micro_batch_size is not None and (self.micro_batch_size < 1
                                                  or self.minibatch_size % self.micro_batch_size):
            raise ValueError(f"rl.micro_batch_size ({self.micro_batch_size}) must divide rl.minibatch_size "
                             f"({self.minibatch_size})")

    @property
    def rows_per_pass(self) -> int:
        return self.micro_batch_size or self.minibatch_size


def data_mesh() -> jax.sharding.Mesh:
    """A one-axis mesh named `data` over every device (all processes, multi-host included)."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def padded_length(length: int, bucket: int) -> int:
    """The smallest multiple of `bucket` that holds `length` tokens."""
    return -(-length // bucket) * bucket


def pad_rollouts(rollouts: Rollouts, bucket: int) -> dict[str, np.ndarray]:
    n = len(rollouts.tokens)
    length = padded_length(max(len(t) for t in rollouts.tokens), bucket)
    tokens = np.zeros((n, length), np.int32)
    mask = np.zeros((n, length), np.int32)
    segments = np.zeros((n, length), np.int32)
    logp = np.zeros((n, length), np.float32)
    for i, (t, m, lp) in enumerate(zip(rollouts.tokens, rollouts.loss_mask, rollouts.logprobs)):
        tokens[i, : len(t)], mask[i, : len(t)], segments[i, : len(t)], logp[i, : len(t)] = t, m, 1, lp
    return {"tokens": tokens, "loss_mask": mask, "segment_ids": segments, "old_logp": logp[:, 1:]}


def minibatch_rows(keep: np.ndarray, size: int, rng: np.random.Generator, unit: int = 1) -> list[np.ndarray]:
    """The rows `keep` in random order, cut into minibatches of `size` (the last may be shorter). With
    `unit` > 1, `keep` is consecutive blocks of `unit` rows (groups) that stay together."""
    order = rng.permutation(keep.reshape(-1, unit)).reshape(-1)
    return [order[start: start + size] for start in range(0, len(order), size)]


def micro_batches(rows: np.ndarray, lengths: np.ndarray, size: int, bucket: int) -> list[tuple[np.ndarray, int]]:
    """(rows, length) per forward/backward pass over `rows`: `size` rows of similar length each
    (sorted by length), padded to a multiple of `bucket` of its own longest row, so short rows are
    not padded to the longest of the minibatch. A last short pass is filled with row -1, which
    `take_rows` turns into an all-padding row (every pass has `size` rows: one compiled shape per
    length, an equal share per device)."""
    order = rows[np.argsort(lengths[rows], kind="stable")]
    out = []
    for start in range(0, len(order), size):
        part = order[start: start + size]
        out.append((np.concatenate([part, np.full(size - len(part), -1)]),
                    padded_length(int(lengths[part].max()), bucket)))
    return out


def take_rows(batch: dict[str, np.ndarray], rows: np.ndarray, length: int, start: int = 0) -> dict[str, np.ndarray]:
    """Rows of a padded batch cut to the `length` tokens from `start` (zero-padded past the batch's
    width); row -1 becomes padding (mask and segments 0)."""
    out = {}
    for k, v in batch.items():
        part = v[np.maximum(rows, 0)]
        if v.ndim == 2:
            width = length - 1 if k in ("old_logp", "ref_logp", "advantages", "returns", "old_values") else length
            part = part[:, start: start + width]
            part = np.pad(part, ((0, 0), (0, width - part.shape[1])))
        if k in ("loss_mask", "segment_ids"):
            part = np.where((rows >= 0)[:, None], part, 0)
        out[k] = part
    return out


def shared_prompt_part(batch: dict[str, np.ndarray], rows: np.ndarray, lengths: np.ndarray,
                       bucket: int) -> dict[str, np.ndarray]:
    """One pass over the rows of one group: their common prompt as a prefix of one row (padded to a
    multiple of `bucket`), and each row's tokens after it (padded to a multiple of `bucket` of the
    longest). The prefix stops one token before the group's first policy token (the logits that
    predict a policy token come from the row's own pass) and where the rows stop agreeing."""
    tokens, mask = batch["tokens"][rows], batch["loss_mask"][rows]
    first_policy = np.where(mask.any(axis=1), mask.argmax(axis=1), lengths[rows])
    shared = max(int(first_policy.min()) - 1, 0)
    differs = (tokens[:, :shared] != tokens[:1, :shared]).any(axis=0)
    if differs.any():
        shared = int(differs.argmax())
    part = take_rows(batch, rows, padded_length(int(lengths[rows].max()) - shared, bucket), start=shared)
    width = padded_length(max(shared, 1), bucket)
    prefix, prefix_segments = np.zeros((1, width), np.int32), np.zeros((1, width), np.int32)
    prefix[0, :shared], prefix_segments[0, :shared] = tokens[0, :shared], 1
    part.update(prefix_tokens=prefix, prefix_segment_ids=prefix_segments,
                start=np.full(len(rows), shared, np.int32))
    return part


def place_part(part: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """A pass's arrays on the mesh: rows sharded over `data`; a group's prefix (one row) on every device."""
    return {k: jax.device_put(v, NamedSharding(mesh, P() if k.startswith("prefix_") else P("data")))
            for k, v in part.items()}


class Trainer:
    def __init__(self, policy: Transformer, tokenizer, environment: Environment, tool_view: ToolView,
                 train_tasks: list[Task], reward: RewardConfig, loss: LossConfig, rollout: RolloutConfig,
                 config: TrainConfig, run_dir: str, logger: MetricsLogger | None = None,
                 mesh: jax.sharding.Mesh | None = None):
        self.tokenizer, self.environment, self.tasks = tokenizer, environment, train_tasks
        self.loss_cfg, self.rollout_cfg, self.cfg, self.logger = loss, rollout, config, logger
        self.mesh = mesh or data_mesh()
        rows = config.tasks_per_step * rollout.group_size
        if rows % config.minibatch_size or config.rows_per_pass % self.mesh.size:
            raise ValueError(f"rl: tasks_per_step x group_size ({rows}) must be a multiple of minibatch_size "
                             f"({config.minibatch_size}), and micro_batch_size ({config.rows_per_pass}) a multiple "
                             f"of the device count ({self.mesh.size})")
        # share_prompt: a pass is a group's rows (or a minibatch's share of one), one prompt
        self.group_pass = min(rollout.group_size, config.minibatch_size)
        if config.share_prompt and (max(rollout.group_size, config.minibatch_size) % self.group_pass
                                    or self.group_pass % self.mesh.size):
            raise ValueError(f"rl.share_prompt (one pass per group): one of minibatch_size ({config.minibatch_size}) "
                             f"and rollout.group_size ({rollout.group_size}) must divide the other, and the smaller "
                             f"be a multiple of the device count ({self.mesh.size})")
        self._replicated = NamedSharding(self.mesh, P())
        self.learner = Learner(policy, with_value_head=loss.algorithm == "ppo", seed=config.seed)
        self.reference = nnx.clone(policy)  # frozen: the KL anchor
        # the schedule counts updates: at most steps x epochs x minibatches per step (fewer when
        # zero-advantage groups are skipped)
        self.optimizer = make_optimizer(self.learner, config.lr, config.warmup_steps,
                                        config.steps * config.epochs * (rows // config.minibatch_size),
                                        config.weight_decay, config.max_grad_norm)
        self._place_replicated()
        stops = [s for s in stop_sequences(tokenizer) if s != tokenizer.encode("</tool_call>", add_special_tokens=False)]
        self.sampler = Sampler(policy, stop_sequences=stops, pad_id=tokenizer.pad_token_id or 0)
        self.worker = RolloutWorker(self.sampler, tokenizer, environment, tool_view, rollout)
        self.vocab = RewardVocab.from_tools(environment.tools)
        self.max_calls = MAX_REWARD_CALLS
        self.max_steps = max(len(t.steps) for t in train_tasks)
        self.gold = [encode_task(t, self.vocab, self.max_steps) for t in train_tasks]
        if rollout.gold_prefix:
            # the turns an episode may start at: those that pass no value the view hid (no policy
            # could write it; SFT leaves them out of its loss too), else the first
            self.start_turns = [[k for k, hidden in enumerate(hidden_value_turns(t, environment.view)) if not hidden]
                                or [0] for t in train_tasks]
        self.reward_fn = make_reward_fn(reward)
        self.count_unparsable = reward.count_unparsable
        self.checkpointer = Checkpointer(f"{run_dir}/checkpoints", config.checkpoint_every, config.checkpoint_keep)
        self.step = 0

    def reset_reference(self) -> None:
        """Anchor the KL to the policy as it is now (after a warm start) and sample from it."""
        self.reference = nnx.clone(self.learner.policy)
        self._place_replicated()
        self.sampler.update_params(self.learner.policy)

    def _place_replicated(self):
        for module in (self.learner, self.reference, self.optimizer):
            state = nnx.state(module)
            nnx.update(module, jax.device_put(state, self._replicated))

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint_state(self) -> dict:
        return {"learner": nnx.to_pure_dict(nnx.state(self.learner)),
                "optimizer": nnx.to_pure_dict(nnx.state(self.optimizer)),
                "reference": nnx.to_pure_dict(nnx.state(self.reference))}

    def save(self, force: bool = False) -> bool:
        return self.checkpointer.save(self.step, self._checkpoint_state(), {"step": self.step}, force=force)

    def restore(self, step: int | None = None) -> bool:
        """Continue from the latest checkpoint of this run directory (or the kept one of `step`), if
        there is one."""
        found = self.checkpointer.restore(self._checkpoint_state(), step)
        if found is None:
            return False
        step, state, meta = found
        for name, module in (("learner", self.learner), ("optimizer", self.optimizer), ("reference", self.reference)):
            current = nnx.state(module)
            nnx.replace_by_pure_dict(current, state[name])
            nnx.update(module, current)
        self._place_replicated()
        self.sampler.update_params(self.learner.policy)
        self.step = int(meta["step"])
        return True

    # ------------------------------------------------------------------ one step

    def batch_tasks(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.cfg.seed, step])
        replace = len(self.tasks) < self.cfg.tasks_per_step
        return rng.choice(len(self.tasks), self.cfg.tasks_per_step, replace=replace)

    def batch_gold_turns(self, step: int, task_ids: np.ndarray) -> list[int] | None:
        """With `rollout.gold_prefix`: per task of the step, the gold turns its episodes start after,
        drawn from a generator seeded by (seed, step), so a resumed run draws the same."""
        if not self.rollout_cfg.gold_prefix:
            return None
        rng = np.random.default_rng([self.cfg.seed, step, 2])
        return [int(rng.choice(self.start_turns[i])) for i in task_ids]

    def score(self, rollouts: Rollouts, task_ids: np.ndarray, gold_turns: list[int] | None = None):
        # The reward reads at most MAX_REWARD_CALLS blocks of a rollout; later ones are ignored.
        calls = stack([encode_calls(c[: self.max_calls], s[: self.max_calls], self.vocab, self.max_calls,
                                    self.count_unparsable) for c, s in zip(rollouts.calls, rollouts.successes)])
        if gold_turns is None:
            per_task = [self.gold[i] for i in task_ids]
        else:  # scored on the gold turns the episode can still reach
            window = self.rollout_cfg.max_turns
            per_task = [encode_task(turn_window(self.tasks[i], k, window), self.vocab, self.max_steps)
                        for i, k in zip(task_ids, gold_turns)]
        gold = stack([per_task[r] for r in rollouts.task_rows])
        return jax.device_get(self.reward_fn(calls, gold))

    def passes(self, batch: dict[str, np.ndarray], lengths: np.ndarray,
               rows: np.ndarray) -> list[tuple[np.ndarray, dict[str, jax.Array]]]:
        """(rows, part placed on the mesh) per forward/backward pass over `rows`: with `share_prompt`,
        one per block of `group_pass` rows (`rows` is such blocks, each within one group), else
        micro-batches of similar length."""
        if self.cfg.share_prompt:
            cuts = [(r, shared_prompt_part(batch, r, lengths, self.cfg.length_bucket))
                    for r in rows.reshape(-1, self.group_pass)]
        else:
            cuts = [(r, take_rows(batch, r, n))
                    for r, n in micro_batches(rows, lengths, self.cfg.rows_per_pass, self.cfg.length_bucket)]
        return [(r, place_part(part, self.mesh)) for r, part in cuts]

    def batch_values(self, batch: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
        """PPO's value head over every row, [rows, time - 1], in the update's passes (no pass holds
        the whole batch). Positions past a row's own pass are 0: off every mask."""
        values = np.zeros((len(lengths), batch["tokens"].shape[1] - 1), np.float32)
        inputs = {k: batch[k] for k in ("tokens", "segment_ids", "loss_mask")}
        for rows, part in self.passes(inputs, lengths, np.arange(len(lengths))):
            out = np.asarray(sequence_values(self.learner, part))
            start = int(part["start"][0]) if "start" in part else 0
            width = min(out.shape[1], values.shape[1] - start)
            values[rows[rows >= 0], start: start + width] = out[rows >= 0, :width]
        return values

    def train_step(self) -> dict:
        cfg, step = self.cfg, self.step
        task_ids = self.batch_tasks(step)
        t0 = time.perf_counter()
        gold_turns = self.batch_gold_turns(step, task_ids)
        rollouts = self.worker.run([self.tasks[i] for i in task_ids], task_ids, seed=cfg.seed * 1_000_003 + step,
                                   gold_turns=gold_turns)
        t1 = time.perf_counter()
        breakdown = self.score(rollouts, task_ids, gold_turns)
        rewards = np.asarray(breakdown.reward, np.float32)
        t2 = time.perf_counter()

        batch = pad_rollouts(rollouts, cfg.length_bucket)
        lengths = np.array([len(t) for t in rollouts.tokens])
        mask = batch["loss_mask"][:, 1:]
        keep = np.arange(len(rewards))
        if self.loss_cfg.algorithm == "grpo":
            groups = rewards.reshape(-1, self.rollout_cfg.group_size)
            batch["advantages"] = np.asarray(group_advantages(jnp.asarray(groups), cfg.normalise_std)).reshape(-1)
            if cfg.skip_zero_advantage:
                varied = groups.max(axis=1) > groups.min(axis=1)
                keep = np.flatnonzero(np.repeat(varied, self.rollout_cfg.group_size))
        else:
            values = self.batch_values(batch, lengths)
            adv, ret = ppo_targets(rewards, values, mask, self.loss_cfg)
            m = mask.astype(bool)
            adv = np.where(m, (adv - adv[m].mean()) / (adv[m].std() + 1e-6), 0.0)  # whitened over policy tokens
            batch.update(advantages=adv.astype(np.float32), returns=ret.astype(np.float32),
                         old_values=values.astype(np.float32))

        rng = np.random.default_rng([cfg.seed, step, 1])
        metrics_sum: dict[str, float] = {}
        n_updates = 0
        for _ in range(cfg.epochs):
            for rows in minibatch_rows(keep, cfg.minibatch_size, rng, self.group_pass if cfg.share_prompt else 1):
                parts = []
                for _, part in self.passes(batch, lengths, rows):
                    # the frozen reference's log-probs, on exactly the part's shape
                    part["ref_logp"] = sequence_log_probs(self.reference, part)
                    parts.append(part)
                out = jax.device_get(update_step(self.learner, self.optimizer, parts, self.loss_cfg))
                for k, v in out.items():
                    metrics_sum[k] = metrics_sum.get(k, 0.0) + float(v)
                n_updates += 1
        self.sampler.update_params(self.learner.policy)
        t3 = time.perf_counter()

        self.step += 1
        # no update when every group's rewards were equal: the update's metrics are then NaN
        metrics = {k: float("nan") for k in ("loss", "policy_loss", "kl", "entropy", "clip_fraction", "ratio_mean",
                                             "grad_norm")}
        metrics.update({k: v / max(n_updates, 1) for k, v in metrics_sum.items()})
        gen_tokens = rollouts.generated_tokens
        metrics.update(
            reward=float(rewards.mean()), reward_atomic=float(np.mean(breakdown.atomic)),
            reward_orch=float(np.mean(breakdown.orch)), reward_binary=float(np.mean(breakdown.binary)),
            calls_per_episode=float(np.mean([len(c) for c in rollouts.calls])),
            call_success=float(np.mean([np.mean(s) if s else 0.0 for s in rollouts.successes])),
            turns=float(rollouts.turns.mean()),
            cut_off_turns=float(rollouts.cut_off.sum() / max(rollouts.turns.sum(), 1)),
            seconds_rollout=t1 - t0, seconds_generate=rollouts.generate_seconds,
            seconds_env=rollouts.env_seconds, seconds_reward=t2 - t1, seconds_update=t3 - t2,
            tokens_per_second=gen_tokens / max(rollouts.generate_seconds, 1e-9), sequence_length=batch["tokens"].shape[1],
            rows_updated=len(keep), updates=n_updates)
        if gold_turns is not None:
            metrics["gold_turns"] = float(np.mean(gold_turns))
        if self.logger is not None:
            self.logger.log({"phase": "rl", **metrics}, self.step)
        self.save()
        return metrics
