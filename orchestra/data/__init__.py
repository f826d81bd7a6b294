"""The data layer: typed records, loaders with located errors, importers and TFDS task sets.

- `load_booking(root)`: the Booking.com folder (`resolve_data_root()` finds it).
- `load_ecosystem(tools, calls, templates=None, tasks=None)`: a user's own API ecosystem;
  `save_ecosystem` / `write_calls_jsonl` write one.
- `load_complexfuncbench(path)`: ComplexFuncBench's official JSONL
  (`python -m orchestra.data.complexfuncbench IN.jsonl OUT_DIR` converts it to a data folder).
- `write_task_dataset` / `load_task_source`: tasks as a TFDS array_record dataset, no TensorFlow.
"""

from orchestra.data.booking import (Ecosystem, cache_entries_from_tasks, load_booking, load_exact_match_values,
                                    load_tasks, load_templates, parse_task)
from orchestra.data.ecosystem import load_calls, load_ecosystem, save_ecosystem, write_calls_jsonl
from orchestra.data.errors import DataError
from orchestra.data.paths import resolve_data_root
from orchestra.data.schemas import load_tools, parse_tool
from orchestra.data.serialize import task_to_json, write_tasks_jsonl
from orchestra.data.tfds_builder import TaskSource, load_task_source, write_task_dataset
from orchestra.data.types import Call, CacheEntry, ParamSpec, Step, Task, ToolSpec, WorkflowTemplate



def __getattr__(name):
    # Imported on first use, so `python -m orchestra.data.complexfuncbench` does not find its own
    # module already imported by this package (runpy warns about that).
    if name == "load_complexfuncbench":
        from orchestra.data.complexfuncbench import load_complexfuncbench
        return load_complexfuncbench
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CacheEntry", "Call", "DataError", "Ecosystem", "ParamSpec", "Step", "Task", "TaskSource", "ToolSpec",
    "WorkflowTemplate", "cache_entries_from_tasks", "load_booking", "load_calls", "load_complexfuncbench",
    "load_ecosystem", "load_exact_match_values", "load_task_source", "load_tasks", "load_templates", "load_tools",
    "parse_task", "parse_tool", "resolve_data_root", "save_ecosystem", "task_to_json", "write_calls_jsonl",
    "write_task_dataset", "write_tasks_jsonl",
]
