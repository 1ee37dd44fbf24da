"""The trainer's live search: successive halving over a sweep's graphs while it trains.

`config.search.policy="halving"` makes `train_and_evaluate` decide after the evaluation
of every rung epoch (`HalvingPolicy.rungs`) which graphs keep training. This module keeps
the books; the policy (`halving.py`) decides and the trainer packs the survivors into new
buckets (`trainer.build_sweep(..., previous=run)`), so a pruned variant costs nothing
afterwards.

- Candidates: a graph (its spec), or with a hyper-parameter grid a graph at one setting
  (`candidate_key`). All seeds of a candidate live or die together.
- Score at a rung: the candidate's mean `search.metric` over its seeds, from the records
  just computed (lower is better); a failed seed makes the score failed (ranked last).
- A pruned variant's record at the rung epoch is its last: its status is "pruned" instead
  of "ok" (a variant that failed keeps "failed"); it holds that evaluation's metrics.
- `WORKDIR/search.jsonl`: one JSON line per rung, written before the rung's records, with
  the decision (`Decision.to_json`: ranking with scores, kept, pruned) and the compute so
  far. A decision found there is never made again: a resume takes it as written, so a
  kill anywhere (before or after the records, before the checkpoint) and a resume make
  the same decisions and write every line once.
- Compute: a model-epoch is one variant trained for one epoch. A full run spends
  variants x epochs; the search spends what its alive variants train.
"""
from __future__ import annotations

import json
import math
import os
from typing import Mapping, Sequence

from relgraph_jax import results
from relgraph_jax.config_fields import ConfigField, boolean, one_of, register_config_fields
from relgraph_jax.search.halving import HalvingPolicy

SEARCH_FILE = "search.jsonl"
POLICIES = ("none", "halving")
METRICS = ("val_error", "test_error")
COMPLETE_PREFIX = "complete:"


def _off(flat: dict) -> bool:
    """The search's fields change nothing while it is off."""
    return flat.get("search.policy", "none") == "none"


# eta, first_rung and keep_at_least are checked together by HalvingPolicy.validate.
register_config_fields(
    ConfigField("search.policy", "none", "live search: none or halving (docs/search.md)",
                one_of(POLICIES)),
    ConfigField("search.eta", 3, "keep the best 1/eta of the graphs at each rung", inert=_off),
    ConfigField("search.first_rung", 3, "epoch of the first rung; then first_rung * eta**k",
                inert=_off),
    ConfigField("search.keep_at_least", 1, "graphs kept at least", inert=_off),
    ConfigField("search.keep_complete", False, "keep the complete graph as a baseline",
                boolean, inert=_off),
    ConfigField("search.metric", "val_error", "ranking metric: val_error or test_error",
                one_of(METRICS), inert=_off),
)


def policy_of(search_cfg, forced: Sequence[str] = ()) -> HalvingPolicy:
    """The HalvingPolicy of a config's search block (validated), forcing `forced` keys."""
    return HalvingPolicy(eta=search_cfg.eta, first_rung=search_cfg.first_rung,
                         keep_at_least=search_cfg.keep_at_least, forced=tuple(forced)).validate()


def candidate_key(spec: str, hparams: Mapping) -> str:
    """What a search ranks and prunes: the graph spec, followed by the grid setting when the
    sweep has a hyper-parameter grid ('paper:n64_52/3 lr=0.05,weight_decay=0.0005')."""
    if not hparams:
        return spec
    return spec + " " + ",".join(f"{name}={hparams[name]}" for name in sorted(hparams))


def read_decisions(workdir: str) -> list[dict]:
    """The lines of WORKDIR/search.jsonl in file order ([] when there is none); a torn last
    line (a write cut by a kill) is left out. A damaged line is refused (ValueError naming
    file:line): the decision it held is unknown, so resuming past it could decide anew."""
    path = os.path.join(workdir, SEARCH_FILE)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    lines = []
    for number, line in enumerate(data[:data.rfind(b"\n") + 1].splitlines(), 1):
        if not line.strip():
            continue
        try:
            decision = json.loads(line)
        except ValueError:
            decision = None
        if not (isinstance(decision, dict) and isinstance(decision.get("pruned"), list)):
            raise ValueError(f"{path}:{number}: not a search decision (a JSON object with "
                             "'epoch', 'kept' and 'pruned'); the file is damaged: restore it, "
                             "or use a new --workdir")
        lines.append(decision)
    return lines


