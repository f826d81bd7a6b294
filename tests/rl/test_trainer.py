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


def varied_rewards(self, rollouts, task_ids, gold_turns=None):
    # a random tiny policy scores 0 everywhere, which would leave nothing to update: a reward that
    # depends on what was sampled (here, a hash of its tokens) makes every step move the parameters
    import types
    r = np.array([(sum(t) % 7) / 6 for t in rollouts.tokens], np.float32)
    return types.SimpleNamespace(reward=r, atomic=r, orch=r, binary=r)


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_resume_after_interruption_continues_identically(tok, tmp_path, algorithm, monkeypatch):
    monkeypatch.setattr(tiny.Trainer, "score", varied_rewards)
    straight = tiny.trainer(tok, str(tmp_path / "a"), algorithm=algorithm)
    straight_metrics = [straight.train_step() for _ in range(3)]

    interrupted = tiny.trainer(tok, str(tmp_path / "b"), algorithm=algorithm)
    first = [interrupted.train_step() for _ in range(2)]
    del interrupted  # "killed" after step 2; its checkpoints stay on disk
    resumed = tiny.trainer(tok, str(tmp_path / "b"), algorithm=algorithm, policy=tiny.model(len(tok), seed=99))
    assert resumed.restore() and resumed.step == 2
    last = resumed.train_step()

    assert all(m["updates"] > 0 for m in straight_metrics)
    for a, b in zip(straight_metrics, first + [last]):
        assert a["reward"] == b["reward"] and a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    for a, b in zip(params_of(straight), params_of(resumed)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_restore_of_a_kept_step_gives_that_steps_parameters(tok, tmp_path, monkeypatch):
    monkeypatch.setattr(tiny.Trainer, "score", varied_rewards)
    trainer = tiny.trainer(tok, str(tmp_path))
    after = []
    for _ in range(3):
        trainer.train_step()
        after.append([np.asarray(p) for p in params_of(trainer)])
    assert trainer.checkpointer.steps() == [1, 2, 3]

    other = tiny.trainer(tok, str(tmp_path), policy=tiny.model(len(tok), seed=99))
    assert other.restore(1) and other.step == 1
    assert any(not np.array_equal(a, b) for a, b in zip(after[0], after[2]))  # the steps really differ
    for a, b in zip(after[0], params_of(other)):
        np.testing.assert_array_equal(a, np.asarray(b))
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of step 7 .*kept: \[1, 2, 3\]"):
        other.restore(7)


def test_rollout_records_policy_tokens_and_masks_observations(tok, tmp_path):
    trainer = tiny.trainer(tok, str(tmp_path))
    rollouts = trainer.worker.run(trainer.tasks[:1], np.array([0]), seed=0)
    for tokens, mask, logp in zip(rollouts.tokens, rollouts.loss_mask, rollouts.logprobs):
        assert len(tokens) == len(mask) == len(logp)
        prompt = trainer.worker.prompt_tokens(trainer.tasks[0])
        assert tokens[: len(prompt)] == prompt and not any(mask[: len(prompt)])
        assert sum(mask) > 0 and all((lp < 0) == bool(m) or lp == 0 for lp, m in zip(logp, mask))


class ScriptedSampler:
    """Writes scripted turns (token lists, each with whether it ended on <|im_end|>) and records what
    the rollout appends after them."""

    def __init__(self, turns):
        self.turns, self.extensions = turns, []

    def prefill(self, prompts):
        return len(prompts)

    def generate(self, n_rows, max_new, sampling, seed, active):
        from orchestra.model.sampler import SampleOutput
        tokens, stopped = self.turns[len(self.extensions)]
        row = np.array([tokens] * n_rows, np.int32)
        return SampleOutput(row, np.full(row.shape, -0.5, np.float32), np.zeros(row.shape, np.float32),
                            np.full(n_rows, len(tokens), np.int32), np.full(n_rows, stopped)), n_rows

    def extend(self, n_rows, extension):
        self.extensions.append(extension)
        return n_rows


def test_a_turn_cut_off_by_the_token_limit_is_closed_and_answered_with_a_parse_error(tok, tmp_path):
    # As in the evaluation: the cut-off call gets a parse error and the policy writes the next turn.
    trainer = tiny.trainer(tok, str(tmp_path), turn_tokens=8, max_episode_tokens=1024)
    enc = lambda s: tok.encode(s, add_special_tokens=False)
    cut = enc('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa')
    call = enc('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>')
    sampler = ScriptedSampler([(cut, False), (call, True)])
    trainer.worker.sampler = sampler
    rollouts = trainer.worker.run(trainer.tasks[:1], np.array([0]), seed=0)
    assert rollouts.turns.tolist() == [2] * 4 and rollouts.cut_off.tolist() == [1] * 4
    assert [c.ok for c in rollouts.calls[0]] == [False, True] and rollouts.successes[0] == [False, True]
    first = sampler.extensions[0][0]
    assert first[: len(enc("<|im_end|>"))] == enc("<|im_end|>")
    assert "Invalid tool call" in tok.decode(first) and "<|im_start|>assistant" in tok.decode(first)
    prompt = len(trainer.worker.prompt_tokens(trainer.tasks[0]))
    assert rollouts.tokens[0] == trainer.worker.prompt_tokens(trainer.tasks[0]) + cut + first + call
    assert rollouts.loss_mask[0] == [0] * prompt + [1] * len(cut) + [0] * len(first) + [1] * len(call)

    # The paper's reward drops the cut-off block; reward.count_unparsable scores it as a call worth 0.
    task_ids = np.array([0])
    dropped = trainer.score(rollouts, task_ids)
    trainer.count_unparsable = True
    counted = trainer.score(rollouts, task_ids)
    assert (dropped.atomic > 0).all()
    np.testing.assert_allclose(counted.atomic, dropped.atomic / 2)  # one more call in the mean, worth 0


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


@pytest.mark.parametrize("share_prompt, group_size, train, message", [
    (False, 4, {"tasks_per_step": 3, "minibatch_size": 8},
     r"tasks_per_step x group_size \(12\) must be a multiple of minibatch_size \(8\)"),
    (True, 3, {"tasks_per_step": 4},
     r"rl.share_prompt .*minibatch_size \(4\) and rollout.group_size \(3\) must divide the other"),
])
def test_batch_shapes_that_do_not_split_are_refused(tok, tmp_path, share_prompt, group_size, train, message):
    with pytest.raises(ValueError, match=message):
        tiny.trainer(tok, str(tmp_path), share_prompt=share_prompt, group_size=group_size, train=train)


def test_groups_that_do_not_divide_minibatches_are_fine_without_a_shared_prompt(tok, tmp_path):
    trainer = tiny.trainer(tok, str(tmp_path), share_prompt=False, group_size=3, train={"tasks_per_step": 4})
    assert trainer.group_pass == 3


def test_padded_length_is_the_next_multiple_of_the_bucket():
    from orchestra.rl.trainer import padded_length
    assert [padded_length(n, 128) for n in (1, 128, 129, 1000, 1025, 2048)] == [128, 128, 256, 1024, 1152, 2048]


def test_minibatches_take_the_kept_rows_once_in_random_order():
    from orchestra.rl.trainer import minibatch_rows
    keep = np.array([0, 1, 2, 3, 4, 6, 7, 9, 10])     # rows 5 and 8 left out (say, a zero-advantage group)
    orders = set()
    for seed in range(4):
        mbs = minibatch_rows(keep, 4, np.random.default_rng(seed))
        assert [len(r) for r in mbs] == [4, 4, 1]
        assert sorted(np.concatenate(mbs).tolist()) == keep.tolist()
        orders.add(tuple(np.concatenate(mbs).tolist()))
    assert len(orders) > 1


def test_micro_batches_group_rows_by_length_and_pad_each_to_its_own():
    from orchestra.rl.trainer import micro_batches, take_rows
    lengths = np.array([100, 600, 90, 300, 700, 80, 120, 500, 1100])
    rows = np.array([8, 0, 1, 2, 3, 4, 6, 7])            # row 5 is in another minibatch
    parts = micro_batches(rows, lengths, size=3, bucket=128)
    # shortest first: the 300-token row is padded with the 500- and 600-token ones to 640, not to the
    # 1,152 of the longest row; the last pass is filled with a padding row
    assert [(r.tolist(), length) for r, length in parts] == [([2, 0, 6], 128), ([3, 7, 1], 640),
                                                           ([4, 8, -1], 1152)]
    n, width = 9, 1152
    batch = {"tokens": np.arange(n * width).reshape(n, width), "loss_mask": np.ones((n, width), np.int32),
             "segment_ids": np.ones((n, width), np.int32), "old_logp": np.zeros((n, width - 1), np.float32),
             "advantages": np.arange(n, dtype=np.float32)}
    r, length = parts[-1]
    part = take_rows(batch, r, length)
    assert part["tokens"].shape == (3, 1152) and part["old_logp"].shape == (3, 1151)
    pad = r == -1
    assert not part["loss_mask"][pad].any() and not part["segment_ids"][pad].any()
    assert part["loss_mask"][~pad].all()
    np.testing.assert_array_equal(part["advantages"][~pad], r[~pad])
    assert take_rows(batch, parts[0][0], parts[0][1])["tokens"].shape == (3, 128)


def test_sft_batches_take_each_episode_once_an_epoch_in_random_order():
    from orchestra.rl.sft import batches
    stream = batches(9, 4, np.random.default_rng(0))   # 9 episodes, batches of 4: one left out per epoch
    left_out, firsts = set(), set()
    for _ in range(12):
        epoch = [next(stream) for _ in range(2)]
        seen = np.concatenate(epoch)
        assert len(set(seen.tolist())) == 8 and set(seen.tolist()) <= set(range(9))
        left_out |= set(range(9)) - set(seen.tolist())
        firsts.add(tuple(epoch[0].tolist()))
    assert len(left_out) > 1 and len(firsts) > 1   # which episode sits out, and the batches, change


def test_groups_with_equal_rewards_are_left_out_of_the_update(tok, tmp_path, monkeypatch):
    import types
    trainer = tiny.trainer(tok, str(tmp_path), steps=2)  # 2 tasks x group of 4; minibatches of 4 rows
    per_step = iter([np.array([0.5, 0.5, 0.5, 0.5, 0.0, 1.0, 0.0, 0.0]),   # only the second group varies
                     np.full(8, 0.3)])                                     # no group varies
    monkeypatch.setattr(trainer, "score", lambda rollouts, task_ids, gold_turns=None: types.SimpleNamespace(
        reward=(r := next(per_step)), atomic=r, orch=r, binary=r))
    before = params_of(trainer)
    first = trainer.train_step()
    assert first["rows_updated"] == 4 and first["updates"] == 1 and np.isfinite(first["kl"])
    changed = params_of(trainer)
    assert any(not np.allclose(a, b) for a, b in zip(before, changed))
    second = trainer.train_step()
    assert second["rows_updated"] == 0 and second["updates"] == 0 and np.isnan(second["kl"])
    assert all(np.array_equal(a, b) for a, b in zip(changed, params_of(trainer)))


@pytest.mark.parametrize("share_prompt", [False, True])
def test_ppo_values_by_pass_equal_one_pass_over_the_batch(tok, tmp_path, share_prompt):
    import dataclasses
    from orchestra.rl.learner import sequence_values
    from orchestra.rl.trainer import micro_batches, pad_rollouts
    trainer = tiny.trainer(tok, str(tmp_path), algorithm="ppo", share_prompt=share_prompt)
    rollouts = trainer.worker.run(trainer.tasks[:2], np.array([0, 1]), seed=0)
    # rows cut to lengths far apart, so the passes are padded to several lengths
    cut = [len(t) - 70 * i for i, t in enumerate(rollouts.tokens)]
    rollouts = dataclasses.replace(rollouts, **{k: [row[:n] for row, n in zip(getattr(rollouts, k), cut)]
                                                for k in ("tokens", "loss_mask", "logprobs")})
    batch = pad_rollouts(rollouts, trainer.cfg.length_bucket)
    lengths = np.array([len(t) for t in rollouts.tokens])
    passes = micro_batches(np.arange(len(lengths)), lengths, trainer.cfg.rows_per_pass, trainer.cfg.length_bucket)
    assert min(length for _, length in passes) < batch["tokens"].shape[1]
    head = nnx.state(trainer.learner.value_head)   # zero at initialisation: give it weights to compare
    nnx.update(trainer.learner.value_head, jax.tree.map(lambda x: x + 0.1 * jax.random.normal(
        jax.random.key(0), x.shape, x.dtype), head))
    values = trainer.batch_values(batch, lengths)
    whole = np.asarray(sequence_values(trainer.learner, {k: batch[k] for k in ("tokens", "segment_ids")}))
    # equal wherever a row has tokens (causal attention: the padding after a row does not change it);
    # with the prompt shared, wherever the value is read (the policy's tokens)
    inside = np.arange(values.shape[1])[None, :] < lengths[:, None] - 1
    if share_prompt:
        inside &= batch["loss_mask"][:, 1:] == 1
        assert inside.sum() > 20
    assert np.abs(whole[inside]).max() > 0
    np.testing.assert_allclose(values[inside], whole[inside], atol=1e-5)


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_a_step_with_each_groups_prompt_encoded_once_equals_the_step_without(tok, tmp_path, algorithm,
                                                                              monkeypatch):
    monkeypatch.setattr(tiny.Trainer, "score", varied_rewards)
    # the same two-turn rollouts (same seed and weights), 2 tasks x 2 rows: one minibatch (the minibatches
    # of the two ways differ: whole groups against any rows); a pass per group against micro-batches
    after = []
    for share in (True, False):
        trainer = tiny.trainer(tok, str(tmp_path / str(share)), algorithm=algorithm, share_prompt=share, steps=1,
                               group_size=2)
        metrics = trainer.train_step()
        assert metrics["updates"] >= 1, metrics
        after.append((params_of(trainer), metrics))
    (shared, m1), (plain, m2) = after
    assert m1["reward"] == m2["reward"] and m1["rows_updated"] == m2["rows_updated"]
    assert m1["loss"] == pytest.approx(m2["loss"], rel=1e-4, abs=1e-6)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(shared, plain)) < 1e-5
