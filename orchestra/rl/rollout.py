"""Multi-turn rollouts: the policy and the cache-backed environment take turns.

Each task of a batch is sampled `group_size` times. Every turn the sampler writes an assistant turn
(up to `<|im_end|>`); the host parses its `<tool_call>` blocks (the only Python per turn); the jitted,
vmapped environment answers every call from its device tables; the observation tokens are appended
to the sampler's KV cache, framed as the chat template frames tool responses. An episode ends when
the policy answers without a call, when the environment says done (turn or call budget), after
`max_turns` turns (the last turn's observation is neither appended nor fed to the sampler: nothing
reads it), or when the episode's token budget is spent. A turn that runs out of tokens is closed
with `<|im_end|>` (not a policy token) and its cut-off call answered with a parse error, as the
evaluation does, so RL sees the turn after one too.

Recorded per row: the whole token sequence, the sampler's log-probs of the policy's own tokens, a
loss mask that is 1 exactly on policy tokens, and the calls with their success flags (for the reward).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from orchestra.data.types import Task
from orchestra.env.build import Environment
from orchestra.env.views import ToolView
from orchestra.env.codec import ParsedCall
from orchestra.model.chat import IM_END, IM_START, encode_chat
from orchestra.model.sampler import Sampler, SamplingParams
from orchestra.rl.episodes import gold_prefix_messages, tool_schemas


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    group_size: int = 8
    max_turns: int = 6
    turn_tokens: int = 160        # new tokens per assistant turn
    max_episode_tokens: int = 2048  # prompt + everything after it
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    # Start each group after a random number of its task's gold turns (calls and recorded responses
    # in the context, as the evaluation's golden path gives them) and score it on the gold turns it
    # can still reach (`episodes.turn_window`). With max_turns 1, every row is one turn of the
    # evaluation, rewarded on its own.
    gold_prefix: bool = False

    def __post_init__(self):
        for name in ("group_size", "max_turns", "turn_tokens", "max_episode_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"rl.rollout.{name} must be at least 1, got {getattr(self, name)}")


@dataclasses.dataclass
class Rollouts:
    task_rows: np.ndarray          # [N] index into the batch's task list of each row
    tokens: list[list[int]]        # whole sequence of each row
    loss_mask: list[list[int]]     # 1 on policy tokens
    logprobs: list[list[float]]    # sampler's log pi(token) on policy tokens, 0 elsewhere
    calls: list[list[ParsedCall]]  # every <tool_call> block the policy wrote, in order
    successes: list[list[bool]]    # executed and succeeded (blocks past a budget count as failed)
    turns: np.ndarray              # [N] assistant turns taken
    cut_off: np.ndarray            # [N] of those, turns cut off by the token limit (a loop, a rambling call)
    generated_tokens: int          # policy tokens sampled (throughput)
    env_seconds: float = 0.0
    generate_seconds: float = 0.0


class RolloutWorker:
    """Holds the pieces a rollout needs: sampler, tokenizer, environment, and the framing tokens."""

    def __init__(self, sampler: Sampler, tokenizer, environment: Environment, tool_view: ToolView,
                 config: RolloutConfig):
        self.sampler, self.tokenizer, self.environment = sampler, tokenizer, environment
        self.tool_view, self.config = tool_view, config
        enc = lambda s: tokenizer.encode(s, add_special_tokens=False)
        # The chat template frames tool results as one user turn holding <tool_response> blocks:
        #   <|im_end|>\n<|im_start|>user\n<tool_response>...</tool_response><|im_end|>\n<|im_start|>assistant\n
        self._open_user = enc(f"\n{IM_START}user")
        self._between = enc("\n")
        self._close_user = enc(f"{IM_END}\n{IM_START}assistant\n")
        self._im_end = enc(IM_END)
        env = environment.env
        self._reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None, 0)))
        self._step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, None)))

    def prompt_tokens(self, task: Task, gold_turns: int = 0) -> list[int]:
        """The prompt, followed by the first `gold_turns` gold turns, up to the next assistant turn."""
        tools = tool_schemas(task, self.environment.tools, self.tool_view)
        messages = gold_prefix_messages(task, self.environment.view, gold_turns)
        return encode_chat(self.tokenizer, messages, tools, add_generation_prompt=True).token_ids.tolist()

    def run(self, tasks: list[Task], task_ids: np.ndarray, seed: int, gold_turns: list[int] | None = None) -> Rollouts:
        """`gold_turns`: per task, how many of its gold turns the episode starts after (default none)."""
        import time
        cfg, env = self.config, self.environment
        rows = np.repeat(np.arange(len(tasks)), cfg.group_size)
        n = len(rows)
        starts = [self.prompt_tokens(task, gold_turns[k] if gold_turns else 0) for k, task in enumerate(tasks)]
        prompts = [starts[r] for r in rows]
        tokens = [list(p) for p in prompts]
        mask = [[0] * len(p) for p in prompts]
        logps = [[0.0] * len(p) for p in prompts]
        calls: list[list[ParsedCall]] = [[] for _ in range(n)]
        successes: list[list[bool]] = [[] for _ in range(n)]
        turns = np.zeros(n, np.int32)
        cut_off = np.zeros(n, np.int32)
        active = np.array([len(p) < cfg.max_episode_tokens for p in prompts])
        generated = 0
        t_gen = t_env = 0.0

        t0 = time.perf_counter()
        state = self.sampler.prefill(prompts)
        keys = jax.random.split(jax.random.key(seed), n)
        env_state, _ = self._reset(keys, env.params, jnp.asarray(task_ids[rows])[:, None])
        sampling = SamplingParams(cfg.temperature, cfg.top_k, cfg.top_p)
        t_gen += time.perf_counter() - t0
        for turn in range(cfg.max_turns):
            if not active.any():
                break
            t0 = time.perf_counter()
            out, state = self.sampler.generate(state, cfg.turn_tokens, sampling, seed=seed * 1000 + turn,
                                               active=active)
            t_gen += time.perf_counter() - t0
            t0 = time.perf_counter()
            encoded, parsed_rows = [], []
            for i in range(n):
                if not active[i]:
                    encoded.append(env.encoder.encode_parsed([]))
                    parsed_rows.append([])
                    continue
                new = out.row(i)
                generated += len(new)
                turns[i] += 1
                cut_off[i] += not out.stopped[i]
                tokens[i] += new
                mask[i] += [1] * len(new)
                logps[i] += out.logprobs[i, : len(new)].tolist()
                text = self.tokenizer.decode(new, skip_special_tokens=False)
                turn_calls, parsed = env.encoder.encode_text(text)
                encoded.append(turn_calls)
                parsed_rows.append(parsed)
            batch_calls = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *encoded)
            env_state, ts = self._step(env_state, batch_calls, env.params)
            ts = jax.device_get(ts)
            done = np.asarray(env_state.done)
            extension = []
            for i in range(n):
                executed = np.flatnonzero(ts.executed[i])
                calls[i] += parsed_rows[i]
                successes[i] += [slot < len(ts.success[i]) and bool(ts.success[i, slot] and ts.executed[i, slot])
                                 for slot in range(len(parsed_rows[i]))]
                # after the last turn nothing reads an observation: neither the sampler nor the loss
                if not active[i] or done[i] or len(executed) == 0 or turn == cfg.max_turns - 1:
                    active[i] = False
                    extension.append([])
                    continue
                # A turn cut off by the token limit has no <|im_end|> of its own: close it as the chat
                # template closes the evaluation's truncated turns.
                framed = ([] if out.stopped[i] else list(self._im_end)) + list(self._open_user)
                for slot in executed:
                    framed += self._between + ts.obs_tokens[i, slot, : ts.obs_lengths[i, slot]].tolist()
                framed += self._close_user
                if len(tokens[i]) + len(framed) + cfg.turn_tokens > cfg.max_episode_tokens:
                    active[i] = False  # no room for another turn
                    extension.append([])
                    continue
                tokens[i] += framed
                mask[i] += [0] * len(framed)
                logps[i] += [0.0] * len(framed)
                extension.append(framed)
            t_env += time.perf_counter() - t0
            if active.any():
                t0 = time.perf_counter()
                state = self.sampler.extend(state, extension)
                t_gen += time.perf_counter() - t0
        return Rollouts(rows, tokens, mask, logps, calls, successes, turns, cut_off, generated, t_env, t_gen)
