"""Read WORKDIR/results.jsonl into one record per variant, naming every gap in the data.

A sweep appends records while it runs, so the file may end in a torn line and variants
may stand at different epochs. Loading never fails on such gaps: it keeps what is usable
and says what is missing in `Runs.notes`.

Speed: a full MLP study is 3942 graphs x 5 seeds x many epochs, millions of lines. Only
the lines that get selected are parsed as JSON; the (variant, epoch) key of every line
comes from two regular-expression scans of the memory-mapped file. Keys that do not line
up one per line fall back to parsing every line, so odd files stay correct, only slower.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import mmap
import os
import re
from typing import Iterable, Sequence

import numpy as np

RESULTS_FILE = "results.jsonl"
COMPLETE_PREFIX = "complete:"
_VARIANT_KEY = re.compile(rb'"variant":\s*(-?\d+)')
_EPOCH_KEY = re.compile(rb'"epoch":\s*(-?\d+)')
_REQUIRED = {"variant": {int}, "epoch": {int}, "graph": {str}, "seed": {int},
             "C": {int, float}, "L": {int, float}, "test_error": {int, float}}
_MAX_NAMED = 10


def name_some(items: Sequence, limit: int = _MAX_NAMED) -> str:
    """'a, b, c' or 'a, b, ... and 7 more': long lists stay readable in notes."""
    items = [str(i) for i in items]
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"


@dataclasses.dataclass(frozen=True, eq=False)
class ResultsIndex:
    """Where each complete line of results.jsonl sits, with its (variant, epoch) key."""
    path: str
    variant: np.ndarray  # int64 per line
    epoch: np.ndarray    # int64 per line
    start: np.ndarray    # byte offset of the line
    stop: np.ndarray     # byte offset of its newline
    notes: tuple[str, ...]
    parsed_every_line: bool  # False: keys came from the regex fast path

    @property
    def epochs(self) -> tuple[int, ...]:
        return tuple(int(e) for e in np.unique(self.epoch))


@dataclasses.dataclass(frozen=True, eq=False)
class Runs:
    """One usable record per variant as columns (failed and broken records left out)."""
    workdir: str
    epoch: int | None          # the epoch asked for; None: each variant's last
    variant: np.ndarray
    graph: np.ndarray          # str specs
    seed: np.ndarray
    C: np.ndarray
    L: np.ndarray
    test_error: np.ndarray     # percent
    reached: np.ndarray        # the epoch of each record
    width: np.ndarray          # -1 where a record has none
    params: np.ndarray
    macs: np.ndarray
    model: str | None
    hparams: dict
    epochs: tuple[int, ...]    # every epoch present in the file
    notes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.variant)

    @property
    def is_complete_graph(self) -> np.ndarray:
        return np.char.startswith(self.graph.astype(str), COMPLETE_PREFIX)


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
    """Indexes results.jsonl; `parse_every_line` skips the regex fast path."""
    path = results_path(workdir)
    notes = []
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
            kept, variant, epoch, bad = [], [], [], []
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
    return ResultsIndex(path, variant, epoch, starts, stops, tuple(notes), keys is None)


def _latest_rows(index: ResultsIndex) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows sorted by (variant, epoch), keeping the last written of repeated keys, plus
    a mask of each variant's last epoch and the number of repeats dropped."""
    rows = np.lexsort((np.arange(len(index.variant)), index.epoch, index.variant))
    v, e = index.variant[rows], index.epoch[rows]
    new_key = np.ones(len(rows), bool)
    new_key[:-1] = (v[1:] != v[:-1]) | (e[1:] != e[:-1])
    rows, v = rows[new_key], v[new_key]
    last_epoch = np.ones(len(rows), bool)
    last_epoch[:-1] = v[1:] != v[:-1]
    return rows, last_epoch, int((~new_key).sum())


