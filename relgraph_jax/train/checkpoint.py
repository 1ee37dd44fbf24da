"""Restart-safe checkpoints that do not depend on the device layout (Orbax).

What is saved is each real variant's state keyed by variant id: per bucket, the ids and
every state leaf stacked over those variants only (no padding slots), as host arrays.
Restoring places each variant into whatever bucket and slot the current run gives it,
cropping or zero-padding its leaves to that bucket's shapes. So a run stopped on 8
devices resumes on 2 or 1 (and the reverse), and with other `train.width_buckets` or
`train.variant_batch`: padding is zeros, so cropping it or adding more is exact.

Orbax writes each step into a temporary directory and renames it when complete, so a kill
during a save leaves the previous checkpoint as the latest usable one; leftover temporary
directories are cleaned when the manager opens. Files damaged later (truncated, garbage,
missing) make `read` raise `Unreadable` with a short reason, so the caller can fall back to
the older kept checkpoint (`relgraph_jax.train.resume`); `set_aside` moves such a step out
of Orbax's sight without deleting it (so does a resume that goes back past newer steps). A
save that fails (a full disk) raises `SaveError`, one line, instead of Orbax's and
asyncio's tracebacks from every thread.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from relgraph_jax.train.workdir import CHECKPOINTS_DIR


class Unreadable(Exception):
    """A checkpoint step whose files cannot be read back; str() is the short reason."""


class SaveError(OSError):
    """A checkpoint could not be written (a full disk); the previous one is kept."""


class Checkpoints:
    def __init__(self, workdir: str, keep: int = 2):
        self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINTS_DIR))
        with _quiet():
            self.manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                     enable_async_checkpointing=False,
                                                     cleanup_tmp_directories=True),
                item_handlers={"variants": ocp.StandardCheckpointHandler()})

    def steps(self) -> list[int]:
        """The kept steps, newest first."""
        return sorted(self.manager.all_steps(), reverse=True)

    def save(self, step: int, groups) -> None:
        """groups: [(variant ids, host state stacked over those variants and maybe more
        slots after them)]; only the rows of the ids are saved, keyed by id."""
        try:
            with _quiet():
                self.manager.save(step, args=ocp.args.Composite(
                    variants=ocp.args.StandardSave(by_id(groups))), force=True)
                self.manager.wait_until_finished()
        except Exception as e:
            _NOISE.after_failure = True
            for name in os.listdir(self.directory):  # the half-written step frees its space
                if name.startswith(f"{step}.orbax-checkpoint-tmp"):
                    shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
            kept = [s for s in self.steps() if s != step]
            free = shutil.disk_usage(self.directory).free / 2**20
            raise SaveError(
                f"could not write the checkpoint at step {step} in {self.directory} "
                f"({_reason(e)}; {free:,.0f} MiB free); "
                + (f"the checkpoint at step {kept[0]} is kept" if kept else "no checkpoint is kept")
                + ": free space (or fix the cause) and rerun the same command to resume") from e

    def read(self, step: int) -> dict:
        """The checkpoint at `step` as saved (a `by_id` tree of host arrays); Unreadable
        when its files are damaged or missing."""
        try:
            with _quiet():
                metadata = self.manager.item_metadata(step)["variants"]
                target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), metadata)
                return self.manager.restore(step, args=ocp.args.Composite(
                    variants=ocp.args.StandardRestore(target)))["variants"]
        except MemoryError:
            raise
        except Exception as e:  # Orbax and TensorStore raise many types for damaged files
            _NOISE.after_failure = True
            raise Unreadable(_reason(e)) from e

    def set_aside(self, step: int, reason: str) -> str:
        """Moves a step to checkpoints/STEP.REASON ("unreadable", or "superseded": newer
        than the one a resume goes back to, which writes the step again and Orbax refuses
        to write a step that exists), out of Orbax's sight; returns that path. Only an older
        copy set aside there is deleted: a read that failed for a passing reason, or a
        resume that went back further than it should, can be undone by hand."""
        aside = os.path.join(self.directory, f"{step}.{reason}")
        if jax.process_index() == 0:
            shutil.rmtree(aside, ignore_errors=True)  # an older copy of the same step
            os.replace(os.path.join(self.directory, str(step)), aside)
        _sync(f"checkpoint_set_aside_{step}")  # then every process reloads the step list
        self.manager.reload()
        return aside

    def close(self):
        with _quiet():
            self.manager.close()


def by_id(groups) -> dict:
    """What a checkpoint holds: groups [(variant ids, host state stacked over those variants
    and maybe more slots after them)] as {groupK: {ids, leaves: {name: rows of the ids}}}."""
    tree = {}
    for k, (ids, state) in enumerate(groups):
        leaves = _named_leaves(state)
        tree[f"group{k}"] = {"ids": np.asarray(ids, np.int64),
                             "leaves": {name: np.asarray(x)[:len(ids)]
                                        for name, x in leaves.items()}}
    return tree


def place(saved: dict, templates: list, origin: str) -> list:
    """Host states shaped like `templates`, each slot filled with its variant's rows of
    `saved` (a `by_id` tree), cropped or zero-padded to the template's shapes. Used on
    restore and when a live search packs its survivors into new buckets. `origin` names
    where `saved` came from in errors."""
    where = {int(i): (group, row) for group, entry in saved.items()
             for row, i in enumerate(entry["ids"])}
    states = []
    for slot_ids, template in templates:
        missing = sorted(set(slot_ids) - set(where))
        if missing:
            raise ValueError(f"{origin} holds no state for variant(s) {missing[:5]}; it was "
                             "written by another sweep")
        leaves = _named_leaves(template)
        filled = {}
        for name, like in leaves.items():
            rows = []
            for i in slot_ids:
                group, row = where[i]
                source = saved[group]["leaves"].get(name)
                if source is None:
                    raise ValueError(f"{origin} has no {name!r} for variant {i}; it was "
                                     "written by another model")
                rows.append(_fit(source[row], like.shape[1:]))
            filled[name] = np.stack(rows).astype(like.dtype)
        states.append(_with_named_leaves(template, filled))
    return states


def _reason(error: Exception, width: int = 150) -> str:
    """The gist of an Orbax/TensorStore error in one short line: the OS error's text where
    there is one ('File too large [os_error_code=27]'), else its type and message, whose
    middle (long paths) is cut."""
    text = " ".join(str(error).split())
    code = re.search(r"os_error_code='?(\d+)", text)
    if code:
        return os.strerror(int(code.group(1)))
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = f"{type(error).__name__}: {text}"
    return text if len(text) <= width else f"{text[:width // 2]} ... {text[-width // 2:]}"


def _sync(name: str) -> None:
    """All processes wait here (multi-host runs), e.g. until process 0 moved a step."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


