"""An OpenAI-compatible HTTP server around a policy, for benchmarks that speak the OpenAI API (BFCL).

    backend = ModelBackend(model, tokenizer)                       # model + tokenizer + Sampler
    with OpenAIServer(backend, ServerConfig(port=0, model_name="my-policy")) as server:
        ...  # POST {server.url}/completions, {server.url}/chat/completions; GET {server.url}/models

Endpoints (standard library `http.server`, one thread per connection):
- `GET /v1/models`: the served model id and its aliases.
- `POST /v1/completions`: `prompt` (a string or a list of strings), `max_tokens`, `temperature`,
  `top_p`, `stop`, `n` (1 only), `seed`; vLLM's `top_k`, `stop_token_ids` and `skip_special_tokens`.
- `POST /v1/chat/completions`: `messages` and `tools` rendered with `orchestra.model.chat`'s template;
  the reply's `<tool_call>` blocks come back as OpenAI `tool_calls` (`finish_reason: "tool_calls"`),
  the rest of the text as `content`.

Prompts are tokenised without added special tokens (templated prompts carry their own). A request
whose prompt plus `max_tokens` exceeds the backend's context, a malformed body, an unknown model or
an unsupported option gets a 4xx with an OpenAI-style `{"error": {...}}` body.

Generation runs on one worker thread (the lock around the policy). Requests that arrive together
and share their sampling options are batched into one sampler call, up to `max_batch` rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import queue
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from orchestra.env.codec import parse_block
from orchestra.model.chat import IM_END, ChatFormatError, render_chat


class RequestError(Exception):
    """A request the server refuses; becomes an OpenAI-style error response."""

    def __init__(self, message: str, status: int = 400, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.param, self.kind, self.code = message, status, param, kind, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


# ---- what the server asks of a policy ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SamplingOptions:
    """Options shared by every row of one batch (requests are grouped by them)."""
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()  # stop strings: the backend may stop early on them; the server cuts the text
    stop_token_ids: tuple[int, ...] = ()
    skip_special_tokens: bool = True
    seed: int | None = None


@dataclasses.dataclass(frozen=True)
class Job:
    prompt: str
    max_tokens: int
    options: SamplingOptions


@dataclasses.dataclass(frozen=True)
class Completion:
    text: str  # without the stop sequence that ended it
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"


class Backend(Protocol):
    """A policy the server can serve. `complete` is only ever called from one thread, with jobs
    that share their options; `count_tokens` may be called from many threads at once."""
    context_length: int

    def count_tokens(self, text: str) -> int:
        ...

    def complete(self, jobs: Sequence[Job]) -> list[Completion]:
        ...


def _power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


class ModelBackend:
    """A JAX `Transformer` with its tokenizer, sampled by `orchestra.model.sampler.Sampler`.

    Turns end at <|im_end|> or the EOS token(s). Unlike the RL rollouts, not at </tool_call>: a
    benchmark turn may hold several parallel calls. Batches are padded to a power of two rows and
    max_new_tokens is rounded up (to a power of two, or whole decode chunks), so few sampler
    programs are compiled; rows are cut back to their own max_tokens.
    """

    def __init__(self, model, tokenizer, context_length: int | None = None, max_cached_samplers: int = 8,
                 **sampler_options):
        from orchestra.model.sampler import Sampler

        self._sampler_class = Sampler
        self.model = model
        self.tokenizer = tokenizer
        self.context_length = int(context_length or model.config.max_position_embeddings)
        if len(tokenizer) > model.config.vocab_size:
            raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the model's vocabulary is "
                             f"{model.config.vocab_size}")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        end = [tuple(tokenizer.encode(IM_END, add_special_tokens=False))]
        eos = tokenizer.eos_token_id
        for eos_id in eos if isinstance(eos, list) else [eos]:
            if eos_id is not None and (eos_id,) not in end:
                end.append((eos_id,))
        self.turn_end = tuple(end)
        self._samplers: dict[tuple, Any] = {}
        self._max_cached = max_cached_samplers
        self._sampler_options = sampler_options  # e.g. min_bucket, chunk_steps
        self._tokenizer_lock = threading.Lock()  # HF fast tokenizers are not safe to call concurrently
        self._seed = 0

    def encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return self.tokenizer.encode(text, add_special_tokens=False)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def _sampler(self, stops: tuple[tuple[int, ...], ...]):
        # One Sampler per stop set (its stop patterns are fixed); the jitted programs are shared.
        if stops not in self._samplers:
            if len(self._samplers) >= self._max_cached:
                self._samplers.pop(next(iter(self._samplers)))
            self._samplers[stops] = self._sampler_class(self.model, stop_sequences=stops, pad_id=self.pad_id,
                                                       **self._sampler_options)
        return self._samplers[stops]

    def complete(self, jobs: Sequence[Job]) -> list[Completion]:
        from orchestra.model.sampler import SamplingParams

        options = jobs[0].options
        extra = [tuple(self.encode(s)) for s in options.stop] + [(i,) for i in options.stop_token_ids]
        stops = self.turn_end + tuple(s for s in extra if s and s not in self.turn_end)
        sampler = self._sampler(stops)

        prompts = [self.encode(job.prompt) for job in jobs]
        rows = _power_of_two(len(prompts))
        padded = prompts + [[self.pad_id]] * (rows - len(prompts))  # inactive filler rows
        active = [True] * len(prompts) + [False] * (rows - len(prompts))
        longest = max(job.max_tokens for job in jobs)
        chunk = sampler.chunk_steps  # short requests: a power of two steps; long ones: whole chunks
        steps = _power_of_two(longest) if longest < chunk else math.ceil(longest / chunk) * chunk
        if options.seed is None:
            self._seed += 1
        seed = self._seed if options.seed is None else options.seed
        params = SamplingParams(temperature=options.temperature, top_k=options.top_k, top_p=options.top_p)

        state = sampler.prefill(padded)
        out, _ = sampler.generate(state, steps, params, seed=seed, active=active)

        completions = []
        for row, job in enumerate(jobs):
            tokens = out.row(row)
            stopped = bool(out.stopped[row]) and len(tokens) <= job.max_tokens
            tokens = tokens[: job.max_tokens]
            kept = tokens
            if stopped:
                matched = [s for s in stops if len(s) <= len(tokens) and tuple(tokens[-len(s):]) == s]
                kept = tokens[: len(tokens) - max(len(s) for s in matched)] if matched else tokens
            with self._tokenizer_lock:
                text = self.tokenizer.decode(kept, skip_special_tokens=options.skip_special_tokens)
            completions.append(Completion(text, len(prompts[row]), len(tokens), "stop" if stopped else "length"))
        return completions


# ---- batching worker -----------------------------------------------------------------------------

class _Slot:
    def __init__(self, job: Job):
        self.job = job
        self.done = threading.Event()
        self.result: Completion | None = None
        self.error: BaseException | None = None


class Batcher:
    """The one thread that runs the backend. It takes the oldest waiting job, gathers the jobs that
    arrive within `wait_s` and share its options (up to `max_batch`), and runs them together."""

    def __init__(self, backend: Backend, max_batch: int = 8, wait_s: float = 0.005):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.backend, self.max_batch, self.wait_s = backend, max_batch, wait_s
        self._queue: queue.Queue[_Slot] = queue.Queue()
        self._held: deque[_Slot] = deque()  # taken from the queue but left for a later batch
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="generation", daemon=True)
        self._thread.start()

    def submit(self, jobs: Sequence[Job]) -> list[Completion]:
        if self._closed.is_set():
            raise RequestError("the server is shutting down", status=503, kind="server_error")
        slots = [_Slot(job) for job in jobs]
        for slot in slots:
            self._queue.put(slot)
        for slot in slots:
            slot.done.wait()
        errors = [slot.error for slot in slots if slot.error is not None]
        if errors:
            raise errors[0]
        return [slot.result for slot in slots]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=60)

    def _take(self, timeout: float) -> _Slot | None:
        if self._held:
            return self._held.popleft()
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _run(self) -> None:
        while not self._closed.is_set():
            first = self._take(0.1)
            if first is None:
                continue
            batch, others = [first], []
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                slot = self._take(max(0.0, deadline - time.monotonic()))
                if slot is None:
                    break
                (batch if slot.job.options == first.job.options else others).append(slot)
            self._held.extendleft(reversed(others))  # they keep their place in line
            try:
                results = self.backend.complete([slot.job for slot in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"backend returned {len(results)} completions for {len(batch)} prompts")
                for slot, result in zip(batch, results):
                    slot.result = result
            except BaseException as e:  # reported to every waiting request, never kills the worker
                for slot in batch:
                    slot.error = e
            for slot in batch:
                slot.done.set()
        for slot in list(self._held) + _drain(self._queue):
            slot.error = RequestError("the server is shutting down", status=503, kind="server_error")
            slot.done.set()


def _drain(q: queue.Queue) -> list:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


# ---- request validation --------------------------------------------------------------------------

def _number(body: dict, name: str, default: float, low: float, high: float | None = None,
            low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(f"'{name}' must be a number, got {value!r}", param=name)
    if value < low or (low_open and value == low) or (high is not None and value > high):
        bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise RequestError(f"'{name}' must be {bound}, got {value!r}", param=name)
    return float(value)


def _integer(body: dict, name: str, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"'{name}' must be an integer, got {value!r}", param=name)
    if value < low:
        raise RequestError(f"'{name}' must be >= {low}, got {value}", param=name)
    return value


def _options(body: dict) -> SamplingOptions:
    for name, allowed in (("n", (None, 1)), ("best_of", (None, 1)), ("stream", (None, False)),
                          ("echo", (None, False)), ("logprobs", (None, False)), ("suffix", (None, ""))):
        if body.get(name) not in allowed:
            raise RequestError(f"'{name}'={body.get(name)!r} is not supported by this server", param=name)
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 16:
        raise RequestError("'stop' must be a non-empty string or a list of at most 16 of them", param="stop")
    stop_ids = body.get("stop_token_ids") or []
    if not isinstance(stop_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                  for i in stop_ids):
        raise RequestError("'stop_token_ids' must be a list of token ids", param="stop_token_ids")
    skip = body.get("skip_special_tokens", True)
    if not isinstance(skip, bool):
        raise RequestError("'skip_special_tokens' must be a boolean", param="skip_special_tokens")
    top_k = _integer(body, "top_k", -1)
    return SamplingOptions(
        temperature=_number(body, "temperature", 1.0, 0.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True),
        top_k=max(top_k or 0, 0),  # vLLM's -1 and 0 both mean no top-k filter
        stop=tuple(stop),
        stop_token_ids=tuple(stop_ids),
        skip_special_tokens=skip,
        seed=_integer(body, "seed", 0),
    )


def _cut_at_stop(completion: Completion, stop: Sequence[str]) -> Completion:
    """Cut the text at the first stop string (the backend may have stopped on it, or past it)."""
    cuts = [i for i in (completion.text.find(s) for s in stop) if i >= 0]
    if not cuts:
        return completion
    return dataclasses.replace(completion, text=completion.text[: min(cuts)], finish_reason="stop")


_TOOL_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def split_tool_calls(text: str) -> tuple[str | None, list[dict]]:
    """(content, OpenAI tool_calls) from a Qwen-style reply: every `<tool_call>` block that parses
    becomes a call; blocks that do not parse stay in the content, so nothing is lost."""
    calls, pieces, last = [], [], 0
    for match in _TOOL_BLOCK.finditer(text):
        parsed = parse_block(match.group(1).strip())
        if not parsed.ok:
            continue
        pieces.append(text[last:match.start()])
        last = match.end()
        calls.append({
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": parsed.call.function,
                         "arguments": json.dumps(parsed.call.arguments, ensure_ascii=False)},
        })
    pieces.append(text[last:])
    content = "".join(pieces).strip() if calls else text
    return (content or None), calls


def _content_text(content: Any, index: int) -> str | None:
    """OpenAI message content (a string, null, or a list of text parts) as one string."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise RequestError(f"messages[{index}].content must be a string or a list of text parts", param="messages")


