"""Pretrain a small policy from scratch on a curriculum of copy skills and whole episodes.

    python -m experiments.pretrain run_dir=/work/pretrain_runs/long train.steps=3000 max_minutes=150
    python -m experiments.pretrain run_dir=/work/pretrain_runs/long resume=true     # continue a killed run

What it does:
1. Builds the copy-friendly tokenizer from the ecosystem (or loads `tokenizer.path`); it is kept in
   `run_dir/tokenizer` so a resumed run uses the very same one.
2. Synthesises tasks and splits them by values (no held-out argument value appears in any training
   task; curriculum values are drawn outside that set too). The split is cached under
   `data_cache_dir`, keyed by its settings, because splitting by values takes minutes.
3. Trains the model preset from scratch: AdamW with warmup and cosine decay (the learning rate is
   fed from the host each step, so runs with other rates reuse compiled programs from the
   persistent compilation cache), batches of padded sequences bucketed by length with a token
   budget per batch, skills mixed by the curriculum schedule (`orchestra.rl.curriculum`).
4. Checkpoints with Orbax every `checkpoint.every` steps; `resume=true` continues at the saved step
   and data position (data come in chunks generated from (seed, chunk), so position = chunk and
   batch within it).
5. Evaluates on held-out tasks every `eval.every` steps and at the end:
   - ComplexFuncBench golden-path replay (`orchestra.eval.evaluate`): exact calls (call accuracy
     without a judge), turn accuracy, success; and copy accuracy by source: of the argument values
     a gold call takes from the query (resp. from an earlier response), how often the model's call
     paired with it has them exactly.
   - a teacher-forced probe (cheap, sensitive early): on gold held-out episodes, the share of
     argument values whose every token is the model's argmax, by source.
6. Writes the policy in HF format (`run_dir/model`, tokenizer with chat template) and a model card.

`max_minutes` bounds training time (the sum over resumed invocations); evaluation and checkpoint
time are not counted (they are logged apart).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import math
import os
import pickle
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence

import hydra
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from orchestra.data.booking import load_booking
from orchestra.data.paths import resolve_data_root
from orchestra.data.types import Task
from orchestra.env.views import ResponseView, ToolView
from orchestra.eval import eval_config, evaluate
from orchestra.eval.metrics import copy_accuracy, value_source
from orchestra.model.chat import assistant_body, chat_segments, install_chat_template, load_tokenizer
from orchestra.model.loader import save_model
from orchestra.model.modeling import init_model
from orchestra.model.presets import preset_config
from orchestra.model.tokenizer import build_tokenizer, save_tokenizer
from orchestra.rl.checkpoint import Checkpointer
from orchestra.rl.curriculum import Curriculum, Schedule, copy_vocabulary, draw_examples, value_texts
from orchestra.rl.episodes import gold_messages, tool_schemas
from orchestra.rl.metrics_logger import MetricsLogger
from orchestra.rl.policy import SamplerPolicy
from orchestra.rl.sft import TokenBatch, next_token_loss, pad_batch
from orchestra.synth import SynthConfig, split_tasks, synthesize, write_seen_values

SYNTH_ONLY_KEYS = ("seed", "output_dir", "formats", "dataset_name")  # the synth group's CLI-only keys
DATA_CACHE_VERSION = 1


# ---- data ------------------------------------------------------------------------------------------

def synth_settings(cfg: DictConfig) -> dict:
    plain = OmegaConf.to_container(cfg.synth, resolve=True)
    return {k: v for k, v in plain.items() if k not in SYNTH_ONLY_KEYS}


def train_and_held_out(eco, cfg: DictConfig, log=print) -> tuple[list[Task], list[Task], dict]:
    """Synthesised tasks split by `synth.split`, cached on disk by their settings."""
    settings = synth_settings(cfg)
    key_src = json.dumps({"synth": settings, "seed": cfg.synth.seed, "v": DATA_CACHE_VERSION,
                          "root": os.path.abspath(resolve_data_root(cfg.data.root))}, sort_keys=True, default=str)
    key = hashlib.sha1(key_src.encode()).hexdigest()[:16]
    path = os.path.join(cfg.data_cache_dir, f"split-{key}.pkl") if cfg.data_cache_dir else None
    if path and os.path.exists(path):
        with open(path, "rb") as f:
            train, held, report = pickle.load(f)
        log(f"data: {len(train)} train / {len(held)} held-out tasks from cache {path}")
        return train, held, report
    t0 = time.perf_counter()
    synth_cfg = SynthConfig.from_dict(settings)
    result = synthesize(eco, synth_cfg, cfg.synth.seed)
    split = split_tasks(result.tasks, synth_cfg.split, cfg.synth.seed)
    report = {"synthesis": {k: v for k, v in result.report.items() if k != "graph"}, "split": split.report,
              "seconds": time.perf_counter() - t0}
    log(f"data: synthesised {len(result.tasks)} tasks, split {len(split.train)} train / "
        f"{len(split.held_out)} held-out in {report['seconds']:.0f}s")
    if path:
        os.makedirs(cfg.data_cache_dir, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            pickle.dump((split.train, split.held_out, report), f)
        os.replace(tmp, path)
    return split.train, split.held_out, report


def argument_texts(tasks: Sequence[Task]) -> set[str]:
    return value_texts(v for t in tasks for s in t.steps for v in s.call.arguments.values())


def get_tokenizer(cfg: DictConfig, eco, run_dir: str, log=print):
    """The run's tokenizer: `run_dir/tokenizer` when it exists (a resumed run), else loaded from
    `tokenizer.path`, else built from the ecosystem corpus; saved to `run_dir/tokenizer`."""
    here = os.path.join(run_dir, "tokenizer")
    if os.path.exists(os.path.join(here, "tokenizer.json")):
        return load_tokenizer(here)
    if cfg.tokenizer.path:
        tok = load_tokenizer(cfg.tokenizer.path)
        log(f"tokenizer: loaded {cfg.tokenizer.path} ({len(tok)} entries)")
    else:
        from experiments.build_tokenizer import corpus_from_ecosystem
        from orchestra.model.chat import CHAT_TEMPLATE
        tok = build_tokenizer(corpus_from_ecosystem(eco), cfg.tokenizer.vocab_size, CHAT_TEMPLATE,
                              digit_group=cfg.tokenizer.digit_group)
        log(f"tokenizer: built from the ecosystem corpus ({len(tok)} entries)")
    install_chat_template(tok)
    save_tokenizer(tok, here)
    return tok


# ---- batches ---------------------------------------------------------------------------------------

def bucket_of(length: int, buckets: Sequence[int]) -> int | None:
    for b in buckets:
        if length <= b:
            return b
    return None


def bucket_batches(lengths: Sequence[int], tokens_per_batch: int, buckets: Sequence[int],
                   rng: np.random.Generator) -> list[tuple[list[int], int, int]]:
    """Group items (by index) into batches of one bucket length each: (indices, length, rows).

    Items are taken bucket by bucket, in random order within a bucket (every row pads to the bucket
    length anyway, and a batch of drills of one exact length gives a narrower gradient); a batch of
    bucket length L has exactly max(1, budget // L) rows (missing rows are padding), so there is one
    array shape per bucket. Batches come shuffled. Items longer than the largest bucket must be
    filtered out before.
    """
    shuffled = [int(i) for i in rng.permutation(len(lengths))]
    order = sorted(shuffled, key=lambda i: bucket_of(lengths[i], buckets))  # stable: random within a bucket
    out, current, length = [], [], 0
    for i in order:
        b = bucket_of(lengths[i], buckets)
        if current and (b != length or len(current) == max(1, tokens_per_batch // b)):
            out.append((current, length, max(1, tokens_per_batch // length)))
            current = []
        current.append(i)
        length = b
    if current:
        out.append((current, length, max(1, tokens_per_batch // length)))
    return [out[k] for k in rng.permutation(len(out))]


@dataclasses.dataclass
class Chunk:
    batches: list[TokenBatch]
    skills: list[list[str]]  # per batch, the skill of each real row
    dropped: int             # examples longer than the largest bucket


class DataStream:
    """Endless batches in chunks: chunk c is generated from (seed, c) with the schedule's weights at
    the progress of the step it starts on, so (chunk, offset, chunk start) fixes the data position."""

    def __init__(self, curriculum: Curriculum, schedule: Schedule, tokenizer, seed: int, total_steps: int,
                 chunk_examples: int, tokens_per_batch: int, buckets: Sequence[int]):
        self.curriculum, self.schedule, self.tokenizer = curriculum, schedule, tokenizer
        self.seed, self.total_steps, self.chunk_examples = seed, total_steps, chunk_examples
        self.tokens_per_batch, self.buckets = tokens_per_batch, sorted(buckets)

    def chunk(self, index: int, start_step: int) -> Chunk:
        rng = np.random.default_rng([self.seed, index])
        progress = start_step / max(self.total_steps, 1)
        examples = draw_examples(self.curriculum, self.schedule, progress, self.chunk_examples, rng)
        encoded = [ex.encode(self.tokenizer) for ex in examples]
        keep = [i for i, e in enumerate(encoded) if len(e.token_ids) <= self.buckets[-1]]
        groups = bucket_batches([len(encoded[i].token_ids) for i in keep], self.tokens_per_batch, self.buckets, rng)
        batches, skills = [], []
        for members, length, rows in groups:
            idx = [keep[m] for m in members]
            ids = [encoded[i].token_ids for i in idx] + [np.zeros(0, np.int32)] * (rows - len(idx))
            masks = [encoded[i].policy_mask for i in idx] + [np.zeros(0, np.int32)] * (rows - len(idx))
            batches.append(pad_batch(ids, masks, length))
            skills.append([examples[i].skill for i in idx])
        return Chunk(batches, skills, len(examples) - len(keep))


# ---- optimisation ----------------------------------------------------------------------------------

def scale_by_fed_lr() -> optax.GradientTransformationExtraArgs:
    """Multiply updates by -lr, where lr is passed to `update(..., lr=...)` each step (a traced
    value, so the compiled step does not depend on the rate or its schedule)."""
    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None, *, lr, **extra):
        del params, extra
        return jax.tree.map(lambda u: -lr * u, updates), state
    return optax.GradientTransformationExtraArgs(init, update)


def make_tx(cfg: DictConfig) -> optax.GradientTransformation:
    return _tx(float(cfg.max_grad_norm), float(cfg.b1), float(cfg.b2), float(cfg.eps), float(cfg.weight_decay))


@functools.lru_cache(maxsize=8)
def _tx(max_grad_norm: float, b1: float, b2: float, eps: float, weight_decay: float) -> optax.GradientTransformation:
    # One object per setting: the optimizer is static in the jitted step, so a new but equal one
    # would compile it again.
    decay = lambda params: jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)  # noqa: E731 (no decay on norms/biases)
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam(b1, b2, eps),
                       optax.add_decayed_weights(weight_decay, mask=decay), scale_by_fed_lr())


def learning_rate(step: int, cfg: DictConfig) -> float:
    """Linear warmup from 0, then cosine decay to lr * min_lr_ratio at train.steps."""
    warmup = max(int(cfg.warmup_steps), 1)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(cfg.steps - warmup, 1))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


@nnx.jit
def train_step(model, optimizer: nnx.Optimizer, tokens, loss_mask, segment_ids, lr):
    def loss_fn(m):
        return next_token_loss(m, tokens, loss_mask, segment_ids)

    (loss, count), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads, lr=lr)
    return loss, count, optax.tree.norm(grads)


# ---- measurements ----------------------------------------------------------------------------------

def _value_spans(call_text: str, arguments: dict) -> list[tuple[str, object, int, int]]:
    """(name, value, start, end) of each top-level argument's text inside a rendered call (for a
    string, inside its quotes), following json.dumps' default separators."""
    start = call_text.index('"arguments": ') + len('"arguments": ')
    pos, out = start + 1, []
    for name, value in arguments.items():
        pos += len(json.dumps(name, ensure_ascii=False)) + 2
        text = json.dumps(value, ensure_ascii=False)
        s, e = (pos + 1, pos + len(text) - 1) if isinstance(value, str) else (pos, pos + len(text))
        out.append((name, value, s, e))
        pos += len(text) + 2
    return out


