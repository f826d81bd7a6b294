"""The shipped small base policy (checkpoints/small-base): the main job's default model points at it,
it loads through the same loader as any Hugging Face checkpoint, and on a task whose values it never
saw it answers with a well-formed tool call, most often the exact one."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from orchestra.eval import eval_config, evaluate
from orchestra.model.chat import load_tokenizer
from orchestra.model.presets import build_model
from orchestra.rl.policy import SamplerPolicy
from orchestra.synth import SplitConfig, SynthConfig, read_seen_values, split_tasks, synthesize

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "checkpoints" / "small-base"


@pytest.fixture(scope="module")
def main_config():
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return compose(config_name="config")


def test_the_main_jobs_default_policy_is_the_shipped_base(main_config):
    assert (REPO / main_config.model.path).resolve() == BASE.resolve()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "README.md",
                 "seen_values.json"):
        assert (BASE / name).is_file(), name
    size = sum(p.stat().st_size for p in BASE.iterdir())
    assert size < 25 * 2**20, f"{size / 2**20:.1f} MiB"


def test_it_answers_unseen_tasks_with_well_formed_tool_calls(booking, main_config):
    model = build_model(main_config.model.preset, str(BASE), main_config.model.dtype)
    tokenizer = load_tokenizer(str(BASE))
    seen = read_seen_values(str(BASE))
    assert seen
    synth = synthesize(booking, SynthConfig.from_dict({"count": 60, "source": "mixed", "complexity": {"steps": [2, 3]}}),
                       seed=11)
    held_out = split_tasks(synth.tasks, SplitConfig(by="values", held_out_fraction=0.3), seed=11,
                           seen_values=seen).held_out[:8]
    assert len(held_out) == 8, "too few synthesised tasks avoid the values the base was trained on"
    plain = OmegaConf.to_container(main_config.eval, resolve=True)
    config = eval_config({**plain, "max_turns": 1, "batch_size": 8, "progress": False})
    summary, samples = evaluate(SamplerPolicy(model, tokenizer, max_new_tokens=160), held_out, booking.tools,
                                config, exact_match=booking.exact_match)
    # A parsable call of an offered tool with known parameter names on most tasks, and on at least
    # half of them the exact first call, values copied from a request it never saw (the base's card:
    # 29% of all held-out calls exact, first calls being the easiest; 7 of these 8 when it was made).
    good = 0
    for task, sample in zip(held_out, samples):
        calls = sample["turns"][0]["calls"]
        good += bool(calls) and all(
            c["parse_error"] is None and c["function"] in task.candidate_tools
            and set(c["arguments"]) <= set(booking.tools[c["function"]].param_names) for c in calls)
    assert good >= 6, [s["turns"][0]["text"] for s in samples]
    assert summary["overall"]["matched_calls"] >= 4, [s["turns"][0]["calls"] for s in samples]
