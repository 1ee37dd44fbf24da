"""Restart-safe checkpoints of the stacked training state (Orbax).

Orbax writes each step into a temporary directory and renames it when complete, so a kill
during a save leaves the previous checkpoint as the latest usable one; leftover temporary
directories are cleaned when the manager opens.
"""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, workdir: str, keep: int = 2):
        self.manager = ocp.CheckpointManager(
            os.path.abspath(os.path.join(workdir, "checkpoints")),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 enable_async_checkpointing=False,
                                                 cleanup_tmp_directories=True),
            item_names=("state",))

    def latest_step(self):
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                          force=True)
        self.manager.wait_until_finished()

    def restore(self, step: int, like):
        """Restores into the shapes, dtypes and shardings of `like` (a live state)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        return restored["state"]

    def close(self):
        self.manager.close()
