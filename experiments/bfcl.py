"""BFCL v4 for a policy through the official checker: python -m experiments.bfcl model.path=DIR [overrides].

    python -m experiments.bfcl model.path=/ckpt/policy
    python -m experiments.bfcl model=small model.tokenizer=outputs/tokenizer bfcl.subset=2 serve.max_tokens_limit=32
    python -m experiments.bfcl bfcl.url=http://127.0.0.1:8000/v1 bfcl.tokenizer_path=/ckpt/policy

1. Starts the OpenAI-compatible server (orchestra.eval.server) for the policy on 127.0.0.1, or uses
   the running one at `bfcl.url`.
2. Runs bfcl-eval's `generate` and `evaluate` commands (the `bfcl` CLI, both in one child process so
   its slow start is paid once) for the offline categories. BFCL's Qwen FC handler formats each
   prompt itself and calls `/v1/completions` with it; `--skip-server-setup` with
   REMOTE_OPENAI_BASE_URL points it at our server, and `--local-model-path` names a directory with
   the tokenizer files and a config.json whose max_position_embeddings bounds the prompt.
   BFCL_PROJECT_ROOT is the run directory, so `result/` and `score/` land there.
3. Writes into the run directory `scores.json` ({group: accuracy}, the unweighted mean of the
   group's categories: what experiments.tables reads from a training run's `bfcl/` folder, so run
   with hydra.run.dir=<training run>/bfcl), `scores_detail.json` and `scores.md` (per category).
   BFCL's own CSV summaries are in `score/`. Running again in the same directory resumes: BFCL
   keeps the results it already has.

`bfcl.subset=N` runs the first N entries of each category (memory categories add their scenarios'
prerequisite conversations) through BFCL's `--run-ids` and `--partial-eval`: smoke runs only, the
scores are not comparable with the leaderboard.

bfcl-eval is installed without its dependencies (it pins numpy 1.26); see the `bfcl` extra in
pyproject.toml for what it needs instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

PREFIX = "BFCL_v4"
GROUPS = ("non_live", "live", "multi_turn", "memory", "web_search")
# Categories that need more than the bfcl extra provides: (what is missing, test).
NEEDS = {
    "web_search": ("SERPAPI_API_KEY is not set (BFCL's web search calls SerpAPI)",
                   lambda env: bool(env.get("SERPAPI_API_KEY"))),
    "memory_vector": ("faiss and sentence-transformers are not installed",
                      lambda env: all(importlib.util.find_spec(m) for m in ("faiss", "sentence_transformers"))),
}
# Runs in the child process: bfcl-eval's CLI, one command after another.
_DRIVER = "import json, sys; from experiments.bfcl import run_cli; run_cli(json.loads(sys.argv[1]))"


class BfclError(RuntimeError):
    """The benchmark could not be run as configured."""


def bfcl_package_dir() -> Path:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise BfclError("bfcl-eval is not installed: pip install --no-deps bfcl-eval==2026.3.23 "
                        "and pip install -e '.[bfcl]' (its dependencies)")
    return Path(list(spec.submodule_search_locations)[0])


def category_groups() -> dict[str, list[str]]:
    # A module of constants only; importing it does not start the heavy CLI.
    from bfcl_eval.constants.category_mapping import TEST_COLLECTION_MAPPING

    return {group: list(TEST_COLLECTION_MAPPING[group]) for group in GROUPS}


def group_of(category: str, groups: Mapping[str, Sequence[str]]) -> str:
    return next((g for g, members in groups.items() if category in members), "other")


def resolve_categories(requested: Sequence[str], environ: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """(categories to run, {skipped category: why}) from category and group names."""
    groups = category_groups()
    known = {c for members in groups.values() for c in members}
    categories: list[str] = []
    for name in requested:
        members = groups.get(name, [name])
        unknown = [c for c in members if c not in known]
        if unknown:
            raise BfclError(f"unknown BFCL category {name!r}; groups: {list(groups)}, categories: {sorted(known)}")
        categories += [c for c in members if c not in categories]
    skipped = {}
    for category in categories:
        for prefix, (why, available) in NEEDS.items():
            if category.startswith(prefix) and not available(environ):
                skipped[category] = why
    return [c for c in categories if c not in skipped], skipped


def _ids(path: Path) -> list[str]:
    with open(path) as f:
        return [json.loads(line)["id"] for line in f if line.strip()]


def subset_ids(categories: Sequence[str], count: int, data_dir: Path) -> dict[str, list[str]]:
    """The first `count` entries of each category, with the ids BFCL gives them when it loads the
    data (memory and web search entries are renamed after their category)."""
    if count < 1:
        raise BfclError(f"bfcl.subset must be a positive number of entries, got {count}")
    chosen = {}
    for category in categories:
        if category.startswith("memory"):
            questions = [i.replace("memory", category, 1) for i in _ids(data_dir / f"{PREFIX}_memory.json")][:count]
            scenarios = {i.split("-")[1] for i in questions}
            # the questions can only be answered after the scenario's prerequisite conversations
            prereqs = [i.replace("memory", category, 1) for s in sorted(scenarios)
                       for i in _ids(data_dir / "memory_prereq_conversation" / f"memory_{s}.json")]
            chosen[category] = prereqs + questions
        elif category.startswith("web_search"):
            chosen[category] = [i.replace("web_search", category, 1)
                                for i in _ids(data_dir / f"{PREFIX}_web_search.json")][:count]
        else:
            chosen[category] = _ids(data_dir / f"{PREFIX}_{category}.json")[:count]
    return chosen


def bfcl_commands(registry_model: str, categories: Sequence[str], policy_dir: str, num_threads: int,
                  temperature: float, partial: bool) -> list[list[str]]:
    """Arguments of `bfcl generate` and `bfcl evaluate`. With `partial`, generation reads the ids
    from test_case_ids_to_generate.json in the project root and evaluation scores only those."""
    joined = ",".join(categories)
    generate = ["generate", "--model", registry_model, "--test-category", joined, "--skip-server-setup",
                "--local-model-path", policy_dir, "--num-threads", str(num_threads), "--temperature", str(temperature)]
    evaluate = ["evaluate", "--model", registry_model, "--test-category", joined]
    if partial:
        generate.append("--run-ids")
        evaluate.append("--partial-eval")
    return [generate, evaluate]


def bfcl_environment(project_root: Path, url: str, policy_dir: str, base: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    local = "127.0.0.1,localhost"
    env.update(
        BFCL_PROJECT_ROOT=str(project_root),
        REMOTE_OPENAI_BASE_URL=url,
        REMOTE_OPENAI_API_KEY=base.get("REMOTE_OPENAI_API_KEY", "EMPTY"),
        REMOTE_OPENAI_TOKENIZER_PATH=policy_dir,
        TOKENIZERS_PARALLELISM="false",
        # a proxy set for the package registries must not swallow requests to our own server
        NO_PROXY=",".join(filter(None, [base.get("NO_PROXY"), local])),
        no_proxy=",".join(filter(None, [base.get("no_proxy"), local])),
    )
    return env


def run_cli(commands: Sequence[Sequence[str]]) -> None:
    """In the child process: bfcl-eval's CLI (what the `bfcl` executable runs) for each command."""
    from bfcl_eval.__main__ import cli

    for args in commands:
        print("$ bfcl " + " ".join(args), flush=True)
        cli(args=list(args), standalone_mode=False)


