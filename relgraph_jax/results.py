"""WORKDIR/results.jsonl: its name, record schema, writer and reader, in one place.

The trainer appends to it (`ResultsStore`), the import of the authors' runs writes it whole
(`encode` + `write_atomically`) and the analysis reads it (`index_results`, `read_records`),
so what a line is, and which lines count, is decided here only. No jax: the analysis
imports this module.

One JSON object per line (keys sorted), one line per variant per evaluation, unique by
(variant, epoch). A record's fields:
  variant int, epoch int (the evaluation after that many epochs), graph str (the spec;
  the complete graph is `complete:n=N`), seed int, C float, L float (null for a
  disconnected graph), test_error float (percent), model str, width int (the first
  stage's), widths [int] (per stage), macs int, params int, step int, train_loss float,
  test_loss float, status (one of `STATUSES`), failure str | null, hparams {name: value};
  with a validation split (data.validation_size > 0) also val_loss float and val_error
  float (percent), measured on training examples held out from training.
`REQUIRED` are those a usable "ok" record must have, with their JSON types (`schema_problem`).
Statuses: "ok"; "failed" (the variant diverged: metrics null, `failure` says at which
step); "pruned" (a live search stopped the variant after this evaluation, whose metrics
it holds: its last record, at a rung's epoch, not the end of training; search.jsonl
beside the results holds the decision).

Reading rules (`index_results`; `read_records` is its every-record view): a line counts
when it is a JSON object with integer "variant" and "epoch"; blank lines are skipped, other
(corrupt) lines are skipped, named in the notes and logged as a warning naming file:line;
a last line without a newline is kept when it is a record, else it is torn (a write in
progress or cut by a kill) and skipped. The writer is stricter: `ResultsStore` refuses a
file with a corrupt line before its last (`CorruptLineError`), and `append_durably` leaves
no torn line behind when a write fails (`WriteError`).

Speed: a full MLP study is 3942 graphs x 5 seeds x many epochs, millions of lines. The
index parses no JSON: the (variant, epoch) key of every line comes from two regular
expression scans of the memory-mapped file, and only the lines a caller reads are parsed.
Keys that do not line up one per line fall back to parsing every line, so odd files stay
correct, only slower.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import mmap
import os
import re
from typing import Iterable, Mapping, Sequence

import numpy as np

RESULTS_FILE = "results.jsonl"
STATUSES = ("ok", "failed", "pruned")
# L is null for a disconnected graph (JSON has no infinity): its path length is infinite.
REQUIRED = {"variant": (int,), "epoch": (int,), "graph": (str,), "seed": (int,),
            "C": (int, float), "L": (int, float, type(None)), "test_error": (int, float)}
_VARIANT_KEY = re.compile(rb'"variant":\s*(-?\d+)')
_EPOCH_KEY = re.compile(rb'"epoch":\s*(-?\d+)')
_MAX_NAMED = 10
_LOG = logging.getLogger(__name__)


def schema_problem(record: Mapping) -> str | None:
    """What the first `REQUIRED` field of a record lacks ('has no valid ...'), or None."""
    for key, types in REQUIRED.items():
        if type(record.get(key)) not in types:
            return f"has no valid {key!r} (got {record.get(key)!r})"
    return None


def name_some(items: Sequence, limit: int = _MAX_NAMED) -> str:
    """'a, b, c' or 'a, b, ... and 7 more': long lists stay readable in notes."""
    items = [str(i) for i in items]
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"


# ----------------------------------------------------------------------------- writing
def ranges(numbers: Sequence[int]) -> str:
    """Sorted epochs (or other integers) as text: [0, 1, 2, 5] -> '0-2, 5'."""
    spans, start = [], numbers[0]
    for a, b in zip(numbers, list(numbers[1:]) + [None]):
        if b != a + 1:
            spans.append(f"{start}-{a}" if a != start else f"{a}")
            start = b
    return ", ".join(spans)


def encode(records: Iterable[Mapping]) -> bytes:
    """The lines of `records` in the file's format; ValueError for NaN or infinity, which
    JSON cannot hold (a writer records null)."""
    return "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n"
                   for r in records).encode()


_RETRY = "free space (or fix the cause) and rerun the same command to resume"


class WriteError(OSError):
    """A file could not be written whole (a full disk); the message names it and says
    what is left on disk."""


def write_atomically(path: str, data: bytes) -> None:
    """Writes a whole file (results or config.json) to a temporary one, then renames it:
    readers see all of it or none. A write that fails (a full disk) leaves no temporary
    file and raises WriteError naming the file."""
    try:
        with open(path + ".tmp", "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.remove(path + ".tmp")
        raise WriteError(f"could not write {path} ({e.strerror or e}): {_RETRY}") from e


def append_durably(path: str, data: bytes) -> None:
    """Appends whole lines to a line file (results.jsonl, search.jsonl), then fsyncs.

    os.write may write less than asked (a disk filling up, a file size limit): the rest
    is written until all of it is. When that fails, the file is cut back to its length
    before the call and WriteError says so, so no torn line is left for the next append to
    join onto and no caller counts lines that are not on disk.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        before = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            os.fsync(fd)
        except OSError as e:
            os.ftruncate(fd, before)
            os.fsync(fd)
            lines = data.count(b"\n")
            raise WriteError(f"could not append {lines} line(s) to {path} "
                             f"({e.strerror or e}); it is back to its {before} bytes "
                             f"from before, and the run stopped there: {_RETRY}") from e
    finally:
        os.close(fd)


