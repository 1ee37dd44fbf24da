"""Replay a search policy on the per-epoch records of a finished full run.

A full run holds every graph's learning curve, so any early-stopping policy can be
simulated on it for free: at each rung read the records at that epoch, let the policy
decide, and at the end compare the graph it picked with the truth, the graphs' final mean
test errors. Next to it stands the plain baseline that spends the same compute: train
every graph for the same number of model-epochs, then pick the best.

The rules (docs/search.md):
- Deciding: the first `decide_seeds` seeds (sorted ids; 0 = all) score each graph at an
  epoch by the mean of `metric` over those of them with a record there. A failed record
  (status "failed", or a non-finite value) among them, or no record of any, makes the
  graph's score failed: it ranks last (`halving.rank`). Graphs are given in the order of
  their first variant id, which breaks ties.
- Judging: every seed; a graph's final error is its mean `test_error` at the last
  epoch over the seeds with a finite one. `picked_rank` = 1 + the graphs whose final error
  is strictly lower; `regret` = picked minus best final error (points).
- Policy: the decisions of `HalvingPolicy` at its rungs below the last epoch; the pick is
  the best survivor by the deciding score at the last epoch. Its compute fraction counts
  model-epochs of the deciding seeds (`halving.model_epochs`).
- Baseline: every graph stops at the evaluated epoch nearest to compute_fraction x
  epochs (a tie goes to the earlier epoch; never epoch 0), and the best by the deciding
  score there is picked. Its own compute fraction is that epoch / epochs.
- Full run: the best by the deciding score at the last epoch (compute 1): what choosing
  on the deciding seeds costs even without stopping early.
- `random_regret`: the mean regret of a graph drawn at random (no search at all).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np

from relgraph_jax import results
from relgraph_jax.search.halving import HalvingPolicy, model_epochs, rank
from relgraph_jax.search.live import METRICS

JUDGE = "test_error"
_NO_VALIDATION = ("the records have no val_error: the run held out no validation split "
                  "(data.validation_size = 0; the authors' imported runs have none)")


@dataclasses.dataclass(frozen=True, eq=False)
class Curves:
    """Every graph's per-seed learning curve of the deciding metric and of the test error."""
    workdir: str
    metric: str
    graphs: tuple[str, ...]   # specs, in the order of their first variant id
    seeds: tuple[int, ...]    # sorted
    epochs: tuple[int, ...]   # every evaluated epoch, sorted; the last is the run's end
    decide: np.ndarray        # (graph, seed, epoch) metric; NaN: failed or no record
    failed: np.ndarray        # (graph, seed, epoch) bool: a record that failed
    judge: np.ndarray         # (graph, seed, epoch) test error; NaN: failed or no record
    notes: tuple[str, ...]

    @property
    def final_epoch(self) -> int:
        return self.epochs[-1]


def _one_setting(records: list[dict]) -> None:
    settings = {json.dumps([r.get("model"), r.get("hparams") or {}], sort_keys=True)
                for r in records}
    if len(settings) > 1:
        raise ValueError(f"the records mix {len(settings)} settings (model, hparams): "
                         f"{results.name_some(sorted(settings), 3)}; replay compares graphs "
                         "at one setting (a sweep without config.grid)")


def check_metric(metric: str) -> str:
    """The metric name, or ValueError naming the allowed ones."""
    if metric not in ("auto", *METRICS):
        raise ValueError(f"--metric={metric!r}: allowed auto, {', '.join(METRICS)}")
    return metric


def _chosen_metric(metric: str, usable: list[dict]) -> str:
    check_metric(metric)
    with_val = sum(isinstance(r.get("val_error"), (int, float)) for r in usable)
    if metric == "auto":
        metric = "val_error" if with_val == len(usable) else "test_error"
    if metric == "val_error" and with_val < len(usable):
        raise ValueError(_NO_VALIDATION if not with_val else
                         f"only {with_val} of {len(usable)} usable records have a val_error; "
                         "use --metric=test_error")
    return metric


