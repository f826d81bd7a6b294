"""The `rl` config group as checked dataclasses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax

from orchestra.data.config import from_mapping
from orchestra.rl.learner import LossConfig
from orchestra.rl.rollout import RolloutConfig
from orchestra.rl.trainer import TrainConfig


@dataclasses.dataclass(frozen=True)
class SFTConfig:
    steps: int = 60
    batch_size: int = 8
    lr: float = 5e-4
    warmup_steps: int = 5
    max_len: int = 2048
    micro_batch_size: int | None = None   # rows per forward/backward pass (gradients summed); None: the batch
    mask_hidden: bool = True   # keep turns that pass a value the view hid out of the loss (sft.encode_gold_episodes)

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or self.max_len < 16:
            raise ValueError(f"rl.sft: steps >= 0, batch_size >= 1 and max_len >= 16 are required, got {self}")
        if self.micro_batch_size is not None and (self.micro_batch_size < 1
                                                  or self.batch_size % self.micro_batch_size):
            raise ValueError(f"rl.sft.micro_batch_size ({self.micro_batch_size}) must divide rl.sft.batch_size "
                             f"({self.batch_size})")


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    coordinator_address: str | None = None
    num_processes: int = 1
    process_id: int = 0

    def initialize(self) -> None:
        """Join a multi-process run when a coordinator is configured (a no-op otherwise)."""
        if self.coordinator_address:
            jax.distributed.initialize(self.coordinator_address, self.num_processes, self.process_id)


@dataclasses.dataclass(frozen=True)
class RLConfig:
    train: TrainConfig
    loss: LossConfig
    rollout: RolloutConfig
    sft: SFTConfig
    distributed: DistributedConfig


def rl_config(cfg: Mapping, seed: int) -> RLConfig:
    cfg = dict(cfg)
    algorithm = cfg.pop("algorithm", "grpo")
    loss = from_mapping(LossConfig, {**dict(cfg.pop("loss", {})), "algorithm": algorithm}, "rl.loss")
    rollout = from_mapping(RolloutConfig, cfg.pop("rollout", {}), "rl.rollout")
    sft = from_mapping(SFTConfig, cfg.pop("sft", {}), "rl.sft")
    distributed = from_mapping(DistributedConfig, cfg.pop("distributed", {}), "rl.distributed")
    train = from_mapping(TrainConfig, {**cfg, "seed": seed}, "rl")
    return RLConfig(train, loss, rollout, sft, distributed)
