"""The OpenAI-compatible server on 127.0.0.1 (ephemeral port) around a tiny model and tokenizer.

The tiny model is random except that its attention and MLP outputs are zeroed and its unembedding
is solved so that each token of one scripted reply predicts the next: whatever the context, a prompt
ending in "\\n" makes it write exactly `REPLY` and then <|im_end|>. That makes the real sampler path
(batching, stop sequences, decoding, tool-call extraction) checkable to the character.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import jax.numpy as jnp
import numpy as np
import pytest

from orchestra.eval.server import Completion, ModelBackend, OpenAIServer, ServerConfig, split_tool_calls
from orchestra.model.chat import CHAT_TEMPLATE, IM_END, render_chat
from orchestra.model.config import ModelConfig
from orchestra.model.modeling import init_model
from orchestra.model.tokenizer import build_tokenizer

REPLY = '<tool_call>\n{"name": "get_weather", "arguments": {"day": 3}}\n</tool_call>'
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather forecast",
    "parameters": {"type": "object", "properties": {"day": {"type": "integer"}}, "required": ["day"]}}}]
CONTEXT = 1024


@pytest.fixture(scope="module")
def tokenizer():
    corpus = [REPLY, "What is the weather in Paris today? You are a helpful assistant.",
              json.dumps(TOOLS[0])] * 4
    return build_tokenizer(corpus, vocab_size=360, chat_template=CHAT_TEMPLATE, digit_group=1, min_frequency=1)


def scripted_model(tokenizer):
    """A random model whose greedy continuation after "\\n" is REPLY + <|im_end|>."""
    path = tokenizer.encode("assistant\n" + REPLY + IM_END, add_special_tokens=False)[1:]  # from the "\n"
    assert len(set(path)) == len(path), "the bigram script needs distinct tokens"
    config = ModelConfig(model_type="qwen2", vocab_size=384, hidden_size=64, num_layers=1, num_heads=2,
                         num_kv_heads=1, intermediate_size=64, tie_word_embeddings=False,
                         max_position_embeddings=CONTEXT, dtype="float32")
    model = init_model(config, seed=0)
    layer = model.layers[0]
    layer.attn.o_proj.kernel.set_value(jnp.zeros_like(layer.attn.o_proj.kernel[...]))
    layer.mlp.down_proj.kernel.set_value(jnp.zeros_like(layer.mlp.down_proj.kernel[...]))
    # With no attention or MLP output, the last hidden state is rmsnorm(embed[token]).
    embed = np.asarray(model.embed[...])[path[:-1]]
    hidden = embed / np.sqrt(np.mean(embed**2, axis=-1, keepdims=True) + config.rms_norm_eps)
    target = np.zeros((len(path) - 1, config.vocab_size), np.float32)
    target[np.arange(len(path) - 1), path[1:]] = 30.0
    lm_head, *_ = np.linalg.lstsq(hidden, target, rcond=None)
    model.lm_head.set_value(jnp.asarray(lm_head, jnp.float32))
    return model


class Recording:
    """Wraps a backend and records the size of every batch it is given."""

    def __init__(self, backend):
        self.backend, self.batches = backend, []
        self.context_length = backend.context_length

    def count_tokens(self, text):
        return self.backend.count_tokens(text)

    def complete(self, jobs):
        self.batches.append(len(jobs))
        return self.backend.complete(jobs)


@pytest.fixture(scope="module")
def server(tokenizer):
    # One prompt bucket and one decode length (16 steps: max_tokens 9..16) for every test keep the
    # number of compiled sampler programs down to two per batch size.
    backend = Recording(ModelBackend(scripted_model(tokenizer), tokenizer, min_bucket=512, chunk_steps=16))
    config = ServerConfig(host="127.0.0.1", port=0, model_name="tiny", aliases=("/ckpt/tiny",),
                          batch_wait_s=0.0, default_max_tokens=16)
    with OpenAIServer(backend, config).start(max_seconds=120) as running:  # stops by itself if a test hangs
        yield running


def call(server, path, body=None, raw: bytes | None = None):
    """(status, JSON body) of one request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(server.url.removesuffix("/v1") + path, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_models_lists_name_aliases_and_context(server):
    status, body = call(server, "/v1/models")
    assert status == 200
    assert [m["id"] for m in body["data"]] == ["tiny", "/ckpt/tiny"]
    assert body["data"][0]["max_model_len"] == CONTEXT


def test_completion_writes_the_scripted_reply_and_counts_tokens(server, tokenizer):
    prompt = "What is the weather in Paris today?\n"
    status, body = call(server, "/v1/completions",
                        {"model": "tiny", "prompt": prompt, "max_tokens": 16, "temperature": 0})
    assert status == 200, body
    [choice] = body["choices"]
    assert choice["text"] == REPLY  # <tool_call> tags kept, the closing <|im_end|> dropped
    assert choice["finish_reason"] == "stop"
    reply_tokens = len(tokenizer.encode(REPLY + IM_END, add_special_tokens=False))
    assert body["usage"] == {"prompt_tokens": len(tokenizer.encode(prompt, add_special_tokens=False)),
                             "completion_tokens": reply_tokens,
                             "total_tokens": len(tokenizer.encode(prompt, add_special_tokens=False)) + reply_tokens}


def test_completion_max_tokens_and_stop_strings(server):
    status, body = call(server, "/v1/completions", {"model": "/ckpt/tiny", "prompt": "Paris\n", "max_tokens": 10,
                                                     "temperature": 0})
    assert status == 200
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 10
    assert REPLY.startswith(body["choices"][0]["text"]) and body["choices"][0]["text"]

    status, body = call(server, "/v1/completions", {"prompt": ["Paris\n", "Rome\n"], "max_tokens": 16,
                                                     "temperature": 0, "stop": ["get_weather"]})
    assert status == 200
    assert [c["text"] for c in body["choices"]] == ['<tool_call>\n{"name": "'] * 2
    assert [c["finish_reason"] for c in body["choices"]] == ["stop", "stop"]
    assert body["usage"]["completion_tokens"] < 2 * 10  # the sampler stopped early on the stop string


def test_chat_completion_returns_tool_calls(server, tokenizer):
    messages = [{"role": "user", "content": "What is the weather on day 3?"}]
    status, body = call(server, "/v1/chat/completions",
                        {"model": "tiny", "messages": messages, "tools": TOOLS, "temperature": 0})
    assert status == 200, body
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [tool_call] = choice["message"]["tool_calls"]
    assert tool_call["type"] == "function" and tool_call["id"].startswith("call_")
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"day": 3}
    prompt = render_chat(messages, TOOLS, add_generation_prompt=True)
    assert body["usage"]["prompt_tokens"] == len(tokenizer.encode(prompt, add_special_tokens=False))