def _unfinished(workdir: str, last: int) -> str | None:
    """Why a trainer workdir's config says the run has not ended, or None."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        try:
            config = json.load(f)
        except ValueError as error:
            raise ValueError(f"config.json is not valid JSON ({error})") from error
    planned = (config.get("train") or {}).get("epochs") if isinstance(config, dict) else None
    if isinstance(planned, int) and last < planned:
        return (f"the run has not finished: its records reach epoch {last} of train.epochs="
                f"{planned}; replay needs every graph's curve to the end")
    return None


def load_curves(workdir: str, metric: str = "auto") -> Curves:
    """The curves of a workdir's full run. metric: val_error, test_error or auto (val_error
    when every record has one). ValueError (or FileNotFoundError) in one line otherwise."""
    if not os.path.isdir(workdir):
        raise FileNotFoundError("no such directory")
    if not os.path.isfile(os.path.join(workdir, results.RESULTS_FILE)):
        raise FileNotFoundError(f"no {results.RESULTS_FILE} in this directory")
    latest = {}
    for record in results.read_records(results.results_path(workdir)):
        latest[record["variant"], record["epoch"]] = record  # the last written counts
    notes = []
    records = []
    for record in latest.values():
        if type(record.get("graph")) is not str or type(record.get("seed")) is not int:
            notes.append(f"variant {record['variant']} epoch {record['epoch']}")
        else:
            records.append(record)
    if notes:
        notes = [f"{len(notes)} record(s) without a graph spec or integer seed were skipped: "
                 f"{results.name_some(notes)}"]
    if not records:
        raise ValueError(f"{results.RESULTS_FILE} holds no records to replay")
    pruned = sum(r.get("status") == "pruned" for r in records)
    if pruned:
        raise ValueError(f"this workdir was made by a live search ({pruned} pruned "
                         "record(s)): replay needs a full run, where every graph trains to the end")
    _one_setting(records)
    usable = [r for r in records if r.get("status", "ok") == "ok"]
    metric = _chosen_metric(metric, usable)

    first_variant = {}
    for r in sorted(records, key=lambda r: r["variant"]):
        first_variant.setdefault(r["graph"], r["variant"])
    graphs = tuple(sorted(first_variant, key=first_variant.get))
    seeds = tuple(sorted({r["seed"] for r in records}))
    epochs = tuple(sorted({r["epoch"] for r in records}))
    unfinished = _unfinished(workdir, epochs[-1])
    if unfinished:
        raise ValueError(unfinished)
    at = ({g: i for i, g in enumerate(graphs)}, {s: i for i, s in enumerate(seeds)},
          {e: i for i, e in enumerate(epochs)})
    shape = (len(graphs), len(seeds), len(epochs))
    decide, judge = np.full(shape, np.nan), np.full(shape, np.nan)
    failed = np.zeros(shape, bool)
    for r in records:
        where = (at[0][r["graph"]], at[1][r["seed"]], at[2][r["epoch"]])
        if r.get("status", "ok") != "ok":
            failed[where] = True
            continue
        for table, key in ((decide, metric), (judge, JUDGE)):
            if isinstance(r.get(key), (int, float)):
                table[where] = r[key]
        failed[where] = not math.isfinite(decide[where])
    return Curves(workdir, metric, graphs, seeds, epochs, decide, failed, judge, tuple(notes))


def _scores(curves: Curves, graphs: list[int], seeds: int, epoch: int) -> dict[str, float]:
    """Graph spec -> mean deciding metric over the first `seeds` seeds that have a record
    (NaN: one of them failed, or none has a record)."""
    at = curves.epochs.index(epoch)
    values = curves.decide[graphs, :seeds, at]
    present = ~np.isnan(values)
    means = np.where(present, values, 0.0).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    bad = curves.failed[graphs, :seeds, at].any(axis=1) | ~present.any(axis=1)
    return {curves.graphs[g]: math.nan if b else float(m)
            for g, m, b in zip(graphs, means, bad)}


def _judged(curves: Curves, pick: str, final: np.ndarray) -> dict:
    """picked, picked_final_error, picked_rank, best_final_error, regret for one pick."""
    error = final[curves.graphs.index(pick)]
    best = float(np.nanmin(final))
    if math.isnan(error):
        return {"picked": pick, "picked_final_error": None, "picked_rank": None,
                "best_final_error": best, "regret": None}
    return {"picked": pick, "picked_final_error": float(error),
            "picked_rank": 1 + int((final < error).sum()),
            "best_final_error": best, "regret": float(error) - best}


def baseline_epoch(epochs: tuple[int, ...], fraction: float) -> int:
    """The evaluated epoch nearest to fraction x the last one (ties: the earlier; never 0)."""
    target = fraction * epochs[-1]
    return min((e for e in epochs if e >= 1), key=lambda e: (abs(e - target), e))


def replay(curves: Curves, policy: HalvingPolicy, decide_seeds: int = 0) -> dict:
    """Simulates `policy` on `curves`; the JSON-ready result with the equal-compute baseline."""
    policy.validate()
    if not (isinstance(decide_seeds, int) and 0 <= decide_seeds <= len(curves.seeds)):
        raise ValueError(f"--decide_seeds={decide_seeds!r}: allowed 0 (all) to "
                         f"{len(curves.seeds)}, the seeds in the records "
                         f"({', '.join(map(str, curves.seeds))})")
    unknown = [key for key in policy.forced if key not in curves.graphs]
    if unknown:
        raise ValueError(f"forced graph(s) {', '.join(unknown)} are not in the records; "
                         f"they hold {results.name_some(curves.graphs, 3)}")
    seeds = decide_seeds or len(curves.seeds)
    epochs = curves.final_epoch
    rungs = policy.rungs(epochs)
    if not rungs:
        raise ValueError(f"first_rung={policy.first_rung} decides nothing before the last "
                         f"epoch ({epochs}): that is the full run; choose first_rung < {epochs}")
    absent = [r for r in rungs if r not in curves.epochs]
    if absent:
        raise ValueError(f"rung epoch(s) {', '.join(map(str, absent))} of eta={policy.eta}, "
                         f"first_rung={policy.first_rung} have no records (evaluated epochs: "
                         f"{results.name_some(curves.epochs)}); choose rungs that were evaluated")
    alive, survivors = list(range(len(curves.graphs))), []
    for rung in rungs:
        kept = set(policy.decide(_scores(curves, alive, seeds, rung)).kept)
        alive = [g for g in alive if curves.graphs[g] in kept]
        survivors.append(len(alive))
    pick = rank(_scores(curves, alive, seeds, epochs))[0][0]
    spent = model_epochs(len(curves.graphs), rungs, survivors, epochs)
    fraction = policy.compute_fraction(len(curves.graphs), epochs, survivors)
    base_epoch = baseline_epoch(curves.epochs, fraction)
    every = list(range(len(curves.graphs)))
    base_pick = rank(_scores(curves, every, seeds, base_epoch))[0][0]
    full_pick = rank(_scores(curves, every, seeds, epochs))[0][0]

    judged = curves.judge[:, :, -1]
    some = ~np.isnan(judged).all(axis=1)
    if not some.any():
        raise ValueError(f"no graph has a finite test error at the last epoch ({epochs}): "
                         "nothing to judge the picks by")
    final = np.full(len(curves.graphs), np.nan)
    final[some] = np.nanmean(judged[some], axis=1)
    notes = list(curves.notes)
    if not some.all():
        notes.append(f"{int((~some).sum())} graph(s) have no finite test error at epoch "
                     f"{epochs} and cannot be judged best")
    short = np.flatnonzero(np.isnan(judged).any(axis=1) & some)
    if len(short):
        notes.append(f"final errors of {results.name_some([curves.graphs[g] for g in short], 3)}"
                     " are means over fewer seeds (records missing or failed)")
    return {
        "workdir": curves.workdir, "metric": curves.metric, "judged_by": JUDGE,
        "eta": policy.eta, "first_rung": policy.first_rung,
        "keep_at_least": policy.keep_at_least, "forced": list(policy.forced),
        "decide_seeds": list(curves.seeds[:seeds]), "judge_seeds": list(curves.seeds),
        "graphs": len(curves.graphs), "epochs": epochs, "rungs": rungs, "alive": survivors,
        "model_epochs": spent, "compute_fraction": fraction,
        **_judged(curves, pick, final), "best": curves.graphs[int(np.nanargmin(final))],
        "random_regret": float(np.nanmean(final) - np.nanmin(final)),
        "baseline": {"epoch": base_epoch, "compute_fraction": base_epoch / epochs,
                     **_judged(curves, base_pick, final)},
        "full_run": {"epoch": epochs, "compute_fraction": 1.0,
                     **_judged(curves, full_pick, final)},
        "notes": notes,
    }
