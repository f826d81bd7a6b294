"""`python -m experiments.synthesize`: Hydra overrides reach the synthesis; files and TFDS come out."""

import json
import os
import subprocess
import sys

from orchestra.data.booking import load_tasks
from orchestra.data.tfds_builder import load_task_source

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(tmp_path, *overrides):
    return subprocess.run([sys.executable, "-m", "experiments.synthesize", *overrides,
                           f"hydra.run.dir={tmp_path / 'hydra'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_command_writes_tasks_tfds_report_and_config(tmp_path, booking):
    out = tmp_path / "out"
    proc = _run(tmp_path, "synth.count=24", "synth.seed=4", "synth.complexity.distractors=3",
                "synth.split.by=seed", f"synth.output_dir={out}", f"data.root={booking.root}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    train = load_tasks(out / "train.jsonl", booking.tools)
    held = load_tasks(out / "held_out.jsonl", booking.tools)
    assert len(train) + len(held) == 24 and len(held) == 5
    assert all(len(set(t.candidate_tools) - set(t.pattern)) == 3 for t in train + held)
    report = json.loads((out / "report.json").read_text())
    assert report["synthesis"]["produced"] == 24 and report["split"]["held_out"] == 5
    assert "count: 24" in (out / "config.yaml").read_text()
    source = load_task_source(str(out / "tfds" / "orchestra_synth" / "1.0.0"), "train")
    assert len(source) == len(train) and source[0].query == train[0].query


def test_a_bad_override_fails_with_the_key_named(tmp_path):
    proc = _run(tmp_path, "synth.complexity.calls_per_turn=0", f"synth.output_dir={tmp_path / 'out'}")
    assert proc.returncode == 2
    assert "synth.complexity.calls_per_turn" in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()
