"""Orbax checkpoints: every N steps, keep K, resume from the latest.

A checkpoint holds the training state (a pytree of arrays: parameters, optimizer state, RNG key
data) and JSON metadata (the step, the data position, anything needed to continue exactly).
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, directory: str, every: int, keep: int):
        if every < 1 or keep < 1:
            raise ValueError(f"checkpoint.every and checkpoint.keep must be at least 1, got {every} and {keep}")
        self.directory, self.every = os.path.abspath(directory), every
        # The interval is decided here (Orbax would also save the very first step it sees).
        self.manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep))

    def save(self, step: int, state, meta: dict, force: bool = False) -> bool:
        """Save when `step` is on the interval (or `force`) and not saved already; returns whether
        it saved. (A forced save at the end of a run whose last step fell on the interval is a no-op.)"""
        if (not force and step % self.every) or step in self.manager.all_steps():
            return False
        saved = self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                                  meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()
        return bool(saved)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def steps(self) -> list[int]:
        """The steps of the kept checkpoints, oldest first."""
        return sorted(self.manager.all_steps())

    def restore(self, abstract_state, step: int | None = None):
        """(step, state, meta) of `step` (default: the latest), or None when there is no checkpoint.
        `abstract_state` gives the tree structure, shapes, dtypes and shardings to restore into."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        if step not in self.steps():
            raise FileNotFoundError(f"no checkpoint of step {step} in {self.directory} (kept: {self.steps()})")
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
        return step, restored["state"], restored["meta"]

    def close(self) -> None:
        self.manager.close()
