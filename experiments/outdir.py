"""Output folders that a command writes whole: built aside, then put in place.

A command that (re)writes a folder (`paper_report --out`, `import_graph2nn --out`) builds
it in a hidden sibling folder and renames it into place at the end, so a refusal or a
crash part-way leaves the old folder as it was. It replaces only a folder that it made
itself, which it marks with MARKER; a file, or a non-empty folder without its mark (a
user's notes, a training workdir), is refused before any work starts. What a killed run
left beside it (a half-built folder, named after that run's process) goes at the next run.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Iterator

from relgraph_jax import machine

MARKER = ".made_by.json"


def made_by(folder: str) -> dict | None:
    """The mark a command left in `folder` ({"command": ..., ...}), or None."""
    try:
        with open(os.path.join(folder, MARKER)) as f:
            mark = json.load(f)
    except (OSError, ValueError):
        return None
    return mark if isinstance(mark, dict) else None


def check_replaceable(out: str, command: str, flag: str = "--out") -> bool:
    """True if `out` holds a folder `command` made (it may be replaced), False if there is
    nothing there yet (or an empty folder); ValueError for anything else."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"{flag} {out!r} is a file, not a folder; give a new or empty folder")
    if not os.path.isdir(out) or not os.listdir(out):
        return False
    mark = made_by(out)
    if mark is None or mark.get("command") != command:
        raise ValueError(f"{flag} {out!r} is a non-empty folder that {command} did not make "
                         f"(no {MARKER} of its own in it): its files are left alone; give a "
                         "new or empty folder")
    return True


def _sibling(out: str, tag: str) -> str:
    """A new empty hidden folder beside `out` named after this process, with the
    permissions a plain mkdir gives."""
    parent = os.path.dirname(os.path.abspath(out)) or "."
    folder = tempfile.mkdtemp(prefix=machine.owned_prefix(_prefix(out, tag)), dir=parent)
    machine.chmod_as_created(folder, 0o777)
    return folder


def _prefix(out: str, tag: str) -> str:
    return f".{os.path.basename(os.path.abspath(out))}.{tag}-"


def _remove_stale(out: str) -> None:
    """Removes what a killed earlier run of this host left beside `out` (its process is
    gone); another host's, on a shared disk, is left alone."""
    parent = os.path.dirname(os.path.abspath(out)) or "."
    for tag in ("building", "old"):
        for path in machine.leftovers(parent, _prefix(out, tag)):
            shutil.rmtree(path, ignore_errors=True)


def _swap(out: str, staging: str, replace: bool) -> None:
    """Puts `staging` at `out`; an old `out` is removed only once the new one is there."""
    if not replace:
        if os.path.isdir(out):
            os.rmdir(out)  # empty
        os.replace(staging, out)
        return
    old = _sibling(out, "old")
    try:
        os.replace(out, old)  # onto the empty folder just made
    except OSError:
        os.rmdir(old)
        raise
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def built_aside(out: str, command: str, **mark) -> Iterator[str]:
    """Yields a hidden sibling folder to build `out` in; on success marks it and puts it in
    `out`'s place (an old folder of this command's is replaced), on failure removes it.

    An OSError while building or swapping (a full disk, a read-only parent) is re-raised
    as ValueError naming the folder; the old `out` is then as it was.
    """
    replace = check_replaceable(out, command)
    try:
        if os.path.isdir(os.path.dirname(os.path.abspath(out))):
            _remove_stale(out)
        staging = _sibling(out, "building")
    except OSError as e:
        raise ValueError(f"cannot write next to --out {out!r} ({e.strerror}); give a folder "
                         "you can write to") from e
    try:
        yield staging
        with open(os.path.join(staging, MARKER), "w") as f:
            json.dump({"command": command, **mark}, f, indent=1, sort_keys=True)
            f.write("\n")
        _swap(out, staging, replace)
    except OSError as e:
        raise ValueError(f"could not write {out!r} ({e.strerror or e}); nothing there was "
                         "changed: free space or fix the cause and rerun") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
