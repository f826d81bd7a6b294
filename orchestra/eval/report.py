"""Writers for evaluation results: per-sample JSONL and a summary JSON, each written atomically
(a temporary file in the same folder, then a rename), so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable

SAMPLES_FILE, SUMMARY_FILE = "samples.jsonl", "summary.json"


def atomic_write(path: str | os.PathLike, lines: Iterable[str]) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_samples(path: str | os.PathLike, samples: Iterable[dict]) -> None:
    atomic_write(path, (json.dumps(s, ensure_ascii=False) + "\n" for s in samples))


def write_summary(path: str | os.PathLike, summary: dict) -> None:
    atomic_write(path, [json.dumps(summary, ensure_ascii=False, indent=2) + "\n"])


def write_results(out_dir: str | os.PathLike, summary: dict, samples: list[dict]) -> tuple[str, str]:
    """`out_dir/samples.jsonl` and `out_dir/summary.json`; returns their paths."""
    samples_path = os.path.join(os.fspath(out_dir), SAMPLES_FILE)
    summary_path = os.path.join(os.fspath(out_dir), SUMMARY_FILE)
    write_samples(samples_path, samples)
    write_summary(summary_path, summary)
    return samples_path, summary_path


def summary_table(summary: dict):
    """A rich table of the summary's metrics (overall, then per domain), in percent."""
    from rich.table import Table

    title = "ComplexFuncBench" + (" (no judge: strict lower bound)" if summary.get("lower_bound") else "")
    table = Table(title=title)
    for column in ("domain", "samples", "success", "call acc", "turn acc"):
        table.add_column(column, justify="left" if column == "domain" else "right")
    rows = [("overall", summary["overall"])] + list(summary["by_domain"].items())
    for name, b in rows:
        table.add_row(name, str(b["samples"]), f"{100 * b['success_rate']:.1f}",
                      f"{100 * b['call_accuracy']:.1f}", f"{100 * b['turn_accuracy']:.1f}")
    return table