class LiveSearch:
    """The alive set, the decisions and the compute of one sweep's search.

    variant_list: every variant of the sweep (ids 0..n-1); grid_names: the hyper-parameters
    the sweep varies; writer: whether this process writes search.jsonl (process 0).
    """

    def __init__(self, search_cfg, variant_list: Sequence, grid_names: Sequence[str],
                 epochs: int, steps_per_epoch: int, workdir: str, writer: bool):
        self.metric = search_cfg.metric
        self.variants = list(variant_list)
        self.key_of = {v.id: candidate_key(v.graph.spec, {n: getattr(v, n) for n in grid_names})
                       for v in self.variants}
        forced = [self.key_of[v.id] for v in self.variants
                  if search_cfg.keep_complete and v.graph.spec.startswith(COMPLETE_PREFIX)]
        self.policy = policy_of(search_cfg, tuple(dict.fromkeys(forced)))
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.rungs = self.policy.rungs(epochs)
        self.path = os.path.join(workdir, SEARCH_FILE)
        self.writer = writer
        if writer and os.path.exists(self.path):
            results.repair_torn_tail(self.path)
        self.decisions = {}
        for line in read_decisions(workdir):
            self._check(line)
            self.decisions[line["epoch"]] = line

    def _check(self, line: dict) -> None:
        """A recorded decision must be one of this sweep's rungs, on its candidates."""
        keys = set(line.get("kept", ())) | set(line.get("pruned", ()))
        unknown = sorted(keys - set(self.key_of.values()))
        if line.get("epoch") not in self.rungs or unknown:
            raise ValueError(f"{self.path} holds a decision at epoch {line.get('epoch')!r} on "
                             f"graphs {results.name_some(sorted(keys), 3)}, but this search "
                             f"decides at epochs {self.rungs} on its own graphs; it was "
                             "written by another sweep: use a new --workdir")

    # ------------------------------------------------------------------ the alive set
    def _pruned_at(self) -> dict[int, int]:
        """Variant id -> the rung epoch its candidate was pruned at (recorded decisions)."""
        epoch_of = {}
        for epoch in sorted(self.decisions):
            for key in self.decisions[epoch]["pruned"]:
                epoch_of.setdefault(key, epoch)
        return {i: epoch_of[k] for i, k in self.key_of.items() if k in epoch_of}

    def alive(self, step: int) -> list:
        """The variants still training after `step`: pruned at no rung reached by then."""
        pruned = self._pruned_at()
        return [v for v in self.variants
                if v.id not in pruned or pruned[v.id] * self.steps_per_epoch > step]

    def is_rung(self, epoch: int) -> bool:
        return epoch in self.rungs

    def model_epochs(self, step: int) -> float:
        """Model-epochs trained up to `step`: every variant until it was pruned or `step`."""
        pruned = self._pruned_at()
        return sum(min(step, pruned.get(v.id, self.epochs) * self.steps_per_epoch)
                   for v in self.variants) / self.steps_per_epoch

    def progress(self, step: int) -> str:
        """'18 of 53 variants | 71.0/318 model-epochs (22.3 %)': alive now, compute so far
        against a full run's."""
        full = len(self.variants) * self.epochs
        spent = self.model_epochs(step)
        return (f"{len(self.alive(step))} of {len(self.variants)} variants | "
                f"{spent:.1f}/{full} model-epochs ({100.0 * spent / full:.1f} %)")

    # ------------------------------------------------------------------ deciding
    def decide(self, epoch: int, records: list[dict]) -> set[int]:
        """At a rung: the ids of the variants pruned there (empty elsewhere). Marks their
        records (those of this evaluation, of the alive variants) "pruned" and, the first
        time, writes the decision to search.jsonl before the caller writes the records."""
        if not self.is_rung(epoch):
            return set()
        line = self.decisions.get(epoch)
        if line is None:
            line = self._decision_line(epoch, records)
            if self.writer:
                results.append_durably(self.path, results.encode([line]))
            self.decisions[epoch] = line
        pruned = set(line["pruned"])
        for r in records:
            if self.key_of[r["variant"]] in pruned and r["status"] == "ok":
                r["status"] = "pruned"
        return {i for i, k in self.key_of.items() if k in pruned}

    def _decision_line(self, epoch: int, records: list[dict]) -> dict:
        """The rung's search.jsonl line: the policy's decision on each candidate's mean
        metric over its seeds (candidates in variant id order, which breaks ties)."""
        values = {}
        for r in sorted(records, key=lambda r: r["variant"]):
            values.setdefault(self.key_of[r["variant"]], []).append(r.get(self.metric))
        scores = {k: None if any(x is None for x in v) else math.fsum(v) / len(v)
                  for k, v in values.items()}
        decision = self.policy.decide(scores)
        step = epoch * self.steps_per_epoch
        line = {"epoch": epoch, "metric": self.metric, **decision.to_json(),
                "model_epochs": self.model_epochs(step),
                "full_model_epochs": len(self.variants) * self.epochs}
        pruned = set(decision.pruned)
        line["variants_alive"] = sum(self.key_of[v.id] not in pruned for v in self.alive(step))
        return line
