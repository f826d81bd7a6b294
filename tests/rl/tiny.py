"""A tiny tool ecosystem, tokenizer and policy for fast trainer tests."""

from __future__ import annotations

from orchestra.data.types import CacheEntry, Call, ParamSpec, Step, Task, ToolSpec
from orchestra.env.build import Environment
from orchestra.env.codec import format_tool_call
from orchestra.env.env import EnvConfig
from orchestra.env.views import ResponseView, ToolView
from orchestra.model.chat import CHAT_TEMPLATE
from orchestra.model.config import ModelConfig
from orchestra.model.modeling import init_model
from orchestra.model.tokenizer import build_tokenizer
from orchestra.rl.learner import LossConfig
from orchestra.rl.rollout import RolloutConfig
from orchestra.rl.trainer import TrainConfig, Trainer

TOOLS = {
    "get_weather": ToolSpec("get_weather", "Weather of a city.", (ParamSpec("city", "string"),), ("city",)),
    "get_time": ToolSpec("get_time", "Local time of a city.", (ParamSpec("city", "string"),), ("city",)),
}
CITIES = ["Paris", "Rome", "Oslo", "Lima"]


def tasks() -> list[Task]:
    out = []
    for i, city in enumerate(CITIES):
        call = Call("get_weather", {"city": city})
        out.append(Task(f"t{i}", f"What is the weather in {city}?",
                        (Step(0, call, (), {"status": True, "data": {"sky": "clear"}}, True),),
                        ("get_weather", "get_time")))
    return out


def chained_tasks() -> list[Task]:
    """Two turns each: the weather's response holds a code that the time lookup passes on. Task 0's
    code is longer than the tiny view shows (a hidden value)."""
    out = []
    for i, city in enumerate(CITIES):
        code = city.lower() + "-" + "x" * 90 if i == 0 else city.upper()
        weather = Step(0, Call("get_weather", {"city": city}), (), {"status": True, "data": {"code": code}}, True)
        time = Step(1, Call("get_time", {"city": code}), (0,), {"status": True, "data": {"time": "noon"}}, True,
                    dependency_args=(("city", 0, "data.code"),))
        out.append(Task(f"c{i}", f"What is the time where the weather of {city} is?", (weather, time),
                        ("get_weather", "get_time")))
    return out


def token_task() -> Task:
    """Three turns: a search whose response holds a long token and an id, a call passing the token
    (cut by the default view), and a call passing the id (shown)."""
    token = "Tk" + "x7" * 40
    search = {"status": True, "data": [{"id": "h1", "token": token}]}
    steps = (Step(0, Call("get_weather", {"city": "Paris"}), (), search, True),
             Step(1, Call("get_time", {"city": token}), (0,), {"status": True, "data": {"t": "9"}}, True),
             Step(2, Call("get_time", {"city": "h1"}), (0,), {"status": True, "data": {"t": "9"}}, True))
    return Task("tok", "Weather in Paris, then the time twice.", steps, ("get_weather", "get_time"))


def entries(task_list: list[Task] | None = None) -> list[CacheEntry]:
    return [CacheEntry(s.call.function, s.call.arguments, s.response) for t in task_list or tasks() for s in t.steps]


def tokenizer():
    corpus = [t.query for t in tasks()] + [format_tool_call(s.call) for t in tasks() for s in t.steps]
    corpus += ["What is the local time in the city?", "All requested steps are done; the results are above."]
    return build_tokenizer(corpus * 3, vocab_size=400, chat_template=CHAT_TEMPLATE, digit_group=1)


def model(vocab: int, seed: int = 0):
    config = ModelConfig(model_type="qwen2", vocab_size=vocab, hidden_size=32, num_layers=2, num_heads=2,
                         num_kv_heads=1, intermediate_size=64, max_position_embeddings=1024, dtype="float32")
    return init_model(config, seed)


def environment(tok, task_list: list[Task] | None = None) -> Environment:
    return Environment.build(TOOLS, entries(task_list), tokenize=lambda s: tok.encode(s, add_special_tokens=False),
                             config=EnvConfig(max_turns=2, max_calls=4, max_calls_per_turn=2),
                             view=ResponseView(max_chars=80))


def trainer(tok, run_dir: str, steps: int = 3, seed: int = 0, algorithm: str = "grpo", lr: float = 1e-3,
            policy=None, task_list: list[Task] | None = None, share_prompt: bool = True, train: dict | None = None,
            **rollout) -> Trainer:
    """A tiny trainer; `train` overrides TrainConfig fields, the other keywords RolloutConfig's."""
    from orchestra.reward import RewardConfig
    rollout_cfg = RolloutConfig(**{"group_size": 4, "max_turns": 2, "turn_tokens": 24,
                                   "max_episode_tokens": 512, **rollout})
    task_list = task_list or tasks()
    return Trainer(policy or model(len(tok), seed), tok, environment(tok, task_list), ToolView(), task_list,
                   RewardConfig(), LossConfig(algorithm=algorithm), rollout_cfg,
                   TrainConfig(**{"steps": steps, "tasks_per_step": 2, "minibatch_size": 4, "micro_batch_size": 2,
                                  "lr": lr, "warmup_steps": 1, "checkpoint_every": 1, "checkpoint_keep": 3,
                                  "seed": seed, "length_bucket": 64, "share_prompt": share_prompt, **(train or {})}),
                   run_dir)
