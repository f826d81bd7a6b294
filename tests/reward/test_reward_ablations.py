"""Each config of the `reward` group changes the reward exactly as its weights say.

In paper mode the matching does not depend on the weights, so the reward is linear in them:
    R = w_atomic * (w_name * N + w_params * Pm + w_values * V + S) / 2 + w_orch * O + w_binary * B
with N, Pm, V the mean name, parameter and value levels over the calls, S the mean semantic score,
O and B the orchestration and binary scores. N, Pm and V are measured once with unit weights, then
every paper-mode YAML must land on the value the formula gives."""

import pathlib

import numpy as np
import pytest
from omegaconf import OmegaConf

from orchestra.data.types import Call
from orchestra.reward import RewardConfig, render_rollout

CONF = pathlib.Path(__file__).resolve().parents[2] / "conf" / "reward"
OK = {"status": True, "data": [1]}


def rollouts(tasks):
    """Per task: the gold trace, the last call dropped, the first call's first value changed, and a
    call to an unknown function in front."""
    texts, gold = [], []
    for task in tasks:
        items = [(s.call, OK) for s in task.steps]
        first = items[0][0]
        name = sorted(first.arguments)[0]
        changed = Call(first.function, {**first.arguments, name: "changed"})
        for variant in (items, items[:-1], [(changed, OK)] + items[1:], [(Call("Not_A_Tool", {}), OK)] + items):
            texts.append(render_rollout(variant))
            gold.append(task)
    return texts, gold


def unit(**weights):
    base = dict(w_atomic=1.0, w_orch=0.0, w_binary=0.0, w_name=0.0, w_params=0.0, w_values=0.0)
    return RewardConfig(**{**base, **weights})


@pytest.fixture(scope="module")
def parts(booking, vocab, score):
    texts, tasks = rollouts(booking.tasks[:30])
    semantic = np.array([np.mean(r.semantic) if r.semantic else 0.0
                         for r in score(texts, tasks, unit(w_name=1.0), vocab)])
    levels = {}
    for level in ("w_name", "w_params", "w_values"):
        atomic = np.array([r.reward for r in score(texts, tasks, unit(**{level: 1.0}), vocab)])
        levels[level] = 2 * atomic - semantic
    graduated = score(texts, tasks, RewardConfig(), vocab)
    orch = np.array([r.orch for r in graduated])
    binary = np.array([r.binary for r in graduated])
    return texts, tasks, levels, semantic, orch, binary


@pytest.mark.parametrize("name", ["graduated", "atomic_only", "orchestration_only", "binary", "atomic_name",
                                  "atomic_name_params"])
def test_a_paper_mode_config_gives_the_reward_its_weights_say(name, parts, vocab, score):
    texts, tasks, levels, semantic, orch, binary = parts
    config = RewardConfig.from_omegaconf(OmegaConf.load(CONF / f"{name}.yaml"))
    ast = sum(getattr(config, level) * levels[level] for level in levels)
    expected = config.w_atomic * (ast + semantic) / 2 + config.w_orch * orch + config.w_binary * binary
    got = np.array([r.reward for r in score(texts, tasks, config, vocab)])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_the_measured_parts_move_as_the_perturbations_say(parts):
    """Sanity of the measurement itself: names match (N = 1) but for the unknown call, which
    dilutes every level; the changed value loses only the value level; a dropped call loses the
    binary baseline and, when nothing else serves its step, orchestration."""
    texts, tasks, levels, semantic, orch, binary = parts
    gold, dropped, changed, unknown = (slice(k, None, 4) for k in range(4))
    assert np.all(levels["w_name"][gold] == pytest.approx(1.0))
    assert np.all(levels["w_values"][changed] < levels["w_values"][gold])
    assert np.allclose(levels["w_params"][changed], levels["w_params"][gold])
    assert np.all(levels["w_name"][unknown] < 1.0) and np.all(binary[unknown] == 0.0)
    assert np.all(binary[gold] == 1.0) and np.all(binary[dropped] == 0.0)
    # paper mode: a dropped step is still served by an earlier call of its function, if there is one
    last_is_unique = np.array([t.pattern.count(t.pattern[-1]) == 1 for t in tasks[::4]])
    assert last_is_unique.any() and np.all(orch[dropped][last_is_unique] < 1.0)


def test_the_name_level_ablation_scores_every_gold_trace_one(booking, vocab, score):
    """The paper's first-occurrence rule only costs the deeper levels: with names alone every gold
    trace scores 1 in paper mode."""
    texts = [render_rollout([(s.call, s.response) for s in t.steps]) for t in booking.tasks]
    config = RewardConfig.from_omegaconf(OmegaConf.load(CONF / "atomic_name.yaml"))
    assert all(r.reward == pytest.approx(1.0) for r in score(texts, booking.tasks, config, vocab))
