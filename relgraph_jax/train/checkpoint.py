"""Restart-safe checkpoints that do not depend on the device layout (Orbax).

What is saved is each real variant's state keyed by variant id: per bucket, the ids and
every state leaf stacked over those variants only (no padding slots), as host arrays.
Restoring places each variant into whatever bucket and slot the current run gives it,
cropping or zero-padding its leaves to that bucket's shapes. So a run stopped on 8
devices resumes on 2 or 1 (and the reverse), and with other `train.width_buckets` or
`train.variant_batch`: padding is zeros, so cropping it or adding more is exact.

Orbax writes each step into a temporary directory and renames it when complete, so a kill
during a save leaves the previous checkpoint as the latest usable one; leftover temporary
directories are cleaned when the manager opens.
"""
from __future__ import annotations

import os
import re

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, workdir: str, keep: int = 2):
        self.manager = ocp.CheckpointManager(
            os.path.abspath(os.path.join(workdir, "checkpoints")),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 enable_async_checkpointing=False,
                                                 cleanup_tmp_directories=True),
            item_handlers={"variants": ocp.StandardCheckpointHandler()})

    def latest_step(self):
        return self.manager.latest_step()

    def save(self, step: int, groups) -> None:
        """groups: [(variant ids, host state stacked over those variants and maybe more
        slots after them)]; only the rows of the ids are saved, keyed by id."""
        tree = {}
        for k, (ids, state) in enumerate(groups):
            leaves = _named_leaves(state)
            tree[f"group{k}"] = {"ids": np.asarray(ids, np.int64),
                                 "leaves": {name: np.asarray(x)[:len(ids)]
                                            for name, x in leaves.items()}}
        self.manager.save(step, args=ocp.args.Composite(variants=ocp.args.StandardSave(tree)),
                          force=True)
        self.manager.wait_until_finished()

    def restore(self, step: int, templates: list) -> list:
        """Host states shaped like `templates`, filled from the checkpoint by variant id.

        templates: [(the variant id of every slot, a stacked state whose leaves give the
        shapes and dtypes)], one per bucket of the current run.
        """
        metadata = self.manager.item_metadata(step)["variants"]
        target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), metadata)
        saved = self.manager.restore(
            step, args=ocp.args.Composite(variants=ocp.args.StandardRestore(target)))["variants"]
        where = {int(i): (group, row) for group, entry in saved.items()
                 for row, i in enumerate(entry["ids"])}
        states = []
        for slot_ids, template in templates:
            missing = sorted(set(slot_ids) - set(where))
            if missing:
                raise ValueError(f"checkpoint at step {step} holds no state for variant(s) "
                                 f"{missing[:5]}; it was written by another sweep")
            leaves = _named_leaves(template)
            filled = {}
            for name, like in leaves.items():
                rows = []
                for i in slot_ids:
                    group, row = where[i]
                    source = saved[group]["leaves"].get(name)
                    if source is None:
                        raise ValueError(f"checkpoint at step {step} has no {name!r} for "
                                         f"variant {i}; it was written by another model")
                    rows.append(_fit(source[row], like.shape[1:]))
                filled[name] = np.stack(rows).astype(like.dtype)
            states.append(_with_named_leaves(template, filled))
        return states

    def close(self):
        self.manager.close()


def _name(path) -> str:
    """A key path as a plain name Orbax can store: params.stage0.conv1.kernel."""
    return re.sub(r"[^A-Za-z0-9_]+", ".", jax.tree_util.keystr(path)).strip(".")


def _named_leaves(tree) -> dict:
    return {_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _with_named_leaves(template, named: dict):
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    return jax.tree_util.tree_unflatten(treedef, [named[_name(p)] for p, _ in paths])


def _fit(x: np.ndarray, shape: tuple) -> np.ndarray:
    """x cropped or zero-padded at the end of each axis to `shape` (padding is zeros)."""
    x = np.asarray(x)[tuple(slice(0, s) for s in shape)]
    if x.shape == tuple(shape):
        return x
    return np.pad(x, [(0, s - d) for s, d in zip(shape, x.shape)])
