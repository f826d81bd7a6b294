import json
import os
import subprocess
import sys

from orchestra.model.chat import CHAT_TEMPLATE
from orchestra.model.config import ModelConfig
from orchestra.model.loader import save_model
from orchestra.model.modeling import init_model
from orchestra.model.tokenizer import build_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_evaluate_scores_a_run_directory_policy(tmp_path, booking):
    tok = build_tokenizer([t.query for t in booking.tasks], 1500, CHAT_TEMPLATE)
    config = ModelConfig(model_type="qwen2", vocab_size=len(tok), hidden_size=32, num_layers=1, num_heads=2,
                         num_kv_heads=1, intermediate_size=64, max_position_embeddings=8192, dtype="float32")
    save_model(init_model(config), tmp_path / "run" / "policy", tok)
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"model.path={tmp_path / 'run'}",
                           "model.preset=null", "limit=2", "max_new_tokens=8", "eval.max_turns=2",
                           "eval.progress=false", f"hydra.run.dir={out}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.load(open(out / "summary.json"))
    assert summary["overall"]["samples"] == 2 and summary["lower_bound"] is True
    assert 0.0 <= summary["overall"]["turn_accuracy"] <= 1.0
    bad = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"model.path={tmp_path / 'nothing'}",
                          f"hydra.run.dir={tmp_path / 'bad'}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "holds no config.json" in bad.stderr