def test_chat_renders_earlier_tool_calls_and_results(server):
    messages = [
        {"role": "system", "content": "You help with weather."},
        {"role": "user", "content": [{"type": "text", "text": "Weather on day 3?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"day": 3}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    status, body = call(server, "/v1/chat/completions",
                        {"model": "tiny", "messages": messages, "tools": TOOLS, "temperature": 0,
                         "tool_choice": "none"})
    assert status == 200, body
    assert body["choices"][0]["message"] == {"role": "assistant", "content": REPLY}  # tool_choice none: raw text
    assert body["choices"][0]["finish_reason"] == "stop"


def test_concurrent_requests_are_batched(server):
    server.backend.batches.clear()
    server.batcher.wait_s = 2.0  # the first request waits this long for company (generous for a busy CI)
    results = [None] * 2

    def one(i):
        results[i] = call(server, "/v1/completions", {"prompt": f"Day {i}\n", "max_tokens": 16, "temperature": 0})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    server.batcher.wait_s = 0.0
    assert [status for status, _ in results] == [200] * 2
    assert [body["choices"][0]["text"] for _, body in results] == [REPLY] * 2
    assert server.backend.batches == [2]  # one sampler call for both


def test_prompt_longer_than_context_is_rejected(server):
    long_prompt = "Paris " * CONTEXT
    status, body = call(server, "/v1/completions", {"prompt": long_prompt, "max_tokens": 8})
    assert status == 400
    assert f"maximum context length is {CONTEXT} tokens" in body["error"]["message"]
    assert body["error"]["code"] == "context_length_exceeded"
    # A prompt that fits, but not with the completion asked for.
    status, body = call(server, "/v1/completions", {"prompt": "Paris " * 300, "max_tokens": 500})
    assert status == 400 and "for the completion" in body["error"]["message"]
    status, body = call(server, "/v1/chat/completions",
                        {"messages": [{"role": "user", "content": long_prompt}], "max_completion_tokens": 4})
    assert status == 400 and "maximum context length" in body["error"]["message"]


@pytest.mark.parametrize("path, raw, status, words", [
    ("/v1/completions", b'{"prompt": "Paris", ', 400, "not valid JSON"),
    ("/v1/chat/completions", b"\xff\xfe", 400, "not valid JSON"),
    ("/v1/completions", b'["a list"]', 400, "JSON object"),
    ("/v1/completions", b'{"prompt": 7}', 400, "'prompt'"),
    ("/v1/completions", b'{"prompt": "a", "model": "gpt-4"}', 404, "does not exist"),
    ("/v1/completions", b'{"prompt": "a", "n": 2}', 400, "'n'=2"),
    ("/v1/completions", b'{"prompt": "a", "temperature": -1}', 400, "'temperature'"),
    ("/v1/completions", b'{"prompt": "a", "max_tokens": "many"}', 400, "'max_tokens'"),
    ("/v1/completions", b'{"prompt": ""}', 400, "empty"),
    ("/v1/chat/completions", b'{"messages": []}', 400, "'messages'"),
    ("/v1/chat/completions", b'{"messages": [{"role": "robot", "content": "hi"}]}', 400, "unknown role"),
    ("/v1/embeddings", b'{}', 404, "no route"),
])
def test_bad_requests_get_clear_errors(server, path, raw, status, words):
    got, body = call(server, path, raw=raw)
    assert got == status
    assert words in body["error"]["message"]
    # The server is still serving afterwards.
    assert call(server, "/v1/models")[0] == 200


def test_split_tool_calls_keeps_unparsable_blocks_as_content():
    text = 'Sure.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>\nnot json\n</tool_call>'
    content, calls = split_tool_calls(text)
    assert [c["function"]["name"] for c in calls] == ["a"]
    assert content == "Sure.\n\n<tool_call>\nnot json\n</tool_call>"
    assert split_tool_calls("just text") == ("just text", [])


def test_backend_failure_is_a_500_and_the_server_keeps_serving():
    class Failing:
        context_length = 64

        def count_tokens(self, text):
            return len(text.split())

        def complete(self, jobs):
            if jobs[0].prompt == "boom":
                raise RuntimeError("device lost")
            return [Completion("ok", 1, 1, "stop") for _ in jobs]

    with OpenAIServer(Failing(), ServerConfig(port=0, model_name="f")).start(max_seconds=60) as running:
        status, body = call(running, "/v1/completions", {"prompt": "boom"})
        assert status == 500 and "device lost" in body["error"]["message"]
        status, body = call(running, "/v1/completions", {"prompt": "fine"})
        assert status == 200 and body["choices"][0]["text"] == "ok"
