"""Where the data lives: `data.root` in the config, else `$ORCHESTRA_DATA`, else `data/booking` in the
project, else `../shared/data/booking` beside the project."""

from __future__ import annotations

import os

from orchestra.data.errors import DataError

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIRED_FILES = ("tools.jsonl", "tasks.jsonl")


def candidate_roots() -> list[str]:
    roots = []
    if os.environ.get("ORCHESTRA_DATA"):
        roots.append(os.environ["ORCHESTRA_DATA"])
    roots.append(os.path.join(PROJECT_ROOT, "data", "booking"))
    roots.append(os.path.join(os.path.dirname(PROJECT_ROOT), "shared", "data", "booking"))
    return roots


def resolve_data_root(root: str | None = None) -> str:
    """The data folder to use; a clear error when none holds the data."""
    roots = [root] if root else candidate_roots()
    for r in roots:
        if all(os.path.isfile(os.path.join(r, f)) for f in REQUIRED_FILES):
            return os.path.abspath(r)
    tried = "\n  ".join(roots)
    raise DataError(
        f"no Booking data folder found (it must hold {', '.join(REQUIRED_FILES)}). Tried:\n  {tried}\n"
        "The data is the public release of arXiv:2603.24709 (tools.jsonl, tasks.jsonl, "
        "workflow_templates.json) plus ComplexFuncBench's exact_match_values.json. Put it in one of "
        "those places, set $ORCHESTRA_DATA, or pass data.root=/path/to/booking.")