def repair_torn_tail(path: str) -> int:
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


class ResultsStore:
    """WORKDIR/results.jsonl, written only by the process that owns the run (process 0).

    Reopening a store repairs a torn last line left by a hard kill and remembers the keys
    already written (`keys`), so a resumed run that recomputes an epoch never writes it
    twice.

    A corrupt line before the last (external damage, or a full disk under an older
    writer) is refused with CorruptLineError naming file:line: the records it held are
    unknown, so neither skipping it nor writing after it would be safe.
    """

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, RESULTS_FILE)
        self.repaired_bytes = 0
        self.keys = stored_keys(self.path, refuse_corrupt=True)
        if os.path.exists(self.path):
            self.repaired_bytes = repair_torn_tail(self.path)

    def append(self, records: Iterable[Mapping]) -> int:
        """Appends the records not yet stored, in one write + fsync; returns how many."""
        new = [r for r in records if (r["variant"], r["epoch"]) not in self.keys]
        if not new:
            return 0
        append_durably(self.path, encode(new))
        self.keys.update((r["variant"], r["epoch"]) for r in new)
        return len(new)


class CorruptLineError(ValueError):
    """A line of results.jsonl before its last is not a record."""


def stored_keys(path: str, refuse_corrupt: bool = False) -> set[tuple[int, int]]:
    """(variant, epoch) of every whole (newline-terminated) record line of a results file:
    the records a reopened ResultsStore keeps, which any process may compute read-only.
    Exact (every line parsed): a writer that trusted a misread key would skip a record for
    good. `refuse_corrupt`: raise CorruptLineError for a corrupt line before the last."""
    if not os.path.exists(path):
        return set()
    size = os.path.getsize(path)
    index = _index(path, parse_every_line=True)
    if refuse_corrupt and index.bad_lines:
        raise CorruptLineError(
            f"{path}:{index.bad_lines[0]}: corrupt line, not a record (line "
            f"{name_some(index.bad_lines)} of the file); the records it held are unknown. "
            "Move the corrupt line(s) out of the file and rerun the same command: records "
            "an evaluated epoch lacks are then recomputed where a checkpoint allows, or "
            "the run says what to do")
    whole = index.stop < size  # an unterminated last line is cut on reopening
    return set(zip(index.variant[whole].tolist(), index.epoch[whole].tolist()))


# ----------------------------------------------------------------------------- reading
@dataclasses.dataclass(frozen=True, eq=False)
class ResultsIndex:
    """Where each record line of results.jsonl sits, with its (variant, epoch) key."""
    path: str
    variant: np.ndarray  # int64 per line
    epoch: np.ndarray    # int64 per line
    start: np.ndarray    # byte offset of the line
    stop: np.ndarray     # byte offset of its newline
    notes: tuple[str, ...]
    parsed_every_line: bool  # False: keys came from the regex fast path
    bad_lines: tuple[int, ...] = ()  # 1-based numbers of corrupt lines (parsed_every_line)

    @property
    def epochs(self) -> tuple[int, ...]:
        return tuple(int(e) for e in np.unique(self.epoch))


