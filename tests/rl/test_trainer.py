import jax
import numpy as np
import pytest
from flax import nnx

from tests.rl import tiny


@pytest.fixture(scope="module")
def tok():
    return tiny.tokenizer()


def params_of(trainer):
    return jax.tree.leaves(nnx.to_pure_dict(nnx.state(trainer.learner)))


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_resume_after_interruption_continues_identically(tok, tmp_path, algorithm):
    straight = tiny.trainer(tok, str(tmp_path / "a"), algorithm=algorithm)
    straight_metrics = [straight.train_step() for _ in range(3)]

    interrupted = tiny.trainer(tok, str(tmp_path / "b"), algorithm=algorithm)
    first = [interrupted.train_step() for _ in range(2)]
    del interrupted  # "killed" after step 2; its checkpoints stay on disk
    resumed = tiny.trainer(tok, str(tmp_path / "b"), algorithm=algorithm, policy=tiny.model(len(tok), seed=99))
    assert resumed.restore() and resumed.step == 2
    last = resumed.train_step()

    for a, b in zip(straight_metrics, first + [last]):
        assert a["reward"] == b["reward"] and a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    for a, b in zip(params_of(straight), params_of(resumed)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_rollout_records_policy_tokens_and_masks_observations(tok, tmp_path):
    trainer = tiny.trainer(tok, str(tmp_path))
    rollouts = trainer.worker.run(trainer.tasks[:1], np.array([0]), seed=0)
    for tokens, mask, logp in zip(rollouts.tokens, rollouts.loss_mask, rollouts.logprobs):
        assert len(tokens) == len(mask) == len(logp)
        prompt = trainer.worker.prompt_tokens(trainer.tasks[0])
        assert tokens[: len(prompt)] == prompt and not any(mask[: len(prompt)])
        assert sum(mask) > 0 and all((lp < 0) == bool(m) or lp == 0 for lp, m in zip(logp, mask))


def test_few_steps_of_grpo_on_a_trivially_learnable_task_increase_the_reward(tok, tmp_path):
    from orchestra.env.views import ResponseView, ToolView
    from orchestra.rl.sft import run_sft

    policy = tiny.model(len(tok))
    # A short warm start leaves the calls right only part of the time: room for RL to improve.
    run_sft(policy, tok, tiny.tasks(), tiny.TOOLS, ResponseView(max_chars=80), ToolView(), steps=70,
            batch_size=4, lr=1e-2, warmup_steps=2, max_len=512, seed=0)
    trainer = tiny.trainer(tok, str(tmp_path), steps=20, lr=2e-3, policy=policy, group_size=8)
    rewards = [trainer.train_step()["reward"] for _ in range(9)]
    assert np.mean(rewards[-3:]) > np.mean(rewards[:3]) + 0.1, rewards
