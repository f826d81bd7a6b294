"""experiments/pretrain.py on a tiny config: checkpoints and the HF folder load back, a resumed run
continues at the saved step and data position (same weights as an uninterrupted run), and the
copy probe finds every argument value of a gold episode."""

import json
import os

import numpy as np
import pytest
from flax import nnx
from hydra import compose, initialize_config_dir

from experiments import pretrain
from experiments.pretrain import make_tx, probe_items, run
from orchestra.env.views import ResponseView, ToolView
from orchestra.model.chat import CHAT_TEMPLATE, install_chat_template, load_tokenizer
from orchestra.model.loader import load_model
from orchestra.model.modeling import init_model
from orchestra.model.tokenizer import build_tokenizer, save_tokenizer
from orchestra.rl.checkpoint import Checkpointer

CONF = os.path.join(os.path.dirname(__file__), "..", "..", "conf")
TINY_MODEL = "{num_layers: 1, hidden_size: 32, intermediate_size: 64, num_heads: 2, num_kv_heads: 1, vocab_size: 2048}"


@pytest.fixture(scope="module")
def tokenizer_dir(booking, tmp_path_factory):
    view = ResponseView()
    texts = [json.dumps(t.to_json(), ensure_ascii=False) for t in booking.tools.values()]
    for task in booking.tasks:
        texts.append(task.query)
        texts += [view.render(s.response) for s in task.steps]
    path = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(build_tokenizer(texts, 2048, CHAT_TEMPLATE), path)
    return str(path)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def tiny_overrides(run_dir, tokenizer_dir, data_dir, **extra):
    return [
        f"run_dir={run_dir}", "logger=none", "progress=false", "compile_cache_dir=null",
        f"data_cache_dir={data_dir}", f"tokenizer.path={tokenizer_dir}", f"model.overrides={TINY_MODEL}",
        "synth.count=24", "synth.split.held_out_fraction=0.3", "train.steps=5", "train.warmup_steps=2",
        "train.tokens_per_batch=2048", "train.buckets=[2048]", "train.chunk_examples=2",
        "checkpoint.every=3", "checkpoint.keep=10", "eval.every=0", "eval.final_tasks=0", "eval.probe_tasks=2",
        "eval.probe_batch=2", "curriculum.enabled=true",
    ] + [f"{k}={v}" for k, v in extra.items()]


def tiny_config(*args, **extra):
    with initialize_config_dir(config_dir=os.path.abspath(CONF), version_base=None):
        return compose("pretrain", overrides=tiny_overrides(*args, **extra))


def tiny_run(*args, **extra):
    return run(tiny_config(*args, **extra), tiny_overrides(*args, **extra))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tokenizer_dir, data_dir, booking):
    """An uninterrupted 5-step run, and one stopped at step 3 then resumed to 5. The recorded tasks
    stand in for synthesised ones (synthesis has its own tests), which keeps this fast."""
    root = tmp_path_factory.mktemp("runs")
    tasks = [t for t in booking.tasks if len(t.steps) <= 3]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain, "train_and_held_out", lambda eco, cfg, log: (tasks[:16], tasks[16:24], {}))
        straight = tiny_run(root / "straight", tokenizer_dir, data_dir)
        paused = tiny_run(root / "resumed", tokenizer_dir, data_dir, stop_at_step=3)
        paused_card = (root / "resumed" / "model" / "README.md").read_text()
        paused_model = load_model(root / "resumed" / "model")  # the folder as it was after 3 steps
        resumed = tiny_run(root / "resumed", tokenizer_dir, data_dir, resume="true")
    return root, straight, paused, (paused_model, paused_card), resumed