def run_bfcl(commands: Sequence[Sequence[str]], env: Mapping[str, str], log_path: Path,
             timeout_s: float | None = None, echo: bool = True) -> None:
    """Run the commands in one child process, its output copied to `log_path` (and the console)."""
    with open(log_path, "wb") as log:
        child = subprocess.Popen([sys.executable, "-c", _DRIVER, json.dumps(list(map(list, commands)))],
                                 env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)

        def copy():
            for chunk in iter(lambda: child.stdout.read1(65536), b""):
                log.write(chunk)
                if echo:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()

        copier = threading.Thread(target=copy, daemon=True)
        copier.start()
        try:
            code = child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGTERM)  # its own session: BFCL's worker threads go too
            child.wait(timeout=30)
            raise BfclError(f"bfcl did not finish within {timeout_s} s; its output is in {log_path}") from None
        finally:
            copier.join(timeout=10)
    if code != 0:
        tail = log_path.read_bytes()[-3000:].decode(errors="replace")
        raise BfclError(f"bfcl exited with status {code}; the end of {log_path}:\n{tail}")


def collect_scores(project_root: Path, registry_model: str, categories: Sequence[str],
                   skipped: Mapping[str, str], subset: int | None) -> dict:
    """Per-category accuracy from BFCL's score files, and the unweighted mean of each group's
    categories (over the categories that were scored)."""
    from importlib.metadata import version

    groups = category_groups()
    score_dir = project_root / "score" / registry_model.replace("/", "_")
    found = {}
    for path in score_dir.rglob(f"{PREFIX}_*_score.json"):
        category = path.name[len(PREFIX) + 1: -len("_score.json")]
        with open(path) as f:
            header = json.loads(f.readline())
        found[category] = {"group": group_of(category, groups), "accuracy": header["accuracy"],
                           "correct": header["correct_count"], "total": header["total_count"]}
    scored = {c: found[c] for c in categories if c in found}
    summary = {}
    for group in GROUPS:
        members = [row["accuracy"] for row in scored.values() if row["group"] == group]
        if members:
            summary[group] = {"accuracy": sum(members) / len(members), "categories": len(members)}
    return {
        "benchmark": "BFCL v4",
        "bfcl_eval_version": version("bfcl-eval"),
        "registry_model": registry_model,
        "subset": subset,
        "categories": scored,
        "groups": summary,
        "not_scored": [c for c in categories if c not in found],
        "skipped": dict(skipped),
    }