def probe_items(task: Task, tokenizer, tools, view: ResponseView, tool_view: ToolView):
    """A gold episode's token ids, its policy mask, and per argument value of its calls (source,
    visible, token indices). `visible`: a response-sourced value's text stands in an earlier tool
    message (the response view may cut it away)."""
    messages = gold_messages(task, view)
    segments = chat_segments(messages, tool_schemas(task, tools, tool_view))
    text = "".join(t for t, _ in segments)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    starts = np.array([s for s, _ in offsets])
    policy_spans, pos = [], 0
    for t, by_policy in segments:
        if by_policy:
            policy_spans.append((pos, pos + len(t)))
        pos += len(t)
    mask = np.zeros(len(offsets), np.int32)
    for a, b in policy_spans:
        mask[(starts >= a) & (starts < b)] = 1
    items, step_index, seen_tool_text, turn = [], 0, "", 0
    for message in messages:
        if message["role"] == "tool":  # visible to every later turn
            seen_tool_text += message["content"] + "\n"
            continue
        if message["role"] != "assistant":
            continue
        base, turn = policy_spans[turn][0], turn + 1
        body, cursor = assistant_body(message), 0
        for call in message.get("tool_calls") or []:
            fn = call["function"]
            call_text = (f'<tool_call>\n{{"name": "{fn["name"]}", "arguments": '
                         f'{json.dumps(fn["arguments"], ensure_ascii=False)}}}\n</tool_call>')
            at = body.index(call_text, cursor)
            cursor = at + len(call_text)
            for name, value, s, e in _value_spans(call_text, fn["arguments"]):
                if value is None or s >= e:
                    continue
                s, e = base + at + s, base + at + e
                first = int(np.searchsorted(starts, s))
                idx = [j for j in range(first, len(offsets)) if offsets[j][0] < e]
                if not idx or offsets[idx[0]][0] != s or offsets[idx[-1]][1] != e:
                    continue  # a token crosses the value's edge: no clean copy target
                source = value_source(task, step_index, name, value)
                vtext = json.dumps(value, ensure_ascii=False)
                vtext = vtext[1:-1] if isinstance(value, str) else vtext
                items.append((source, source != "response" or vtext in seen_tool_text, idx))
            step_index += 1
    return np.asarray(enc["input_ids"], np.int32), mask, items