def _problem(record, variant: int, epoch: int) -> str | None:
    """What makes a record unusable, or None; a failed run is usable (it gets named)."""
    if not isinstance(record, dict):
        return "is not a JSON object"
    if record.get("variant") != variant or record.get("epoch") != epoch:
        return "does not match the index"
    if record.get("status", "ok") != "ok":
        return None
    for key, types in _REQUIRED.items():
        if type(record.get(key)) not in types:
            return f"has no valid {key!r} (got {record.get(key)!r})"
    return None


def _read(index: ResultsIndex, rows: np.ndarray) -> list:
    with open(index.path, "rb") as f:
        out = []
        for a, b in zip(index.start[rows], index.stop[rows]):
            f.seek(int(a))
            try:
                out.append(json.loads(f.read(int(b - a))))
            except ValueError:
                out.append(None)
    return out


def _configurations(records: Iterable[dict]) -> list[tuple[str | None, dict, int]]:
    """Distinct (model, hparams) of the records with their counts, in order of appearance."""
    found, counts = [], []  # few distinct ones, so a list scan is fast
    for r in records:
        key = (r.get("model"), r.get("hparams") or {})
        for i, known in enumerate(found):
            if known == key:
                counts[i] += 1
                break
        else:
            found.append(key)
            counts.append(1)
    return [(m, h, n) for (m, h), n in zip(found, counts)]


def _listed(configurations) -> str:
    return "; ".join(f"model={m} hparams={json.dumps(h, sort_keys=True)} ({n} variants)"
                     for m, h, n in configurations)


def _one_configuration(records: list[dict], hparams: dict | None,
                       notes: list[str]) -> tuple[list[dict], str | None, dict]:
    """The records of one (model, hparams): a mix cannot share one (C, L) plane, so a
    hyper-parameter grid is analysed one `hparams` choice at a time."""
    configurations = _configurations(records)
    if hparams:
        known = set().union(*(h for _, h, _ in configurations)) if configurations else set()
        unknown = sorted(set(hparams) - known)
        if unknown:
            raise ValueError(f"hparams {unknown} do not occur in the records; they have: "
                             f"{sorted(known) or 'none'}")
        chosen = [r for r in records
                  if all((r.get("hparams") or {}).get(k) == v for k, v in hparams.items())]
        if not chosen:
            raise ValueError(f"no usable record has hparams {hparams}; found: "
                             f"{_listed(configurations)}")
        if len(chosen) < len(records):
            notes.append(f"{len(records) - len(chosen)} variants with other hyper-parameters "
                         f"than {json.dumps(hparams, sort_keys=True)} are left out")
        records, configurations = chosen, _configurations(chosen)
    if len(configurations) > 1:
        raise ValueError(f"results mix {len(configurations)} configurations: "
                         f"{_listed(configurations)}. Choose one with hparams (--hparams).")
    model, chosen_hparams, _ = configurations[0] if configurations else (None, {}, 0)
    return records, model, chosen_hparams


def _seed_notes(graph: np.ndarray, seed: np.ndarray) -> list[str]:
    if len(graph) == 0:
        return []
    seeds_of = collections.defaultdict(set)
    for g, s in zip(graph.tolist(), seed.tolist()):
        seeds_of[g].add(s)
    all_seeds = set().union(*seeds_of.values())
    short = sorted((g for g, s in seeds_of.items() if s != all_seeds),
                   key=lambda g: len(seeds_of[g]))
    if not short:
        return []
    named = [f"{g} (has seeds {sorted(seeds_of[g])})" for g in short]
    return [f"{len(short)} of {len(seeds_of)} graphs lack some of seeds {sorted(all_seeds)}: "
            f"{name_some(named)}"]


def _column(records: list[dict], key: str, dtype, missing=-1) -> np.ndarray:
    return np.array([missing if r.get(key) is None else r[key] for r in records], dtype=dtype)


