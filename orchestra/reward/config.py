"""`RewardConfig`: which reward, with which weights, read from the flat `reward` config group.

    R = w_atomic * R_atomic + w_orch * R_orch + w_binary * R_binary (+ w_state * R_state, reserved)

Every ablation is a choice of weights: `graduated.yaml` is the paper's 0.5 / 0.5, `binary.yaml` puts
all the weight on the binary baseline, the atomic-granularity configs change `w_name`, `w_params`,
`w_values` (the three levels of the AST score). `mode` picks the matching rules (see README.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

MODES = ("paper", "strict")
PARAMS_CREDITS = ("coverage", "all")


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    mode: str = "paper"            # paper | strict: how calls are matched to gold steps
    w_atomic: float = 0.5          # atomic validity
    w_orch: float = 0.5            # orchestration consistency
    w_binary: float = 0.0          # binary baseline: 1 when the rollout reproduces the gold trace
    w_state: float = 0.0           # final-state check: reserved, not implemented, must stay 0
    w_name: float = 0.33           # AST level 1: the function name
    w_params: float = 0.33         # AST level 2: parameter names and value types
    w_values: float = 0.34         # AST level 3: exact values
    params_credit: str = "coverage"  # AST level 2: coverage x type share | all: 1 only for the gold's exact
                                     # parameter names, every type compatible (a dropped parameter costs it all)
    penalise_extra_calls: bool = False  # strict mode: unmatched calls count as failed orchestration items
    count_unparsable: bool = False  # an unparsable <tool_call> block is a call scoring 0 (paper: dropped)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"reward.mode must be one of {MODES}, got {self.mode!r}")
        if self.params_credit not in PARAMS_CREDITS:
            raise ValueError(f"reward.params_credit must be one of {PARAMS_CREDITS}, got {self.params_credit!r}")
        weights = ("w_atomic", "w_orch", "w_binary", "w_state", "w_name", "w_params", "w_values")
        for name in weights:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"reward.{name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"reward.{name} must not be negative, got {value}")
        if self.w_state != 0:
            raise ValueError("reward.w_state must be 0: the final-state check (R_state) is reserved and "
                             "not implemented yet")
        if self.w_atomic == self.w_orch == self.w_binary == 0:
            raise ValueError("reward: w_atomic, w_orch and w_binary are all 0, so every reward would be 0")
        if self.w_atomic > 0 and self.w_name == self.w_params == self.w_values == 0:
            raise ValueError("reward: w_atomic > 0 but w_name, w_params and w_values are all 0")
        if not isinstance(self.penalise_extra_calls, bool):
            raise ValueError(f"reward.penalise_extra_calls must be true or false, got {self.penalise_extra_calls!r}")
        if not isinstance(self.count_unparsable, bool):
            raise ValueError(f"reward.count_unparsable must be true or false, got {self.count_unparsable!r}")
        if self.penalise_extra_calls and self.mode != "strict":
            raise ValueError("reward.penalise_extra_calls needs reward.mode=strict (paper mode reproduces "
                             "the paper, which does not penalise extra calls)")

    @classmethod
    def from_dict(cls, values: Mapping) -> RewardConfig:
        """A config from a flat mapping; an unknown key is an error that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"reward: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def from_omegaconf(cls, cfg) -> RewardConfig:
        """A config from the `reward` node of a Hydra / OmegaConf config."""
        from omegaconf import OmegaConf

        values = OmegaConf.to_container(cfg, resolve=True)
        if not isinstance(values, dict):
            raise ValueError(f"reward: expected a mapping, got {type(values).__name__}")
        return cls.from_dict(values)
