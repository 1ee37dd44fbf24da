"""Successive halving over graphs: which graphs keep training after each rung.

The live search in the trainer and the replay on recorded runs
(`experiments.replay_search`) both take their decisions here (rungs, ranking, survivors),
so the two agree by construction. The replay counts its compute here too; the live search
counts the same model-epochs per variant and step (`LiveSearch.model_epochs`, needed for
progress between rungs), in variants rather than graphs, so the fractions agree. No jax,
no I/O.

The rule, exactly:
- Rungs: decisions are made after the evaluations at epochs `first_rung * eta**k`,
  k = 0, 1, 2, ..., for every such epoch strictly below the run's `epochs` (a decision at
  the last epoch would save nothing). `first_rung=3, eta=3, epochs=100`: 3, 9, 27, 81.
- At a rung, each graph still alive is scored by its mean metric over the seeds that
  decide (lower is better). A score that is None or not finite (NaN, inf) marks a failed
  graph, ranked after every graph with a finite score.
- Ranking: by score, ascending; ties (and failed graphs among themselves) keep the order
  in which the keys were given. Deterministic: the same scores in the same order give the
  same decision.
- Kept: the best `min(n, max(keep_at_least, ceil(n / eta)))` of the n graphs ranked,
  plus every graph of `forced` among them (e.g. the complete graph as a baseline), wherever
  it ranks. The others (about the worst 1 - 1/eta) are pruned: they stop training at that
  rung's epoch and cost nothing afterwards. `kept` and `pruned` list keys best first.
- Compute: a graph alive during an epoch costs one model-epoch (per seed, the same for
  every graph, so seeds cancel in the fraction). A full run costs n * epochs; the search
  costs n * r_0 + a_0 * (r_1 - r_0) + ... + a_last * (epochs - r_last), where a_i graphs
  survive rung r_i. `compute_fraction` is the ratio.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class Decision:
    """One rung's outcome: the ranking it was made on (best first; a failed graph's score
    is NaN) and the graph keys kept and pruned, each best first."""
    ranking: tuple[tuple[str, float], ...]
    kept: tuple[str, ...]
    pruned: tuple[str, ...]

    def to_json(self) -> dict:
        """A JSON-ready dict (a search.jsonl line's decision part; the caller adds e.g. the
        epoch). Failed scores are written as null, since JSON has no NaN."""
        return {"ranking": [[key, score if math.isfinite(score) else None]
                            for key, score in self.ranking],
                "kept": list(self.kept), "pruned": list(self.pruned)}


def _is_int_at_least(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


@dataclasses.dataclass(frozen=True)
class HalvingPolicy:
    """Successive halving (rule in the module docstring). `forced`: graph keys that always
    survive a rung, e.g. the complete graph's spec as a baseline."""
    eta: int = 3
    first_rung: int = 3
    keep_at_least: int = 1
    forced: tuple[str, ...] = ()

    def validate(self) -> "HalvingPolicy":
        """Self, or ValueError naming the bad field, its value and what is allowed."""
        if not _is_int_at_least(self.eta, 2):
            raise ValueError(f"eta={self.eta!r}: must be an integer >= 2 (the factor by which "
                             "each rung cuts the graphs)")
        if not _is_int_at_least(self.first_rung, 1):
            raise ValueError(f"first_rung={self.first_rung!r}: must be an integer >= 1 (the "
                             "epoch of the first decision)")
        if not _is_int_at_least(self.keep_at_least, 1):
            raise ValueError(f"keep_at_least={self.keep_at_least!r}: must be an integer >= 1")
        if not (isinstance(self.forced, tuple) and all(isinstance(k, str) for k in self.forced)):
            raise ValueError(f"forced={self.forced!r}: must be a tuple of graph keys (str)")
        return self

    def rungs(self, epochs: int) -> list[int]:
        """The epochs after whose evaluation decisions are made: first_rung * eta**k < epochs."""
        out, rung = [], self.first_rung
        while rung < epochs:
            out.append(rung)
            rung *= self.eta
        return out

    def keep_count(self, n: int) -> int:
        """How many of n ranked graphs survive by rank (forced ones come on top)."""
        return min(n, max(self.keep_at_least, math.ceil(n / self.eta)))

    def decide(self, scores: Mapping[str, float | None]) -> Decision:
        """The rung's decision on scores = graph key -> mean metric (lower is better)."""
        ranking = rank(scores)
        by_rank = {key for key, _ in ranking[:self.keep_count(len(ranking))]}
        forced = set(self.forced)
        kept = tuple(key for key, _ in ranking if key in by_rank or key in forced)
        pruned = tuple(key for key, _ in ranking if key not in by_rank and key not in forced)
        return Decision(ranking, kept, pruned)

    def alive_counts(self, num_graphs: int, epochs: int) -> list[int]:
        """Graphs alive after each rung when no forced graph is pruned by rank (the count a
        search without `forced` always has; with `forced`, an upper bound on the saving)."""
        counts, alive = [], num_graphs
        for _ in self.rungs(epochs):
            alive = self.keep_count(alive)
            counts.append(alive)
        return counts

    def compute_fraction(self, num_graphs: int, epochs: int,
                         survivors: Sequence[int] | None = None) -> float:
        """Model-epochs of the search over those of a full run (num_graphs * epochs).
        `survivors`: the graphs alive after each rung as decided (len(Decision.kept));
        default `alive_counts`."""
        rungs = self.rungs(epochs)
        if survivors is None:
            survivors = self.alive_counts(num_graphs, epochs)
        return model_epochs(num_graphs, rungs, survivors, epochs) / (num_graphs * epochs)


def model_epochs(num_graphs: int, rungs: Sequence[int], survivors: Sequence[int],
                 epochs: int) -> int:
    """Graph-epochs trained when num_graphs start, survivors[i] remain after rungs[i] and
    the rest run to `epochs`: n * r_0 + a_0 * (r_1 - r_0) + ... + a_last * (epochs - r_last)."""
    if len(survivors) != len(rungs):
        raise ValueError(f"{len(survivors)} survivor counts for {len(rungs)} rungs")
    bounds = [0, *rungs, epochs]
    alive = [num_graphs, *survivors]
    return sum(a * (hi - lo) for a, lo, hi in zip(alive, bounds[:-1], bounds[1:]))


def rank(scores: Mapping[str, float | None]) -> tuple[tuple[str, float], ...]:
    """(key, score) best first: ascending score, failed (None or non-finite, given as NaN)
    last, ties in the order the keys were given. Also picks the winner after the last rung."""
    given = [(key, math.nan if s is None or not math.isfinite(s) else float(s))
             for key, s in scores.items()]

    def order(i: int) -> tuple:
        score = given[i][1]
        return (True, 0.0, i) if math.isnan(score) else (False, score, i)

    return tuple(given[i] for i in sorted(range(len(given)), key=order))
