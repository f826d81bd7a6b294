"""Constrained synthesis of valid multi-step traces over the recorded cache (after arXiv:2603.24709).

- `synthesize(ecosystem, config, seed) -> SynthesisResult(tasks, report)`: the pipeline.
- `split_tasks(tasks, split_config, seed, seen_values) -> Split(train, held_out, report)`: by seed, workflow or
  values; never holds out a task using a value a checkpoint was trained on (`write_seen_values` /
  `read_seen_values`, the checkpoint's `seen_values.json`). `split_evaluated(held_out, count, ...)` cuts
  held-out tasks into those evaluated and fresh ones that share no value with them.
- `write_outputs(result, split, out_dir, formats)`: `tasks.jsonl`-format files, a TFDS dataset, the report.
- `pipeline` holds those. The pieces: `paths.read_field` (response paths), `index.ReverseIndex`,
  `sampler.sample_chain` / `count_chains`, `unconstrained.FreeProposer` (the baseline),
  `graph.DependencyGraph` (mined graph, composed chains), `realise.OfflineRealiser` / `LLMRealiser`,
  `domains.infer_domains`, `phrasebook.BOOKING` (prose for the shipped tools).
"""

from orchestra.synth.config import Complexity, ConfigError, RealiserConfig, SplitConfig, SynthConfig
from orchestra.synth.pipeline import (SEEN_VALUES_FILE, Split, SynthesisError, SynthesisResult, read_seen_values,
                                        split_evaluated, split_tasks, synthesize, task_values, write_outputs,
                                        write_seen_values)

__all__ = ["SEEN_VALUES_FILE", "Complexity", "ConfigError", "RealiserConfig", "Split", "SplitConfig", "SynthConfig",
           "SynthesisError", "SynthesisResult", "read_seen_values", "split_evaluated", "split_tasks", "synthesize",
           "task_values", "write_outputs", "write_seen_values"]
