"""Rollouts that start after gold turns (`rl.rollout.gold_prefix`), scored on the turns left."""

import numpy as np
import pytest

from orchestra.env.codec import format_tool_call
from orchestra.rl.episodes import turn_window
from tests.rl import tiny
from tests.rl.test_trainer import ScriptedSampler


@pytest.fixture(scope="module")
def tok():
    return tiny.tokenizer()


def test_turn_window_keeps_the_turns_asked_for_renumbered_with_given_dependencies_met():
    task = tiny.chained_tasks()[1]
    assert turn_window(task, 0, 5).steps == task.steps
    first = turn_window(task, 0, 1)
    assert [s.call for s in first.steps] == [task.steps[0].call]
    second = turn_window(task, 1, 1)
    (step,) = second.steps
    assert step.call == task.steps[1].call and step.index == 0
    assert step.depends_on == () and step.dependency_args == ()   # its dependency was given
    assert turn_window(task, 2, 1).steps == ()


def test_a_gold_prefix_prompt_holds_the_given_turns_and_opens_the_next(tok, tmp_path):
    tasks = tiny.chained_tasks()
    trainer = tiny.trainer(tok, str(tmp_path), task_list=tasks, gold_prefix=True)
    plain = trainer.worker.prompt_tokens(tasks[1])
    after_one = trainer.worker.prompt_tokens(tasks[1], gold_turns=1)
    text = tok.decode(after_one, skip_special_tokens=False)
    opening = tok.decode(plain, skip_special_tokens=False)
    # the same conversation, with the first gold call and its rendered response before the new turn
    assert text.startswith(opening) and text.endswith("<|im_start|>assistant\n")
    middle = text[len(opening):]
    assert format_tool_call(tasks[1].steps[0].call) in middle and '{"code":"ROME"}' in middle
    assert "get_time" not in middle


def test_episodes_start_after_a_turn_that_passes_no_hidden_value_drawn_per_step(tok, tmp_path):
    tasks = tiny.chained_tasks()
    trainer = tiny.trainer(tok, str(tmp_path), task_list=tasks, gold_prefix=True)
    # task 0's second turn passes a code the view cut: only its first turn is a start
    assert trainer.start_turns == [[0], [0, 1], [0, 1], [0, 1]]
    ids = np.array([0, 1, 2, 3])
    draws = [trainer.batch_gold_turns(step, ids) for step in range(8)]
    assert draws == [trainer.batch_gold_turns(step, ids) for step in range(8)]   # a resumed run draws the same
    assert all(d[0] == 0 for d in draws) and {d[k] for d in draws for k in (1, 2, 3)} == {0, 1}
    assert tiny.trainer(tok, str(tmp_path / "plain"), task_list=tasks).batch_gold_turns(0, ids) is None
    metrics = trainer.train_step()
    assert metrics["gold_turns"] == np.mean(trainer.batch_gold_turns(0, trainer.batch_tasks(0)))


def test_a_turn_after_the_gold_prefix_is_scored_on_the_gold_turns_it_can_reach(tok, tmp_path):
    tasks = tiny.chained_tasks()
    trainer = tiny.trainer(tok, str(tmp_path), task_list=tasks, gold_prefix=True, max_turns=1, max_episode_tokens=2048)
    enc = lambda s: tok.encode(s, add_special_tokens=False)
    second = enc(format_tool_call(tasks[1].steps[1].call) + "<|im_end|>")
    trainer.worker.sampler = ScriptedSampler([(second, True)])
    rollouts = trainer.worker.run(tasks[1:2], np.array([1]), seed=0, gold_turns=[1])
    prompt = trainer.worker.prompt_tokens(tasks[1], gold_turns=1)
    assert rollouts.tokens[0] == prompt + second and rollouts.turns.tolist() == [1] * 4
    assert rollouts.loss_mask[0] == [0] * len(prompt) + [1] * len(second)
    assert rollouts.successes[0] == [True]
    assert trainer.worker.sampler.extensions == []   # its observation would be read by nothing

    windowed = trainer.score(rollouts, np.array([1]), gold_turns=[1])
    np.testing.assert_allclose(windowed.reward, 1.0, atol=1e-6)   # exactly the one turn it had to write
    whole = trainer.score(rollouts, np.array([1]))
    assert (whole.reward < 0.9).all()   # against the whole task, the given first call counts as missing
