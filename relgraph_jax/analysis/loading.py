"""Read WORKDIR/results.jsonl into one record per variant, naming every gap in the data.

A sweep appends records while it runs, so the file may end in a torn line and variants
may stand at different epochs. Loading never fails on such gaps: it keeps what is usable
and says what is missing in `Runs.notes`. The file, its schema and the rules of which lines
count are `relgraph_jax.results`'s; this module selects among the records.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
from typing import Iterable

import numpy as np

from relgraph_jax import config_fields, graphs
from relgraph_jax.graphs.per_block import PREFIX as PER_BLOCK_PREFIX
from relgraph_jax.results import (ResultsIndex, index_results, name_some, ranges, read_rows,
                                  schema_problem)
from relgraph_jax.train.workdir import CONFIG_FILE

COMPLETE_PREFIX = "complete:"


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
    if record.get("status", "ok") not in ("ok", "pruned"):
        return None
    return schema_problem(record)


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


def _choice_hint(configurations) -> str:
    """How to analyse one configuration of a mix: --hparams selects hyper-parameters
    within one model; records of several models never share a plane (their errors are
    not comparable), and no option selects a model."""
    models = sorted({str(m) for m, _, _ in configurations})
    if len(models) > 1:
        return (f"Records of several models ({', '.join(models)}) cannot be analysed together "
                "and no option selects a model: move each model's records into a workdir of "
                "its own (a workdir made by one config holds one model).")
    hparams = next(h for _, h, _ in configurations if h)  # they differ, so one has some
    example = ",".join(f"{k}={v}" for k, v in sorted(hparams.items()))
    return f"Choose one with hparams (--hparams={example})."


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
                         f"{_listed(configurations)}. {_choice_hint(configurations)}")
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


@dataclasses.dataclass(frozen=True)
class Declared:
    """What WORKDIR/config.json says the sweep holds: variants = graphs x settings x seeds
    (ids 0..variants-1), each evaluated up to `epochs`."""
    graphs: int
    settings: int
    seeds: int
    epochs: int

    @property
    def variants(self) -> int:
        return self.graphs * self.settings * self.seeds


def declared(workdir: str) -> Declared | None:
    """The sweep WORKDIR/config.json declares; None without a trainer's config there (e.g.
    imported runs), so that completeness is judged from the records alone."""
    try:
        with open(os.path.join(workdir, CONFIG_FILE)) as f:
            config = json.load(f)
        grid = config.get("grid") or {}
        settings = math.prod(len(grid.get(name) or ()) or 1 for name in config_fields.GRID_KEYS)
        return Declared(graphs.count(config["graphs"]), settings, int(config["seeds"]),
                        int(config["train"]["epochs"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _completeness_notes(expected: Declared | None, index: ResultsIndex,
                        epoch: int | None) -> list[str]:
    """What is missing against the declared sweep: variants without any record, and (for
    each variant's last epoch) epochs the records have not reached yet."""
    if expected is None:
        return []
    notes = []
    have = np.intersect1d(np.unique(index.variant), np.arange(expected.variants))
    if len(have) < expected.variants:
        none = np.setdiff1d(np.arange(expected.variants), have)
        notes.append(f"incomplete: {len(have)} of the {expected.variants} variants config.json "
                     f"declares ({expected.graphs} graphs x {expected.settings} settings x "
                     f"{expected.seeds} seeds) have records; none yet for variant "
                     f"{name_some(none.tolist())}")
    reached = int(index.epoch.max(initial=0))
    if epoch is None and len(have) and reached < expected.epochs:
        notes.append(f"incomplete: the records reach epoch {reached} of the {expected.epochs} "
                     "config.json declares (train.epochs)")
    return notes


def _distinct_runs(records: list[dict], notes: list[str]) -> list[dict]:
    """One record per (graph, seed, hyper-parameters): a second variant of the same run
    (a graph listed twice in a config) would count as one more seed in the statistics."""
    first, kept, repeats = {}, [], []
    for r in records:
        key = (r["graph"], r["seed"], json.dumps(r.get("hparams") or {}, sort_keys=True))
        if key in first:
            repeats.append(f"{r['variant']} (as variant {first[key]})")
            continue
        first[key] = r["variant"]
        kept.append(r)
    if repeats:
        notes.append(f"{len(repeats)} variant(s) repeat the graph, seed and hyper-parameters of "
                     f"another and are not counted as more seeds: variant {name_some(repeats)}")
    return kept


def _column(records: list[dict], key: str, dtype, missing=-1) -> np.ndarray:
    return np.array([missing if r.get(key) is None else r[key] for r in records], dtype=dtype)


def select(index: ResultsIndex, epoch: int | None = None, hparams: dict | None = None) -> Runs:
    """One record per variant: its last epoch, or `epoch` (variants without it are named);
    with `hparams`, only the variants whose hyper-parameters have those values.

    A variant a live search pruned (status "pruned", its last record, at a rung) stopped
    before the end: it is left out of the last epochs (and named), but its record counts
    at its own epoch, whose evaluation it holds."""
    if epoch is not None and (not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool)
                              or epoch < 0):
        raise ValueError(f"epoch must be a non-negative int or None (each variant's last), "
                         f"got {epoch!r}")
    if hparams is not None and not isinstance(hparams, dict):
        raise TypeError(f"hparams must be a dict of name -> value or None, got {hparams!r}")
    expected = declared(os.path.dirname(index.path))
    notes = list(index.notes) + _completeness_notes(expected, index, epoch)
    rows, last_epoch, repeats = _latest_rows(index)
    if repeats:
        notes.append(f"{repeats} record(s) repeat a (variant, epoch) already written; "
                     "the last one written was kept")
    variants = np.unique(index.variant)
    behind = []  # (variant, epoch) of last records before the final epoch (epoch=None)
    if epoch is None:
        rows = rows[last_epoch]
        final = int(index.epoch.max(initial=0))
        late = rows[index.epoch[rows] < final]
        behind = list(zip(index.variant[late].tolist(), index.epoch[late].tolist()))
    else:
        rows = rows[index.epoch[rows] == epoch]
        if len(index.epoch) and not len(rows):
            raise ValueError(f"{index.path} has no record at epoch {epoch}; its records hold "
                             f"epoch(s) {ranges(np.unique(index.epoch).tolist())}")
        absent = np.setdiff1d(variants, index.variant[rows])
        if len(absent):
            notes.append(f"{len(absent)} of {len(variants)} variants have no record at epoch "
                         f"{epoch}: variant {name_some(absent.tolist())}")
    if len(variants) and expected is None:  # else named against the declared variants
        never = np.setdiff1d(np.arange(variants.min(), variants.max() + 1), variants)
        if len(never):
            notes.append(f"variant ids {name_some(never.tolist())} have no record at all")
    kept, broken, failed, diverged, pruned = [], [], [], [], []
    for row, record in zip(rows, read_rows(index, rows)):
        v, e = int(index.variant[row]), int(index.epoch[row])
        problem = _problem(record, v, e)
        if problem == "does not match the index" and not index.parsed_every_line:
            # Keys did not line up one per line after all: index the slow, exact way.
            return select(index_results(os.path.dirname(index.path), parse_every_line=True),
                          epoch, hparams)
        if problem:
            broken.append(f"{v} at epoch {e} {problem}")
        elif record.get("status") == "pruned" and epoch is None:
            pruned.append((v, e))
        elif record.get("status", "ok") not in ("ok", "pruned"):
            failed.append(f"{v} ({record.get('graph')}, seed {record.get('seed')}: "
                          f"{record.get('failure') or record.get('status')})")
        elif not math.isfinite(record["test_error"]):
            diverged.append(f"{v} ({record['graph']}, seed {record['seed']})")
        else:
            kept.append(record)
    stopped = set(pruned)
    behind = [(v, e) for v, e in behind if (v, e) not in stopped]
    if behind:
        notes.append(f"{len(behind)} of {len(rows)} variants have not reached epoch {final} yet "
                     f"and are shown at their last epoch: variant "
                     f"{name_some([f'{v} (at epoch {e})' for v, e in behind])}")
    if broken:
        notes.append(f"{len(broken)} record(s) are unusable: variant {name_some(broken)}")
    if failed:
        notes.append(f"{len(failed)} variant(s) failed and are left out: {name_some(failed)}")
    if pruned:
        notes.append(f"{len(pruned)} variant(s) were stopped by the live search (status "
                     f"pruned, search.jsonl) and are left out: variant "
                     f"{name_some([f'{v} (at epoch {e})' for v, e in pruned])}")
    if diverged:
        notes.append(f"{len(diverged)} variant(s) have a non-finite test error and are left "
                     f"out: {name_some(diverged)}")
    kept, model, hparams = _one_configuration(_distinct_runs(kept, notes), hparams, notes)
    graph = np.array([r["graph"] for r in kept], dtype=str)
    seed = _column(kept, "seed", np.int64)
    notes.extend(_seed_notes(graph, seed))
    per_block = sorted({g for g in graph.tolist() if g.startswith(PER_BLOCK_PREFIX)})
    if per_block:
        notes.append(f"{len(per_block)} graph(s) draw a graph per block ({PER_BLOCK_PREFIX}, "
                     "graph2nn's KEEP_GRAPH=False): each is placed at the C and L of its "
                     "spec's own graph, as graph2nn records such a run, although its blocks "
                     f"use other draws of the same recipe: {name_some(per_block)}")
    return Runs(workdir=os.path.dirname(index.path), epoch=epoch,
                variant=_column(kept, "variant", np.int64), graph=graph, seed=seed,
                C=_column(kept, "C", np.float64), L=_column(kept, "L", np.float64, missing=math.inf),
                test_error=_column(kept, "test_error", np.float64),
                reached=_column(kept, "epoch", np.int64), width=_column(kept, "width", np.int64),
                params=_column(kept, "params", np.int64), macs=_column(kept, "macs", np.int64),
                model=model, hparams=hparams, epochs=index.epochs, notes=tuple(notes))


def load(workdir: str, epoch: int | None = None, hparams: dict | None = None) -> Runs:
    """`select(index_results(workdir), epoch, hparams)`: the usual entry point."""
    return select(index_results(workdir), epoch, hparams)
