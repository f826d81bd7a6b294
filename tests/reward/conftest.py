"""Fixtures for the reward tests. `score` runs the reference and the jitted batch reward on the same
rollout texts and asserts that every output agrees (to 1e-6) before returning the reference's."""

import dataclasses

import jax
import numpy as np
import pytest

from orchestra.reward import (RewardConfig, RewardVocab, encode_rollout, encode_task, make_reward_fn,
                              reference_reward, stack)

MAX_CALLS, MAX_STEPS = 16, 8
# Every batch is padded to BATCH rollouts and every vocabulary to PARAM_SLOTS parameter slots, so
# all tests share one compilation per mode.
BATCH, PARAM_SLOTS = 128, 16


@pytest.fixture(scope="session")
def vocab(booking):
    return dataclasses.replace(RewardVocab.from_tools(booking.tools), max_params=PARAM_SLOTS)


def assert_agree(ref, out, b: int, call_rows: np.ndarray) -> None:
    """The JAX breakdown (as numpy arrays) of batch row `b` equals the reference's; `call_rows` are the encoded rows
    that hold the reference's calls (dropped blocks have rows too, with mask False)."""
    assert len(call_rows) == len(ref.ast)
    for name in ("reward", "atomic", "orch", "binary"):
        np.testing.assert_allclose(getattr(out, name)[b], getattr(ref, name), atol=1e-6, err_msg=name)
    np.testing.assert_allclose(out.ast[b, call_rows], ref.ast, atol=1e-6)
    np.testing.assert_allclose(out.semantic[b, call_rows], ref.semantic, atol=1e-6)
    assert out.call_step[b, call_rows].tolist() == [-1 if i is None else i for i in ref.call_step]
    n = len(ref.step_score)
    np.testing.assert_allclose(out.step_score[b, :n], ref.step_score, atol=1e-6)
    assert out.step_position[b, :n].tolist() == [-1 if p is None else int(call_rows[p]) for p in ref.step_position]
    assert not out.step_score[b, n:].any() and (out.step_position[b, n:] == -1).all()


@pytest.fixture(scope="session")
def score():
    def run(texts: list[str], tasks: list, config: RewardConfig, vocab: RewardVocab):
        assert len(texts) == len(tasks) <= BATCH
        padding = BATCH - len(texts)
        calls = stack([encode_rollout(t, vocab, MAX_CALLS, config.count_unparsable) for t in texts + [""] * padding])
        gold = stack([encode_task(t, vocab, MAX_STEPS) for t in tasks + [tasks[0]] * padding])
        out = jax.tree.map(np.asarray, make_reward_fn(config)(calls, gold))
        refs = [reference_reward(text, task, config) for text, task in zip(texts, tasks)]
        for b, ref in enumerate(refs):
            assert_agree(ref, out, b, np.flatnonzero(calls.mask[b]))
        return refs
    return run
