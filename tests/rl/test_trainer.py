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