@nnx.jit
def _next_token_stats(model, tokens, segment_ids):
    """Per position: the argmax prediction of the next token, and log p of the actual next one."""
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    logits, _ = model(tokens, positions, segment_ids)
    logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
    actual = jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
    return jnp.argmax(logits, axis=-1).astype(jnp.int32), actual


def teacher_forced_probe(model, prepared, batch_size: int, buckets: Sequence[int]) -> dict:
    """On gold held-out episodes: per source, the share of argument values whose every token is the
    model's argmax given the gold prefix (`exact`) and the share of value tokens right
    (`token_accuracy`); and the mean loss on all policy tokens (`policy_loss`)."""
    hits, totals, vis_hits, vis_totals = Counter(), Counter(), Counter(), Counter()
    token_hits, token_totals = Counter(), Counter()
    loss_sum, loss_count = 0.0, 0
    for start in range(0, len(prepared), batch_size):
        group = prepared[start: start + batch_size]
        longest = max(len(ids) for ids, _, _ in group)
        length = bucket_of(longest, buckets) or longest
        tokens = np.zeros((batch_size, length), np.int32)
        segments = np.zeros((batch_size, length), np.int32)
        for r, (ids, _, _) in enumerate(group):
            tokens[r, : len(ids)], segments[r, : len(ids)] = ids, 1
        pred, logp = (np.asarray(x) for x in _next_token_stats(model, tokens, segments))
        for r, (ids, mask, items) in enumerate(group):
            loss_sum -= float((logp[r, : len(ids) - 1] * mask[1:]).sum())
            loss_count += int(mask[1:].sum())
            for source, visible, idx in items:
                right = [pred[r, j - 1] == ids[j] for j in idx]
                ok = all(right)
                totals[source] += 1
                hits[source] += ok
                token_totals[source] += len(right)
                token_hits[source] += sum(right)
                if visible:
                    vis_totals[source] += 1
                    vis_hits[source] += ok
    out = {"policy_loss": loss_sum / loss_count if loss_count else None}
    for s in ("query", "response", "other"):
        out[s] = {"exact": hits[s] / totals[s] if totals[s] else None, "values": totals[s],
                  "token_accuracy": token_hits[s] / token_totals[s] if token_totals[s] else None}
        if s == "response":
            out[s].update(exact_when_visible=vis_hits[s] / vis_totals[s] if vis_totals[s] else None,
                          visible=vis_totals[s])
    return out


