"""BFCL v4 through bfcl-eval's own generate + evaluate, against scripted servers.

A scripted backend behind the real OpenAI server answers each BFCL prompt from the package's
ground truth (an oracle), except where the test scripts a wrong answer; the checker's accuracy must
be exactly what the script implies.
"""

from __future__ import annotations

import json
import os
import re

import pytest

bfcl_eval = pytest.importorskip("bfcl_eval", reason="bfcl-eval is not installed (pip install --no-deps "
                                "bfcl-eval==2026.3.23 plus the project's `bfcl` extra)")

from experiments.bfcl import (BfclError, bfcl_commands, bfcl_environment, bfcl_package_dir,  # noqa: E402
                              collect_scores, flat_scores, resolve_categories, run_bfcl, scores_markdown,
                              subset_ids, write_policy_dir)
from orchestra.eval.server import Completion, OpenAIServer, ServerConfig  # noqa: E402
from orchestra.model.presets import preset_config  # noqa: E402
from orchestra.model.tokenizer import build_tokenizer  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

REGISTRY = "Qwen/Qwen3-8B-FC"
SUBSET = 4
WRONG = {"multiple_1": "I cannot help with that.",  # no call at all
         "multiple_3": '<tool_call>\n{"name": "no_such_function", "arguments": {}}\n</tool_call>'}
_LAST_USER = re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>\n<\|im_start\|>assistant\n$", re.DOTALL)


def _rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def oracle_text(ground_truth: list[dict]) -> str:
    """The gold calls as Qwen tool-call blocks; each argument takes its first accepted value, and an
    optional one ("" among the accepted values first) is left out."""
    blocks = []
    for call in ground_truth:
        [(name, params)] = call.items()
        arguments = {k: values[0] for k, values in params.items() if values[0] != ""}
        blocks.append("<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>")
    return "\n".join(blocks)


class ScriptedBackend:
    """Finds the entry by the prompt's last user message and answers from the ground truth."""
    context_length = 32768

    def __init__(self, tokenizer, answers: dict[str, str]):
        self.tokenizer, self.answers, self.prompts = tokenizer, answers, []

    def count_tokens(self, text):
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def complete(self, jobs):
        out = []
        for job in jobs:
            self.prompts.append(job.prompt)
            match = _LAST_USER.search(job.prompt)
            text = self.answers.get(match.group(1) if match else None, "no entry matches this prompt")
            out.append(Completion(text, self.count_tokens(job.prompt), self.count_tokens(text), "stop"))
        return out


@pytest.fixture(scope="module")
def data_dir():
    return bfcl_package_dir() / "data"


def test_categories_expand_groups_and_skip_what_cannot_run():
    categories, skipped = resolve_categories(["non_live", "multi_turn", "memory_kv", "web_search"], {})
    assert categories[:2] == ["simple_python", "simple_java"] and "irrelevance" in categories
    assert [c for c in categories if c.startswith("multi_turn")] == [
        "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"]
    assert categories[-1] == "memory_kv"
    assert set(skipped) == {"web_search_base", "web_search_no_snippet"}
    assert "SERPAPI_API_KEY" in skipped["web_search_base"]
    with_key, skipped = resolve_categories(["web_search"], {"SERPAPI_API_KEY": "k"})
    assert with_key == ["web_search_base", "web_search_no_snippet"] and skipped == {}
    with pytest.raises(BfclError, match="unknown BFCL category"):
        resolve_categories(["simple_cobol"], {})


def test_subset_ids_take_prerequisites_of_memory_scenarios(data_dir):
    ids = subset_ids(["simple_python", "memory_kv", "web_search_no_snippet"], 2, data_dir)
    assert ids["simple_python"] == ["simple_python_0", "simple_python_1"]
    assert ids["web_search_no_snippet"] == ["web_search_no_snippet_0", "web_search_no_snippet_1"]
    questions = [i for i in ids["memory_kv"] if "prereq" not in i]
    prereqs = [i for i in ids["memory_kv"] if "prereq" in i]
    assert questions == ["memory_kv_0-customer-0", "memory_kv_1-customer-1"]
    assert len(prereqs) == len(_rows(data_dir / "memory_prereq_conversation" / "memory_customer.json"))
    assert all(i.startswith("memory_kv_prereq_") and "-customer-" in i for i in prereqs)