class _Noise(logging.Filter):
    """Orbax logs every failed thread of a save or read with a traceback (absl, ERROR),
    and once one has failed, its orphaned asyncio tasks and TensorStore callbacks print
    more ("Task exception was never retrieved", "Event loop is closed") long after. The
    caller reports the failure in one line; this drops the rest: Orbax's records while a
    checkpoint call runs, and those two messages then and once one has failed."""

    def __init__(self):
        super().__init__()
        self.active = 0
        self.after_failure = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.active and f"{os.sep}orbax{os.sep}" in record.pathname:
            return False
        return not ((self.active or self.after_failure) and record.name == "asyncio"
                    and str(record.msg).startswith("Task exception was never retrieved"))

    def unraisable(self, unraisable) -> None:
        if ((self.active or self.after_failure)
                and isinstance(unraisable.exc_value, RuntimeError)
                and str(unraisable.exc_value) == "Event loop is closed"):
            return
        self.previous_unraisable(unraisable)

    def install(self) -> None:
        logging.getLogger("absl").addFilter(self)
        logging.getLogger("asyncio").addFilter(self)
        self.previous_unraisable = sys.unraisablehook
        sys.unraisablehook = self.unraisable


_NOISE = _Noise()


@contextlib.contextmanager
def _quiet():
    if not hasattr(_NOISE, "previous_unraisable"):
        _NOISE.install()
    _NOISE.active += 1
    try:
        yield
    finally:
        _NOISE.active -= 1


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