def select(index: ResultsIndex, epoch: int | None = None, hparams: dict | None = None) -> Runs:
    """One record per variant: its last epoch, or `epoch` (variants without it are named);
    with `hparams`, only the variants whose hyper-parameters have those values."""
    if epoch is not None and (not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool)
                              or epoch < 0):
        raise ValueError(f"epoch must be a non-negative int or None (each variant's last), "
                         f"got {epoch!r}")
    if hparams is not None and not isinstance(hparams, dict):
        raise TypeError(f"hparams must be a dict of name -> value or None, got {hparams!r}")
    notes = list(index.notes)
    rows, last_epoch, repeats = _latest_rows(index)
    if repeats:
        notes.append(f"{repeats} record(s) repeat a (variant, epoch) already written; "
                     "the last one written was kept")
    variants = np.unique(index.variant)
    if epoch is None:
        rows = rows[last_epoch]
        final = int(index.epoch.max(initial=0))
        behind = rows[index.epoch[rows] < final]
        if len(behind):
            named = [f"{v} (at epoch {e})"
                     for v, e in zip(index.variant[behind], index.epoch[behind])]
            notes.append(f"{len(behind)} of {len(rows)} variants have not reached epoch {final} "
                         f"yet and are shown at their last epoch: variant {name_some(named)}")
    else:
        rows = rows[index.epoch[rows] == epoch]
        absent = np.setdiff1d(variants, index.variant[rows])
        if len(absent):
            notes.append(f"{len(absent)} of {len(variants)} variants have no record at epoch "
                         f"{epoch}: variant {name_some(absent.tolist())}")
    if len(variants):
        never = np.setdiff1d(np.arange(variants.min(), variants.max() + 1), variants)
        if len(never):
            notes.append(f"variant ids {name_some(never.tolist())} have no record at all")
    kept, broken, failed, diverged = [], [], [], []
    for row, record in zip(rows, _read(index, rows)):
        v, e = int(index.variant[row]), int(index.epoch[row])
        problem = _problem(record, v, e)
        if problem == "does not match the index" and not index.parsed_every_line:
            # Keys did not line up one per line after all: index the slow, exact way.
            return select(index_results(os.path.dirname(index.path), parse_every_line=True),
                          epoch, hparams)
        if problem:
            broken.append(f"{v} at epoch {e} {problem}")
        elif record.get("status", "ok") != "ok":
            failed.append(f"{v} ({record.get('graph')}, seed {record.get('seed')}: "
                          f"{record.get('failure') or record.get('status')})")
        elif not math.isfinite(record["test_error"]):
            diverged.append(f"{v} ({record['graph']}, seed {record['seed']})")
        else:
            kept.append(record)
    if broken:
        notes.append(f"{len(broken)} record(s) are unusable: variant {name_some(broken)}")
    if failed:
        notes.append(f"{len(failed)} variant(s) failed and are left out: {name_some(failed)}")
    if diverged:
        notes.append(f"{len(diverged)} variant(s) have a non-finite test error and are left "
                     f"out: {name_some(diverged)}")
    kept, model, hparams = _one_configuration(kept, hparams, notes)
    graph = np.array([r["graph"] for r in kept], dtype=str)
    seed = _column(kept, "seed", np.int64)
    notes.extend(_seed_notes(graph, seed))
    return Runs(workdir=os.path.dirname(index.path), epoch=epoch,
                variant=_column(kept, "variant", np.int64), graph=graph, seed=seed,
                C=_column(kept, "C", np.float64), L=_column(kept, "L", np.float64),
                test_error=_column(kept, "test_error", np.float64),
                reached=_column(kept, "epoch", np.int64), width=_column(kept, "width", np.int64),
                params=_column(kept, "params", np.int64), macs=_column(kept, "macs", np.int64),
                model=model, hparams=hparams, epochs=index.epochs, notes=tuple(notes))


def load(workdir: str, epoch: int | None = None, hparams: dict | None = None) -> Runs:
    """`select(index_results(workdir), epoch, hparams)`: the usual entry point."""
    return select(index_results(workdir), epoch, hparams)