def test_checker_scores_oracle_and_wrong_answers(tmp_path, data_dir):
    categories = ["simple_python", "parallel", "multiple"]
    ids = subset_ids(categories, SUBSET, data_dir)
    answers, expected_failures = {}, []
    for category in categories:
        questions = {row["id"]: row for row in _rows(data_dir / f"BFCL_v4_{category}.json")}
        truths = {row["id"]: row for row in _rows(data_dir / "possible_answer" / f"BFCL_v4_{category}.json")}
        for entry_id in ids[category]:
            query = questions[entry_id]["question"][0][-1]["content"]
            assert query not in answers, "the scripted server tells entries apart by their query"
            answers[query] = WRONG.get(entry_id) or oracle_text(truths[entry_id]["ground_truth"])
            if entry_id in WRONG:
                expected_failures.append(entry_id)
    (tmp_path / "test_case_ids_to_generate.json").write_text(json.dumps(ids))

    tokenizer = build_tokenizer(list(answers), vocab_size=300, digit_group=1)
    policy_dir = str(write_policy_dir(tmp_path / "policy", tokenizer, preset_config("small").to_hf(), 32768))
    # BFCL counts prompt tokens with what it loads from there: the served tokenizer, not a look-alike.
    loaded = AutoTokenizer.from_pretrained(policy_dir)
    probe = next(iter(answers))
    assert loaded.encode(probe, add_special_tokens=False) == tokenizer.encode(probe, add_special_tokens=False)
    assert json.loads((tmp_path / "policy" / "config.json").read_text())["max_position_embeddings"] == 32768
    backend = ScriptedBackend(tokenizer, answers)
    config = ServerConfig(port=0, model_name="scripted", aliases=(policy_dir,))
    with OpenAIServer(backend, config).start(max_seconds=300) as server:
        commands = bfcl_commands(REGISTRY, categories, policy_dir, num_threads=4, temperature=0.001, partial=True)
        env = bfcl_environment(tmp_path, server.url, policy_dir, os.environ)
        run_bfcl(commands, env, tmp_path / "bfcl.log", timeout_s=280, echo=False)

    assert len(backend.prompts) == len(categories) * SUBSET
    assert all("<tools>" in p and p.endswith("<|im_start|>assistant\n") for p in backend.prompts)
    scores = collect_scores(tmp_path, REGISTRY, categories, {}, SUBSET)
    assert scores["not_scored"] == []
    got = {c: (row["correct"], row["total"]) for c, row in scores["categories"].items()}
    assert got == {"simple_python": (4, 4), "parallel": (4, 4), "multiple": (2, 4)}
    assert scores["categories"]["simple_python"]["accuracy"] == 1.0
    assert scores["categories"]["multiple"]["accuracy"] == 0.5
    assert scores["groups"]["non_live"] == {"accuracy": (1.0 + 1.0 + 0.5) / 3, "categories": 3}
    assert flat_scores(scores) == {"non_live": (1.0 + 1.0 + 0.5) / 3}  # what experiments.tables reads

    # The checker failed exactly the scripted wrong answers.
    score_files = list((tmp_path / "score").rglob("BFCL_v4_multiple_score.json"))
    assert [row["id"] for row in _rows(score_files[0])[1:]] == expected_failures
    # Usage reached BFCL: it records the prompt size the server counted.
    [result_file] = (tmp_path / "result").rglob("BFCL_v4_simple_python_result.json")
    counts = [row["input_token_count"] for row in _rows(result_file)]
    assert len(counts) == SUBSET and all(c > 100 for c in counts)

    table = scores_markdown(scores)
    assert "| non_live | multiple | 0.5000 | 2 / 4 |" in table
