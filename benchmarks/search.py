"""Live search against the full run on the quick start: compute, wall time, survivors, pick.

  python benchmarks/search.py [--out /tmp/relgraph_search] [--first_rung 1] [--eta 3]
      [--validation_size 300] [--epochs 6] [--graphs 'paper:n64_52;complete:n=64']

Trains the quick start's sweep (experiments/configs/quickstart.py: 53 graphs, 6 epochs on
the bundled digits) twice, each in a fresh workdir and its own process, as a user would
run it: the full run (search.policy=none) and the live search (search.policy=halving).
Both hold out the same validation split, so both train on the same examples and the
search's survivors end where the full run's same graphs do. Prints one JSON object:
- full / search: wall_s (the whole command, start-up and compiles included) and
  model_epochs (each variant's epochs trained, from its records);
- compute_fraction and wall_fraction: search over full;
- survivors: the graphs that trained to the end, and expected_survivors, what the
  policy's rule gives for this many graphs and epochs (HalvingPolicy.alive_counts);
- picked: the survivor with the best mean val_error at the end (the search's answer),
  picked_final_error its mean test error in the search, picked_rank 1 + the full run's
  graphs with a lower final mean test error, best_final_error the full run's best, and
  regret the difference (points). (A survivor re-packed to other widths may differ from
  the full run's same graph by float rounding, so both figures use the search's own.)
Exit status 1 when the survivor count is not the expected one.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from relgraph_jax import results
from relgraph_jax.search import HalvingPolicy, live

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(workdir: str, args, policy: str) -> list[str]:
    return [sys.executable, "-m", "experiments.main",
            "--config=experiments/configs/quickstart.py", f"--workdir={workdir}",
            f"--config.graphs={args.graphs}", f"--config.train.epochs={args.epochs}",
            f"--config.data.validation_size={args.validation_size}",
            f"--config.search.policy={policy}", f"--config.search.eta={args.eta}",
            f"--config.search.first_rung={args.first_rung}"]


def _run(workdir: str, args, policy: str, log) -> float:
    """Wall seconds of one whole run."""
    start = time.perf_counter()
    code = subprocess.run(_command(workdir, args, policy), cwd=REPO, stdout=log,
                          stderr=subprocess.STDOUT).returncode
    if code != 0:
        sys.exit(f"the {policy} run failed (exit status {code}); see {log.name}")
    return time.perf_counter() - start


def _final_means(records: list[dict], metric: str, epoch: int) -> dict[str, float]:
    """Graph -> mean `metric` over its seeds at `epoch`."""
    values = {}
    for r in records:
        if r["epoch"] == epoch and r["status"] == "ok":
            values.setdefault(r["graph"], []).append(r[metric])
    return {g: sum(v) / len(v) for g, v in values.items()}


def _model_epochs(records: list[dict]) -> int:
    last = {}
    for r in records:
        last[r["variant"]] = max(last.get(r["variant"], 0), r["epoch"])
    return sum(last.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/relgraph_search")
    parser.add_argument("--graphs", default="paper:n64_52;complete:n=64")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--validation_size", type=int, default=300)
    parser.add_argument("--first_rung", type=int, default=1)
    parser.add_argument("--eta", type=int, default=3)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    dirs = {name: os.path.join(args.out, name) for name in ("full", "search")}
    with open(os.path.join(args.out, "log.txt"), "w") as log:
        wall = {name: _run(dirs[name], args, policy, log)
                for name, policy in (("full", "none"), ("search", "halving"))}
    records = {name: results.read_records(os.path.join(d, results.RESULTS_FILE))
               for name, d in dirs.items()}
    model_epochs = {name: _model_epochs(recs) for name, recs in records.items()}

    survivors = sorted(_final_means(records["search"], "test_error", args.epochs))
    num_graphs = len(_final_means(records["full"], "test_error", args.epochs))
    policy = HalvingPolicy(eta=args.eta, first_rung=args.first_rung)
    expected = policy.alive_counts(num_graphs, args.epochs)[-1]
    by_val = _final_means(records["search"], "val_error", args.epochs)
    picked = min(by_val, key=by_val.get)
    picked_error = _final_means(records["search"], "test_error", args.epochs)[picked]
    full_final = _final_means(records["full"], "test_error", args.epochs)
    best = min(full_final.values())
    report = {
        "graphs": num_graphs, "epochs": args.epochs, "validation_size": args.validation_size,
        "eta": args.eta, "first_rung": args.first_rung, "rungs": policy.rungs(args.epochs),
        "full": {"wall_s": round(wall["full"], 1), "model_epochs": model_epochs["full"]},
        "search": {"wall_s": round(wall["search"], 1), "model_epochs": model_epochs["search"],
                   "decisions": len(live.read_decisions(dirs["search"]))},
        "compute_fraction": round(model_epochs["search"] / model_epochs["full"], 4),
        "wall_fraction": round(wall["search"] / wall["full"], 4),
        "survivors": survivors, "expected_survivors": expected,
        "picked": picked, "picked_final_error": round(picked_error, 3),
        "picked_rank": 1 + sum(e < picked_error for e in full_final.values()),
        "best_final_error": round(best, 3), "regret": round(picked_error - best, 3),
    }
    print(json.dumps(report, indent=1))
    sys.exit(0 if len(survivors) == expected else 1)


if __name__ == "__main__":
    main()