def _chat_messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list", param="messages")
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(f"messages[{index}] must be an object with a 'role'", param="messages")
        message = dict(message, content=_content_text(message.get("content"), index))
        calls = message.get("tool_calls")
        if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
            raise RequestError(f"messages[{index}].tool_calls must be a list of objects", param="messages")
        if message["content"] is None and not calls:
            message["content"] = ""
        out.append(message)
    return out


# ---- HTTP ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000  # 0 picks a free port
    model_name: str = "orchestra"
    aliases: tuple[str, ...] = ()  # other names accepted in a request's `model` (BFCL sends a path)
    max_batch: int = 8
    batch_wait_s: float = 0.005
    default_max_tokens: int = 512  # when a request gives none (capped by the room left in the context)
    max_tokens_limit: int | None = None  # generate at most this many tokens whatever is asked (smoke runs)
    max_body_bytes: int = 16 * 1024 * 1024


class OpenAIServer:
    def __init__(self, backend: Backend, config: ServerConfig = ServerConfig()):
        self.backend, self.config = backend, config
        self.names = (config.model_name,) + tuple(a for a in config.aliases if a != config.model_name)
        self.batcher = Batcher(backend, config.max_batch, config.batch_wait_s)
        self.httpd = ThreadingHTTPServer((config.host, config.port), _make_handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/v1"

    def serve_forever(self, max_seconds: float | None = None) -> None:
        """Serve until `stop()` (or Ctrl-C); with `max_seconds`, stop by itself after that long."""
        timer = None
        if max_seconds is not None:
            timer = threading.Timer(max_seconds, self.httpd.shutdown)
            timer.daemon = True
            timer.start()
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            if timer is not None:
                timer.cancel()

    def start(self, max_seconds: float | None = None) -> "OpenAIServer":
        """`serve_forever` on a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, args=(max_seconds,), name="openai-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()
        self.batcher.close()

    def __enter__(self) -> "OpenAIServer":
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- endpoint logic (plain dicts in and out, so it is testable without sockets) --

    def models(self) -> dict:
        created = int(time.time())
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "orchestra",
             "max_model_len": self.backend.context_length} for name in self.names]}

    def _model(self, body: dict) -> str:
        name = body.get("model", self.config.model_name)
        if name not in self.names:
            raise RequestError(f"The model {name!r} does not exist; this server serves {list(self.names)}",
                               status=404, param="model", code="model_not_found")
        return name

    def _max_tokens(self, body: dict, prompt_tokens: int, names: Sequence[str] = ("max_tokens",)) -> int:
        context = self.backend.context_length
        requested = next((_integer(body, n, 1) for n in names if body.get(n) is not None), None)
        if requested is None:
            room = context - prompt_tokens
            if room < 1:
                raise RequestError(f"This model's maximum context length is {context} tokens. However, your "
                                   f"prompt has {prompt_tokens} tokens, which leaves no room for a completion.",
                                   param="prompt", code="context_length_exceeded")
            requested = min(self.config.default_max_tokens, room)
        elif prompt_tokens + requested > context:
            raise RequestError(f"This model's maximum context length is {context} tokens. However, you requested "
                               f"{prompt_tokens + requested} tokens ({prompt_tokens} in the prompt, {requested} "
                               "for the completion). Please reduce the prompt or max_tokens.",
                               param=names[0], code="context_length_exceeded")
        limit = self.config.max_tokens_limit
        return requested if limit is None else min(requested, limit)

    def _generate(self, prompts: Sequence[str], body: dict, names: Sequence[str] = ("max_tokens",)) -> list[Completion]:
        options = _options(body)
        jobs = []
        for prompt in prompts:
            count = self.backend.count_tokens(prompt)
            if count == 0:
                raise RequestError("the prompt is empty (it has no tokens)", param="prompt")
            jobs.append(Job(prompt, self._max_tokens(body, count, names), options))
        return [_cut_at_stop(c, options.stop) for c in self.batcher.submit(jobs)]

    def completions(self, body: dict) -> dict:
        model = self._model(body)
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise RequestError("'prompt' must be a string or a non-empty list of strings", param="prompt")
        results = self._generate(prompts, body)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": i, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
                        for i, c in enumerate(results)],
            "usage": _usage(results),
        }

    def chat_completions(self, body: dict) -> dict:
        model = self._model(body)
        messages = _chat_messages(body)
        tools = body.get("tools") or None
        if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
            raise RequestError("'tools' must be a list of objects", param="tools")
        tool_choice = body.get("tool_choice", "auto")
        if tool_choice not in ("auto", "none"):
            raise RequestError(f"tool_choice {tool_choice!r} is not supported; use 'auto' or 'none'",
                               param="tool_choice")
        try:
            prompt = render_chat(messages, tools, add_generation_prompt=True)
        except (ChatFormatError, KeyError, TypeError) as e:
            raise RequestError(f"cannot render the conversation: {e}", param="messages") from None
        [result] = self._generate([prompt], body, names=("max_completion_tokens", "max_tokens"))
        content, calls = split_tool_calls(result.text) if tool_choice == "auto" else (result.text, [])
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if calls else result.finish_reason}],
            "usage": _usage([result]),
        }


def _usage(results: Sequence[Completion]) -> dict:
    prompt = sum(c.prompt_tokens for c in results)
    completion = sum(c.completion_tokens for c in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _make_handler(app: OpenAIServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
        timeout = 300  # an idle kept-alive connection is dropped after this many seconds

        def log_message(self, format, *args):  # quiet: benchmarks send thousands of requests
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, error: RequestError) -> None:
            self._send(error.status, error.body())

        def do_GET(self):
            path = self.path.split("?")[0].rstrip("/")
            if path in ("/v1/models", "/models"):
                self._send(200, app.models())
            elif path in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            else:
                self._error(RequestError(f"no route GET {self.path}", status=404, kind="not_found"))

        def _body(self) -> dict:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                raise RequestError("a Content-Length header is required", status=HTTPStatus.LENGTH_REQUIRED)
            if int(length) > app.config.max_body_bytes:
                self.close_connection = True  # the unread body would be taken for the next request
                raise RequestError(f"the body is larger than {app.config.max_body_bytes} bytes",
                                   status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            raw = self.rfile.read(int(length))
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise RequestError(f"the body is not valid JSON: {e}") from None
            if not isinstance(body, dict):
                raise RequestError("the body must be a JSON object")
            return body

        def do_POST(self):
            routes = {"/v1/completions": app.completions, "/v1/chat/completions": app.chat_completions}
            route = routes.get(self.path.split("?")[0].rstrip("/"))
            try:
                if route is None:
                    self.close_connection = True
                    raise RequestError(f"no route POST {self.path}", status=404, kind="not_found")
                self._send(200, route(self._body()))
            except RequestError as e:
                self._error(e)
            except Exception as e:  # a bug or a backend failure: report it, keep serving
                self._error(RequestError(f"internal error: {type(e).__name__}: {e}", status=500, kind="server_error"))

    return Handler