def generation_eval(model, tokenizer, tasks, eco, cfg: DictConfig, out_dir: str | None) -> dict:
    policy = SamplerPolicy(model, tokenizer, max_new_tokens=cfg.eval.max_new_tokens)
    econf = eval_config({"response_view": OmegaConf.to_container(cfg.response_view, resolve=True),
                         "tool_view": OmegaConf.to_container(cfg.tool_view, resolve=True),
                         "max_turns": cfg.eval.max_turns, "batch_size": cfg.eval.batch_size, "progress": False})
    summary, samples = evaluate(policy, tasks, eco.tools, econf, exact_match=eco.exact_match, out_dir=out_dir)
    overall = summary["overall"]
    return {"exact_call_rate": overall["call_accuracy"], "turn_accuracy": overall["turn_accuracy"],
            "success_rate": overall["success_rate"], "tasks": overall["samples"],
            "gold_calls": overall["gold_calls"], "copy": copy_accuracy(tasks, samples),
            "end_reasons": summary["end_reasons"]}


# ---- the run ---------------------------------------------------------------------------------------

def model_overrides(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg.model.overrides, resolve=True) if cfg.model.get("overrides") else {}


def model_config(cfg: DictConfig, tokenizer):
    if cfg.model.get("path"):
        raise ValueError("pretraining starts from random weights; model.path must be null "
                         f"(got {cfg.model.path!r})")
    overrides = model_overrides(cfg)
    config = preset_config(cfg.model.preset, cfg.model.get("dtype")).replace(**overrides)
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} entries but model.preset {cfg.model.preset!r} has "
                         f"vocab_size {config.vocab_size}; lower tokenizer.vocab_size or override model.vocab_size")
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return config.replace(eos_token_id=im_end, pad_token_id=tokenizer.pad_token_id)