def flat_scores(scores: Mapping) -> dict[str, float]:
    """{group: accuracy}: one number per BFCL section, the columns of the paper's tables."""
    return {group: row["accuracy"] for group, row in scores["groups"].items()}


def scores_markdown(scores: Mapping) -> str:
    subset = f", first {scores['subset']} entries per category (smoke run)" if scores["subset"] else ""
    lines = [f"## {scores['benchmark']} (bfcl-eval {scores['bfcl_eval_version']}, handler "
             f"{scores['registry_model']}{subset})", "",
             "| group | category | accuracy | correct / total |", "|---|---|---|---|"]
    for category, row in scores["categories"].items():
        lines.append(f"| {row['group']} | {category} | {row['accuracy']:.4f} | {row['correct']} / {row['total']} |")
    for group, row in scores["groups"].items():
        plural = "y" if row["categories"] == 1 else "ies"
        lines.append(f"| **{group}** | mean of {row['categories']} categor{plural} | **{row['accuracy']:.4f}** | |")
    for category in scores["not_scored"]:
        lines.append(f"\nNot scored: {category} (no score file; see bfcl.log)")
    for category, why in scores["skipped"].items():
        lines.append(f"\nSkipped: {category}: {why}")
    return "\n".join(lines) + "\n"


def wait_until_serving(url: str, timeout_s: float = 60) -> list[str]:
    """The model ids a server lists, once it answers (BFCL itself would wait forever)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
                return [m["id"] for m in json.loads(response.read())["data"]]
        except OSError as e:
            if time.monotonic() > deadline:
                raise BfclError(f"no OpenAI-compatible server answers at {url}: {e}") from None
            time.sleep(0.5)


PROBE = 'Hello  world, {"a": [1, 22, 333], "b": "x"}\n<tool_call>\n{"name": "f"}\n</tool_call><|im_end|>'


def write_policy_dir(path: Path, tokenizer, hf_config: dict, context_length: int) -> Path:
    """What BFCL's handler loads with AutoTokenizer/AutoConfig: the tokenizer files and a
    config.json whose max_position_embeddings is the context the server enforces.

    BFCL counts prompt tokens with what it loads here, so it must tokenise like the server.
    transformers 5 loads any tokenizer next to a `qwen2` config.json as a Qwen2Tokenizer (it
    overrides the saved tokenizer class), which splits text differently from the project's own
    tokenizer; when that happens the directory gets a `llama` config instead, under which
    transformers keeps the saved class. BFCL reads nothing else from the config.
    """
    from transformers import AutoTokenizer

    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(path))
    config = dict(hf_config, max_position_embeddings=context_length)
    for attempt in (config, dict(config, model_type="llama", architectures=["LlamaForCausalLM"])):
        (path / "config.json").write_text(json.dumps(attempt, indent=2))
        loaded = AutoTokenizer.from_pretrained(str(path))
        if loaded.tokenize(PROBE) == tokenizer.tokenize(PROBE):
            return path
    raise BfclError(f"transformers loads the tokenizer in {path} as {type(loaded).__name__}, which tokenises "
                    f"differently from the served {type(tokenizer).__name__}; BFCL would miscount prompts")


@hydra.main(config_path="../conf", config_name="bfcl", version_base=None)
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import to_absolute_path

    run_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    b = cfg.bfcl
    server = None
    try:
        data_dir = bfcl_package_dir() / "data"
        categories, skipped = resolve_categories(list(b.categories), os.environ)
        for category, why in skipped.items():
            print(f"skipping {category}: {why}")
        if not categories:
            raise BfclError("no category left to run")
        if b.subset:
            ids = subset_ids(categories, b.subset, data_dir)
            (run_dir / "test_case_ids_to_generate.json").write_text(json.dumps(ids, indent=2))

        if b.url:
            url = b.url.rstrip("/")
            source = b.tokenizer_path or cfg.model.get("tokenizer") or cfg.model.path
            if not source:
                raise BfclError("with bfcl.url, set bfcl.tokenizer_path to the served checkpoint directory")
            policy_dir = to_absolute_path(source)
            served = wait_until_serving(url)
            if policy_dir not in served:
                raise BfclError(f"BFCL will ask for model {policy_dir!r}, but {url} serves {served}; start it "
                                f"with model.path={policy_dir} or serve.aliases=[{policy_dir}]")
        else:
            from experiments.serve import build_server

            policy_dir = str(run_dir / "bfcl_policy")
            server, backend = build_server(cfg, port=b.port, extra_aliases=[policy_dir])
            write_policy_dir(Path(policy_dir), backend.tokenizer, backend.model.config.to_hf(), backend.context_length)
            server.start()
            url = server.url
            wait_until_serving(url)
            print(f"serving the policy at {url} (context {backend.context_length} tokens)")

        commands = bfcl_commands(b.registry_model, categories, policy_dir, b.num_threads, b.temperature,
                                 partial=bool(b.subset))
        env = bfcl_environment(run_dir, url, policy_dir, os.environ)
        run_bfcl(commands, env, run_dir / "bfcl.log", b.timeout_s)
    except (BfclError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        if server is not None:
            server.stop()

    scores = collect_scores(run_dir, b.registry_model, categories, skipped, b.subset)
    (run_dir / "scores.json").write_text(json.dumps(flat_scores(scores), indent=2))
    (run_dir / "scores_detail.json").write_text(json.dumps(scores, indent=2))
    table = scores_markdown(scores)
    (run_dir / "scores.md").write_text(table)
    print(table)
    print(f"written to {run_dir}")


if __name__ == "__main__":
    main()
