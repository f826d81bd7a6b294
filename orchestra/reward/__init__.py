"""Rewards for tool orchestration: the graduated reward (atomic validity + orchestration
consistency) and the binary baseline, as a plain-Python reference and as one jitted batch function.

    config = RewardConfig.from_omegaconf(cfg.reward)
    vocab = RewardVocab.from_tools(eco.tools)
    calls = stack([encode_calls(parsed, successes, vocab, max_calls) for ...])   # host, per rollout
    gold = stack([encode_task(task, vocab, max_steps) for ...])                  # host, once per task
    out = make_reward_fn(config)(calls, gold)                                     # device, one call
"""

from orchestra.reward.config import RewardConfig
from orchestra.reward.encode import (EncodedCalls, EncodedGold, RewardVocab, encode_calls, encode_rollout,
                                     encode_task, stack)
from orchestra.reward.graduated import RewardBreakdown, RewardWeights, batch_reward, make_reward_fn, score_rollout
from orchestra.reward.reference import (ReferenceBreakdown, RolloutCall, reference_reward, render_rollout,
                                        rollout_calls)

__all__ = [
    "RewardConfig", "RewardWeights", "EncodedCalls", "EncodedGold", "RewardVocab", "encode_calls", "encode_rollout",
    "encode_task", "stack", "RewardBreakdown", "batch_reward", "make_reward_fn", "score_rollout",
    "ReferenceBreakdown", "RolloutCall", "reference_reward", "render_rollout", "rollout_calls",
]