def flat_metrics(prefix: str, d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_metrics(f"{prefix}{k}/", v))
        elif isinstance(v, int | float) and not isinstance(v, bool) or v is None:
            out[f"{prefix}{k}"] = v
    return out


def write_model_card(path: str, cfg: DictConfig, command: str, n_params: int, state: dict, final: dict,
                     data_report: dict, n_train: int, n_held: int) -> None:
    gen, probe = final.get("generation") or {}, final.get("probe") or {}

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"
    data = ("a curriculum of copy skills (copying random tokens with no chat frame first, then inside a "
            "random share of the chat frame, then repeat, fill "
            "arguments from a request, extract a response field by "
            "path, dates and times) mixed with whole synthesised tool-call episodes (`orchestra.rl.curriculum`)"
            if cfg.curriculum.enabled else "whole synthesised tool-call episodes (the curriculum was off)")
    lines = [
        "# orchestra small policy, pretrained from scratch",
        "",
        "A Qwen2-layout decoder trained from random initialisation with supervised next-token loss on the",
        f"policy's own tokens, on {data}. Made by `experiments/pretrain.py`.",
        "",
        "## Size and training",
        f"- parameters: {n_params:,} ({cfg.model.preset} preset, overrides {model_overrides(cfg)})",
        f"- steps: {state['step']} of {cfg.train.steps}; tokens seen: {state['tokens']:,} "
        f"(policy tokens with loss: {state['loss_tokens']:,})",
        f"- training time: {state['train_seconds'] / 60:.1f} min ({state['timed_tokens'] / max(state['train_seconds'], 1e-9):.0f}"
        f" tokens/s), plus {state['compile_seconds'] / 60:.1f} min of first steps at new shapes (compiling); "
        f"evaluation: {state['eval_seconds'] / 60:.1f} min",
        f"- examples by skill: {dict(state['skill_counts'])}",
        f"- data: {n_train} training tasks, {n_held} held-out tasks, split by values: no held-out argument "
        "value is an argument of a training call or a value the curriculum generates (recorded responses of "
        "training tasks may still mention one)",
        "",
        "## Held-out scores (final)",
        "Golden-path replay, no judge (a strict lower bound):",
        f"- exact-call rate: {pct(gen.get('exact_call_rate'))}, turn accuracy: {pct(gen.get('turn_accuracy'))}, "
        f"success: {pct(gen.get('success_rate'))} over {gen.get('tasks')} tasks",
        f"- copy accuracy, values from the query: {pct((gen.get('copy') or {}).get('query', {}).get('exact'))}; "
        f"from earlier responses: {pct((gen.get('copy') or {}).get('response', {}).get('exact'))}",
        "Teacher-forced probe (gold prefix, every token of the value right):",
        f"- query: {pct((probe.get('query') or {}).get('exact'))}, response: "
        f"{pct((probe.get('response') or {}).get('exact'))} (when visible in the view: "
        f"{pct((probe.get('response') or {}).get('exact_when_visible'))})",
        "",
        "## Use",
        "```python",
        "from orchestra.model.loader import load_model",
        "from orchestra.model.chat import load_tokenizer",
        "model, tokenizer = load_model(path), load_tokenizer(path)",
        "```",
        f"Responses are shown with the `{cfg.response_view.kind}` view (max_chars {cfg.response_view.max_chars}) and "
        f"tools with the `{cfg.tool_view.kind}` view; evaluate and fine-tune with the same views.",
        "",
        "## Command",
        "```",
        command,
        "```",
        "",
        "## Resolved config",
        "```yaml",
        OmegaConf.to_yaml(cfg, resolve=True).rstrip(),
        "```",
        "",
        "## Data report",
        "```json",
        json.dumps(data_report.get("split", {}), indent=1, default=str)[:3000],
        "```",
    ]
    with open(os.path.join(path, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def run(cfg: DictConfig, overrides: Sequence[str] | None = None) -> dict:
    """The whole job; returns the final state and measurements. `overrides`: the command-line
    overrides, for the model card (default: this process's arguments)."""
    run_dir = os.path.abspath(cfg.run_dir)
    os.makedirs(run_dir, exist_ok=True)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    if not cfg.resume and os.path.isdir(ckpt_dir) and any(n.isdigit() for n in os.listdir(ckpt_dir)):
        raise FileExistsError(f"{ckpt_dir} already holds checkpoints; pass resume=true to continue the run, "
                              "or choose another run_dir")
    if cfg.compile_cache_dir:
        jax.config.update("jax_compilation_cache_dir", os.path.abspath(cfg.compile_cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    log_file = open(os.path.join(run_dir, "log.txt"), "a", encoding="utf-8")

    def log(msg: str) -> None:
        tqdm.write(msg)
        log_file.write(msg + "\n")
        log_file.flush()

    given = sys.argv[1:] if overrides is None else overrides
    command = "python -m experiments.pretrain " + " ".join(shlex.quote(a) for a in given)
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))

    eco = load_booking(resolve_data_root(cfg.data.root))
    train_tasks, held_out, data_report = train_and_held_out(eco, cfg, log)
    tokenizer = get_tokenizer(cfg, eco, run_dir, log)
    view = ResponseView(**{k: tuple(v) if isinstance(v, list) else v
                           for k, v in OmegaConf.to_container(cfg.response_view, resolve=True).items()})
    tool_view = ToolView(**OmegaConf.to_container(cfg.tool_view, resolve=True))
    tc = cfg.train
    buckets = sorted(tc.buckets)

    # Episodes that do not fit the largest bucket are left out (counted), never cut.
    fits = [t for t in train_tasks if len(tokenizer(gold_text(t, eco, view, tool_view))["input_ids"]) <= buckets[-1]]
    log(f"episodes: {len(fits)} of {len(train_tasks)} training tasks fit {buckets[-1]} tokens")
    forbidden = argument_texts(held_out) - argument_texts(train_tasks)
    curriculum = Curriculum(eco.tools, fits, view, tool_view, forbidden=forbidden, copy_tokens=copy_vocabulary(tokenizer))
    cc = cfg.curriculum
    schedule = (Schedule.from_list(OmegaConf.to_container(cc.schedule, resolve=True)) if cc.enabled
                else Schedule.constant(episodes=1.0))
    stream = DataStream(curriculum, schedule, tokenizer, cfg.seed, tc.steps, tc.chunk_examples,
                        tc.tokens_per_batch, buckets)

    config = model_config(cfg, tokenizer)
    model = init_model(config, cfg.seed)
    optimizer = nnx.Optimizer(model, make_tx(tc), wrt=nnx.Param)
    n_params = config.num_parameters()
    checkpointer = Checkpointer(ckpt_dir, cfg.checkpoint.every, cfg.checkpoint.keep)

    state = {"step": 0, "chunk": 0, "offset": 0, "chunk_start": 0, "tokens": 0, "loss_tokens": 0,
             "train_seconds": 0.0, "timed_tokens": 0, "compile_seconds": 0.0, "eval_seconds": 0.0, "skill_counts": {}}

    def ckpt_tree():
        return {"model": nnx.to_pure_dict(nnx.state(model)), "optimizer": nnx.to_pure_dict(nnx.state(optimizer))}

    latest = checkpointer.latest_step()
    if cfg.resume and latest is not None:
        reference = ckpt_tree()
        step, tree, meta = checkpointer.restore(reference)
        # uncommitted host-made arrays like fresh ones, so the compiled step is reused (Orbax gives
        # committed arrays, which would compile it again)
        tree = jax.tree.map(lambda x, ref: jnp.asarray(np.asarray(x), ref.dtype), tree, reference)
        for name, module in (("model", model), ("optimizer", optimizer)):
            current = nnx.state(module)
            nnx.replace_by_pure_dict(current, tree[name])
            nnx.update(module, current)
        state.update(meta)
        log(f"resumed at step {state['step']} (chunk {state['chunk']}, batch {state['offset']})")
    elif cfg.resume:
        log("resume=true but no checkpoint yet: starting from scratch")

    logger = MetricsLogger(run_dir, kind=cfg.logger.kind, project=cfg.logger.project,
                           config=OmegaConf.to_container(cfg, resolve=True), name=os.path.basename(run_dir))
    rng_eval = np.random.default_rng(cfg.seed)
    eval_tasks = [held_out[i] for i in rng_eval.permutation(len(held_out))[: cfg.eval.tasks]]
    probe_tasks = [held_out[i] for i in rng_eval.permutation(len(held_out))[: cfg.eval.probe_tasks]]
    probe_set = [probe_items(t, tokenizer, eco.tools, view, tool_view) for t in probe_tasks]
    probe_set = [p for p in probe_set if len(p[0]) <= buckets[-1]]
    os.makedirs(os.path.join(run_dir, "evals"), exist_ok=True)

    def measure(generation: bool, tasks) -> dict:
        t0 = time.perf_counter()
        out = {"step": state["step"], "tokens": state["tokens"], "train_minutes": state["train_seconds"] / 60,
               "probe": teacher_forced_probe(model, probe_set, cfg.eval.probe_batch, buckets)}
        if generation and tasks:
            out["generation"] = generation_eval(model, tokenizer, tasks, eco, cfg,
                                                os.path.join(run_dir, "evals", f"step{state['step']}"))
        out["eval_seconds"] = time.perf_counter() - t0
        state["eval_seconds"] += out["eval_seconds"]
        with open(os.path.join(run_dir, "evals", f"step{state['step']}.json"), "w") as f:
            json.dump(out, f, indent=1)
        logger.log(flat_metrics("eval/", {k: v for k, v in out.items() if k != "step"}), state["step"])
        g = out.get("generation") or {}
        p = out["probe"]
        fmt = lambda x: "-" if x is None else f"{100 * x:.1f}"  # noqa: E731
        log(f"eval step {state['step']} ({state['train_seconds'] / 60:.1f} train min, {state['tokens']:,} tokens): "
            f"probe policy loss {p['policy_loss'] or float('nan'):.3f}, value tokens query "
            f"{fmt(p['query']['token_accuracy'])}% response {fmt(p['response']['token_accuracy'])}%, "
            f"copy query {fmt(p['query']['exact'])}% response {fmt(p['response']['exact'])}% "
            f"(visible {fmt(p['response'].get('exact_when_visible'))}%)"
            + (f" | exact calls {fmt(g['exact_call_rate'])}% turn acc {fmt(g['turn_accuracy'])}% "
               f"success {fmt(g['success_rate'])}% copy query {fmt(g['copy']['query']['exact'])}% "
               f"response {fmt(g['copy']['response']['exact'])}%" if g else ""))
        return out

    budget = cfg.max_minutes * 60 if cfg.max_minutes else float("inf")
    # The next chunk is made in a thread while the device trains on this one (on a GPU, making the
    # batches in Python takes about as long as training on them); chunk c starts at the step after
    # chunk c-1's last batch, so the data do not depend on the thread.
    maker = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    chunk = stream.chunk(state["chunk"], state["chunk_start"])
    upcoming = maker.submit(stream.chunk, state["chunk"] + 1, state["chunk_start"] + len(chunk.batches))
    skill_counts = Counter(state["skill_counts"])
    bar = tqdm(total=tc.steps, initial=state["step"], desc="pretrain", unit="step", disable=not cfg.progress,
               dynamic_ncols=True)
    ema, window = None, []
    stop_reason = "steps"
    shapes_seen: set[tuple[int, int]] = set()  # the first step at a new shape compiles (or loads) it
    while state["step"] < tc.steps:
        if state["train_seconds"] >= budget:
            stop_reason = "max_minutes"
            break
        if cfg.stop_at_step is not None and state["step"] >= cfg.stop_at_step:
            stop_reason = "stop_at_step"
            break
        t0 = time.perf_counter()
        if state["offset"] >= len(chunk.batches):
            state["chunk"] += 1
            state["offset"], state["chunk_start"] = 0, state["step"]
            chunk = upcoming.result()
            upcoming = maker.submit(stream.chunk, state["chunk"] + 1, state["step"] + len(chunk.batches))
        batch, skills = chunk.batches[state["offset"]], chunk.skills[state["offset"]]
        lr = learning_rate(state["step"], tc)
        loss, count, gnorm = train_step(model, optimizer, batch.tokens, batch.loss_mask, batch.segment_ids,
                                        jnp.float32(lr))
        loss = float(loss)  # waits for the step
        dt = time.perf_counter() - t0
        compiled = batch.tokens.shape not in shapes_seen
        if compiled:  # compilation is not training: kept apart so equal budgets mean equal compute
            shapes_seen.add(batch.tokens.shape)
            state["compile_seconds"] += dt
        state["step"] += 1
        state["offset"] += 1
        real = int(batch.segment_ids.sum())
        state["tokens"] += real
        if not compiled:
            state["train_seconds"] += dt
            state["timed_tokens"] += real
        state["loss_tokens"] += int(count)
        skill_counts.update(skills)
        state["skill_counts"] = dict(skill_counts)
        ema = loss if ema is None else 0.95 * ema + 0.05 * loss
        if not compiled:
            window = (window + [(real, dt)])[-20:]
        tps = sum(r for r, _ in window) / max(sum(d for _, d in window), 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.3f}", tok_s=f"{tps:.0f}", lr=f"{lr:.1e}", len=batch.tokens.shape[1])
        if state["step"] % cfg.log_every == 0:
            weights = schedule.weights(state["chunk_start"] / max(tc.steps, 1))
            logger.log({"loss": loss, "loss_ema": ema, "lr": lr, "grad_norm": float(gnorm), "tokens": state["tokens"],
                        "tokens_per_second": tps, "train_minutes": state["train_seconds"] / 60,
                        "seq_len": batch.tokens.shape[1], **{f"weight/{k}": v for k, v in weights.items()}},
                       state["step"])
        checkpointer.save(state["step"], ckpt_tree(), dict(state))
        if cfg.eval.every and state["step"] % cfg.eval.every == 0 and state["step"] < tc.steps:
            measure(True, eval_tasks)
        elif cfg.eval.probe_every and state["step"] % cfg.eval.probe_every == 0 and state["step"] < tc.steps:
            measure(False, [])
    bar.close()
    maker.shutdown(cancel_futures=True)
    if checkpointer.latest_step() != state["step"]:
        checkpointer.save(state["step"], ckpt_tree(), dict(state), force=True)
    log(f"training stopped at step {state['step']} ({stop_reason}): {state['tokens']:,} tokens in "
        f"{state['train_seconds'] / 60:.1f} min + {state['compile_seconds'] / 60:.1f} min compiling "
        f"({state['timed_tokens'] / max(state['train_seconds'], 1e-9):.0f} tok/s)")

    final_tasks = [held_out[i] for i in np.random.default_rng(cfg.seed).permutation(len(held_out))[: cfg.eval.final_tasks]]
    final = measure(bool(cfg.eval.final_tasks), final_tasks)
    out_dir = os.path.join(run_dir, "model")
    save_model(model, out_dir, tokenizer)
    write_seen_values(out_dir, train_tasks)  # later splits never hold out what the base trained on
    write_model_card(out_dir, cfg, command, n_params, state, final, data_report, len(train_tasks), len(held_out))
    summary = {"state": state, "final": final, "stop_reason": stop_reason, "params": n_params,
               "train_tasks": len(train_tasks), "held_out_tasks": len(held_out), "episodes_fit": len(fits)}
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    log(f"wrote {out_dir} (HF safetensors, tokenizer, README.md) and {run_dir}/summary.json")
    checkpointer.close()
    logger.close()
    log_file.close()
    return summary


def gold_text(task: Task, eco, view: ResponseView, tool_view: ToolView) -> str:
    return "".join(t for t, _ in chat_segments(gold_messages(task, view), tool_schemas(task, eco.tools, tool_view)))


@hydra.main(config_path="../conf", config_name="pretrain", version_base=None)
def main(cfg: DictConfig) -> None:
    run(cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