def results_path(workdir: str) -> str:
    if not isinstance(workdir, (str, os.PathLike)):
        raise TypeError(f"workdir must be a path, got {type(workdir).__name__}: {workdir!r}")
    path = os.path.join(os.fspath(workdir), RESULTS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {RESULTS_FILE} in workdir {os.fspath(workdir)!r}: "
                                f"nothing to analyse (has the sweep written its first epoch?)")
    return path


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Start and newline offsets of every complete line, and where the unterminated tail starts."""
    newlines = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate([[0], newlines + 1])[:len(newlines)].astype(np.int64)
    tail = int(newlines[-1]) + 1 if len(newlines) else 0
    return starts, newlines.astype(np.int64), tail


def _key_of(line: bytes) -> tuple[int, int] | None:
    """The (variant, epoch) of a line that is a record, else None: the rule of what counts."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    variant, epoch = record.get("variant"), record.get("epoch")
    if type(variant) is not int or type(epoch) is not int:
        return None
    return variant, epoch


def _fast_keys(data, starts, stops, end):
    """Both keys by regex, or None when they do not come exactly one per non-blank line."""
    filled = stops > starts
    variants = _VARIANT_KEY.findall(data, 0, end)
    epochs = _EPOCH_KEY.findall(data, 0, end)
    if not (len(variants) == len(epochs) == int(filled.sum())):
        return None
    return (filled, np.array(variants, dtype=np.bytes_).astype(np.int64),
            np.array(epochs, dtype=np.bytes_).astype(np.int64))


def index_results(workdir: str, parse_every_line: bool = False) -> ResultsIndex:
    """Indexes WORKDIR/results.jsonl; `parse_every_line` skips the regex fast path."""
    return _warn_corrupt(_index(results_path(workdir), parse_every_line))


def _warn_corrupt(index: ResultsIndex) -> ResultsIndex:
    """Readers skip corrupt lines loudly, not only in the notes: what such a line held is
    missing from whatever is computed from the file."""
    if index.bad_lines:
        _LOG.warning("%s:%d: corrupt line(s), not records, skipped: line %s", index.path,
                     index.bad_lines[0], name_some(index.bad_lines))
    return index


def _index(path: str, parse_every_line: bool) -> ResultsIndex:
    notes, bad = [], []
    if os.path.getsize(path) == 0:
        empty = np.zeros(0, np.int64)
        return ResultsIndex(path, empty, empty, empty, empty,
                            (f"{RESULTS_FILE} is empty: no epoch has finished yet",), True)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        buf = np.frombuffer(data, dtype=np.uint8)
        starts, stops, tail = _line_bounds(buf)
        del buf  # the mmap cannot close while a numpy view of it exists
        keys = None if parse_every_line else _fast_keys(data, starts, stops, tail)
        if keys is not None:
            filled, variant, epoch = keys
            starts, stops = starts[filled], stops[filled]
        else:
            kept, variant, epoch = [], [], []
            for line_no, (a, b) in enumerate(zip(starts, stops), start=1):
                if a == b:
                    continue
                key = _key_of(data[a:b])
                if key is None:
                    bad.append(line_no)
                    continue
                kept.append(line_no - 1)
                variant.append(key[0])
                epoch.append(key[1])
            if bad:
                notes.append(f"{len(bad)} line(s) are not records with integer 'variant' and "
                             f"'epoch' and were skipped: line {name_some(bad)}")
            starts, stops = starts[kept], stops[kept]
            variant, epoch = np.array(variant, np.int64), np.array(epoch, np.int64)
        size = len(data)
        if tail < size and data[tail:size].strip():
            torn = data[tail:size]
            key = _key_of(torn)
            if key is None:
                notes.append(f"the last line ({size - tail} bytes, no newline) is torn, a write "
                             "still in progress or cut by a kill: skipped")
            else:
                starts = np.append(starts, tail)
                stops = np.append(stops, size)
                variant = np.append(variant, key[0])
                epoch = np.append(epoch, key[1])
    return ResultsIndex(path, variant, epoch, starts, stops, tuple(notes), keys is None,
                        tuple(bad))


def read_rows(index: ResultsIndex, rows: np.ndarray) -> list:
    """The parsed lines at `rows` of the index; None for a line that is not JSON (only the
    fast path indexes such a line, so the caller checks the keys and re-indexes exactly)."""
    with open(index.path, "rb") as f:
        out = []
        for a, b in zip(index.start[rows], index.stop[rows]):
            f.seek(int(a))
            try:
                out.append(json.loads(f.read(int(b - a))))
            except ValueError:
                out.append(None)
    return out


def read_records(path: str) -> list[dict]:
    """Every record of a results file in file order, by the reading rules above; [] when
    there is no file."""
    if not os.path.exists(path):
        return []
    index = _warn_corrupt(_index(path, parse_every_line=True))
    return read_rows(index, np.arange(len(index.variant)))
