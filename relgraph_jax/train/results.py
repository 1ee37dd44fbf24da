"""Append-only results store: one JSON record per variant per evaluation.

Records are keyed by (variant, epoch). Reopening a store repairs a torn last line left by
a hard kill and remembers the keys already written, so a resumed run that recomputes an
epoch never writes it twice.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Mapping

RESULTS_FILE = "results.jsonl"


def _repair_torn_tail(path: str) -> int:
    """Truncates a last line that has no newline (a write cut by a kill); returns bytes cut."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        f.seek(0)
        data = f.read()
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


def read_records(path: str) -> list[dict]:
    """All complete records of a results file (a torn last line is ignored)."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                records.append(json.loads(line))
    return records


class ResultsStore:
    """WORKDIR/results.jsonl, written only by the process that owns the run (process 0)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, RESULTS_FILE)
        self.repaired_bytes = 0
        if os.path.exists(self.path):
            self.repaired_bytes = _repair_torn_tail(self.path)
        self._keys = {(r["variant"], r["epoch"]) for r in read_records(self.path)}

    def has(self, variant: int, epoch: int) -> bool:
        return (variant, epoch) in self._keys

    def append(self, records: Iterable[Mapping]) -> int:
        """Appends the records not yet stored, in one write + fsync; returns how many."""
        new = [r for r in records if (r["variant"], r["epoch"]) not in self._keys]
        if not new:
            return 0
        payload = "".join(json.dumps(r, sort_keys=True) + "\n" for r in new).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._keys.update((r["variant"], r["epoch"]) for r in new)
        return len(new)
