"""The OpenAI-compatible judge (with a fake transport: no network) and the `eval` config group."""

import io
import json
import os
import urllib.error

import pytest
from omegaconf import OmegaConf

from orchestra.data.paths import PROJECT_ROOT
from orchestra.data.types import Call
from orchestra.eval.judge import JudgeConfig, OpenAIJudge, extract_json, judge_config
from orchestra.eval.protocol import EvalConfig, eval_config


class FakeEndpoint:
    """Stands in for urllib.request.urlopen: records requests, replies with scripted contents."""

    def __init__(self, *contents):
        self.contents, self.requests = list(contents), []

    def __call__(self, request, timeout):
        self.requests.append((request, timeout))
        content = self.contents.pop(0)
        if isinstance(content, Exception):
            raise content
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
        return io.BytesIO(body.encode("utf-8"))


CONFIG = JudgeConfig(base_url="http://judge.local/v1/", model="judge-model", api_key_env="ORCHESTRA_TEST_JUDGE_KEY",
                     retries=1)


def test_call_equivalence_posts_a_chat_request_and_reads_fenced_json(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_TEST_JUDGE_KEY", "k-123")
    endpoint = FakeEndpoint('Sure.\n```json\n{"is_equal": true, "reason": "same city"}\n```')
    verdict = OpenAIJudge(CONFIG, opener=endpoint).calls_equivalent(
        [{"name": "F"}], [{"role": "user", "content": "q"}],
        Call("F", {"city": "NYC"}), Call("F", {"city": "New York"}))
    assert verdict is True
    request, timeout = endpoint.requests[0]
    body = json.loads(request.data)
    assert request.full_url == "http://judge.local/v1/chat/completions" and timeout == CONFIG.timeout_s
    assert request.get_header("Authorization") == "Bearer k-123"
    assert body["model"] == "judge-model" and "New York" in body["messages"][1]["content"]


def test_unusable_replies_are_retried_then_give_no_verdict():
    endpoint = FakeEndpoint("no json here", urllib.error.URLError("down"))
    assert OpenAIJudge(CONFIG, opener=endpoint).calls_equivalent([], [], Call("F", {}), Call("F", {})) is None
    assert len(endpoint.requests) == 2


def test_answer_scores_accept_only_0_1_2():
    endpoint = FakeEndpoint('{"score": 2, "reason": "all parts"}', '{"score": 5}', '{"score": 1}')
    scores = OpenAIJudge(CONFIG, opener=endpoint).score_answer("q", "reference", "answer")
    assert scores["complete"] == 2 and scores["correct"] == 1 and scores["reasons"]["complete"] == "all parts"


def test_extract_json_finds_the_object_in_a_chatty_reply():
    assert extract_json('I think {"is_equal": false} is right') == {"is_equal": False}
    assert extract_json("nothing") is None


def test_judge_config_checks_its_keys():
    assert judge_config(None) is None
    with pytest.raises(ValueError, match="unknown key.*'modle'"):
        judge_config({"base_url": "http://x", "modle": "m"})
    with pytest.raises(ValueError, match="base_url must be an http"):
        judge_config({"base_url": "x", "model": "m"})


def test_the_shipped_eval_config_loads():
    cfg = OmegaConf.load(os.path.join(PROJECT_ROOT, "conf", "eval", "default.yaml"))
    config = eval_config(cfg)
    assert config.judge is None and config.response_view.kind == "full"
    assert config.free_calls(Call("Search_Hotels", {"search_type": "hotel"}))
    assert not config.free_calls(Call("Search_Hotels", {"search_type": "city"}))
    assert config.free_calls(Call("Search_Car_Location", {"query": "x"}))
    assert [d for d, _ in config.domain.rules][0] == "Hotels"  # the YAML order is the rule order
    assert eval_config({}) == EvalConfig()


@pytest.mark.parametrize("cfg,message", [
    ({"max_turn": 3}, r"eval: unknown key\(s\) \['max_turn'\]"),
    ({"response_view": {"knd": "full"}}, r"eval.response_view: unknown key"),
    ({"free_calls": {"arguments": [{"function": "F"}]}}, r"eval.free_calls.arguments\[0\]"),
    ({"domain": {"by": "colour"}}, r"eval.domain.by"),
    ({"max_turns": 0}, r"max_turns"),
])
def test_bad_eval_config_is_an_error_naming_the_field(cfg, message):
    with pytest.raises(ValueError, match=message):
        eval_config(cfg)