def test_three_step_run_writes_a_checkpoint_and_a_loadable_hf_folder(runs, tokenizer_dir, data_dir):
    root, _, paused, (paused_model, card), _ = runs
    assert paused["state"]["step"] == 3 and paused["stop_reason"] == "stop_at_step"
    cfg = tiny_config(root / "resumed", tokenizer_dir, data_dir)
    # The Orbax checkpoint of step 3 holds the weights the HF folder had after those 3 steps.
    model = init_model(paused_model.config, 0)
    optimizer = nnx.Optimizer(model, make_tx(cfg.train), wrt=nnx.Param)
    abstract = {"model": nnx.to_pure_dict(nnx.state(model)), "optimizer": nnx.to_pure_dict(nnx.state(optimizer))}
    step, tree, meta = Checkpointer(str(root / "resumed" / "checkpoints"), 1, 2).restore(abstract, step=3)
    assert step == 3 and meta["step"] == 3
    np.testing.assert_array_equal(np.asarray(tree["model"]["embed"]), np.asarray(paused_model.embed[...]))
    assert not np.allclose(np.asarray(paused_model.embed[...]), np.asarray(init_model(paused_model.config, 0).embed[...]))
    assert paused_model.config.num_layers == 1 and paused_model.config.vocab_size == 2048
    tokenizer = load_tokenizer(root / "resumed" / "model")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert "stop_at_step=3" in card.split("## Command")[1] and "parameters:" in card


def test_resume_continues_at_the_saved_step_and_data_position(runs):
    root, straight, paused, _, resumed = runs
    assert resumed["state"]["step"] == 5 and straight["state"]["step"] == 5
    log = (root / "resumed" / "log.txt").read_text()
    assert "resumed at step 3" in log
    # Same batches in the same order: the same tokens and the same weights as without the pause.
    assert resumed["state"]["tokens"] == straight["state"]["tokens"]
    assert resumed["state"]["skill_counts"] == straight["state"]["skill_counts"]
    a, b = load_model(root / "straight" / "model"), load_model(root / "resumed" / "model")
    for (path, x), (_, y) in zip(nnx.to_flat_state(nnx.state(a, nnx.Param)), nnx.to_flat_state(nnx.state(b, nnx.Param))):
        np.testing.assert_allclose(np.asarray(x.get_value()), np.asarray(y.get_value()), rtol=0, atol=1e-6,
                                   err_msg=str(path))


def test_a_fresh_run_refuses_a_directory_with_checkpoints(runs, tokenizer_dir, data_dir):
    root = runs[0]
    with pytest.raises(FileExistsError, match="resume=true"):
        tiny_run(root / "straight", tokenizer_dir, data_dir)


def test_probe_locates_every_argument_value(booking, tokenizer_dir):
    tokenizer = load_tokenizer(tokenizer_dir)
    install_chat_template(tokenizer)
    for task in booking.tasks[:12]:
        ids, mask, items = probe_items(task, tokenizer, booking.tools, ResponseView(), ToolView())
        values = [v for s in task.steps for v in s.call.arguments.values() if v is not None]
        assert len(items) == len(values)
        written = tokenizer.decode(ids[mask == 1])  # the policy's turns: calls and the final answer
        assert written.count("<tool_call>") == len(task.steps) and written.endswith("<|im_end|>")
        texts = {v if isinstance(v, str) else json.dumps(v) for v in values}
        for _, _, idx in items:
            assert tokenizer.decode(ids[idx]) in texts


def test_bucketed_batches_take_every_item_once_with_one_shape_per_bucket():
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(10, 2000, 300))
    buckets = [128, 512, 1024, 2048]
    batches = pretrain.bucket_batches(lengths, 4096, buckets, rng)
    taken = sorted(i for members, _, _ in batches for i in members)
    assert taken == list(range(len(lengths)))
    for members, length, rows in batches:
        assert length in buckets and rows == 4096 // length and len(members) <= rows
        assert all(lengths[i] <= length for i in members)
        assert all(pretrain.bucket_of(lengths[i], buckets) == length for i in members)


def test_bucketed_batches_mix_lengths_within_a_bucket():
    # 200 short drills, one bucket: taken by exact length, the batches' length ranges would be disjoint
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(10, 128, 200))
    batches = pretrain.bucket_batches(lengths, 4096, [128, 256], rng)
    assert [len(m) for m, _, _ in batches if len(m) < 32] == [200 % 32]
    spans = sorted((min(lengths[i] for i in m), max(lengths[i] for i in m)) for m, _, _ in batches)
    assert any(hi > next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))
