"""Metrics go to `metrics.jsonl` in the run directory always, and to wandb unless `logger=none`.

wandb runs offline unless WANDB_MODE says otherwise, so a run never needs the network.
"""

from __future__ import annotations

import json
import os


class MetricsLogger:
    def __init__(self, run_dir: str, kind: str = "wandb", project: str = "orchestra", config: dict | None = None,
                 name: str | None = None):
        if kind not in ("wandb", "none"):
            raise ValueError(f"logger.kind must be 'wandb' or 'none', got {kind!r}")
        os.makedirs(run_dir, exist_ok=True)
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self._file = open(self.path, "a", encoding="utf-8")
        self._wandb = None
        if kind == "wandb":
            import wandb
            os.environ.setdefault("WANDB_MODE", "offline")
            os.environ.setdefault("WANDB_SILENT", "true")
            self._wandb = wandb.init(project=project, dir=run_dir, config=config or {}, name=name,
                                     mode=os.environ["WANDB_MODE"], reinit="finish_previous")

    def log(self, metrics: dict, step: int) -> None:
        clean = {k: float(v) if hasattr(v, "__float__") else v for k, v in metrics.items()}
        self._file.write(json.dumps({"step": step, **clean}) + "\n")
        self._file.flush()
        if self._wandb is not None:
            self._wandb.log(clean, step=step)

    def close(self) -> None:
        self._file.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
