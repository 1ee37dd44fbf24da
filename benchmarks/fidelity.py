"""Fidelity: the project's default models against every model the authors recorded.

  python benchmarks/fidelity.py [--src=PATH] [--tasks=mlp_cifar10,...] [--json]

For every graph of every recorded family (graph2nn's final_results: the MLP over the
3,942 graphs of n64_3942, the 8-layer CNN, ResNet-34, ResNet-34-sep and ResNet-50 over
n64_52, EfficientNet-B0 over n16_48, each with its complete graph), the project's
default model for that graph is budget-matched and compared with the authors' log:
- width: the first entry of the width list (the authors' logged width);
- GFLOPs: the original FLOP count / 1e9, rounded to 3 decimals as their logger did;
- params: parameters / 1e6, rounded to 3 decimals as their logger did.
The authors' numbers are the same for every seed of a graph (checked). Prints a table
per family, then the mismatches, if any (at most 5 per family).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from relgraph_jax import budget, graph2nn_results, models


def compare(task: str, runs) -> dict:
    """Per-family counts of graphs whose width, GFLOPs and params equal the recorded ones."""
    info = graph2nn_results.TASKS[task]
    recorded = {}
    for run in runs:
        logged = (run.width, run.gflops, run.params_m)
        if recorded.setdefault(run.graph, logged) != logged:
            raise ValueError(f"{task} {run.graph}: seeds disagree on width/GFLOPs/params")
    config = models.default_config(info.model)
    row = {"task": task, "model": info.model, "graphs": len(recorded), "runs": len(runs),
           "equal_width": 0, "equal_gflops": 0, "equal_params": 0, "mismatches": []}
    for spec, (width, gflops, params_m) in sorted(recorded.items()):
        b = budget.match(config, spec, info.input_shape)
        ours = (b.width, b.gflops, round(b.params / 1e6, 3))
        same = [a == b_ for a, b_ in zip(ours, (width, gflops, params_m))]
        for key, equal in zip(("equal_width", "equal_gflops", "equal_params"), same):
            row[key] += equal
        if not all(same):
            row["mismatches"].append({"graph": spec, "ours": ours, "authors": (width, gflops, params_m),
                                      "widths": b.widths})
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=graph2nn_results.DEFAULT_SRC,
                        help="final_results folder or .tar.xz (default: the package's copy)")
    parser.add_argument("--tasks", default=",".join(graph2nn_results.TASKS),
                        help=f"comma-separated, of {', '.join(graph2nn_results.TASKS)}")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON only")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    start = time.perf_counter()
    try:
        runs = graph2nn_results.load_runs(args.src, tasks)
    except ValueError as error:
        print(f"fidelity: {error}", file=sys.stderr)
        return 2
    rows = [compare(task, runs[task]) for task in tasks]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| family | graphs | runs | equal widths | equal GFLOPs | equal params |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} ({r['model']}) | {r['graphs']} | {r['runs']} | "
              + " | ".join(f"{r[k]} ({100 * r[k] / r['graphs']:.1f} %)"
                           for k in ("equal_width", "equal_gflops", "equal_params")) + " |")
    for r in rows:
        for m in r["mismatches"][:5]:
            print(f"{r['task']} {m['graph']}: ours (width, GFLOPs, params M) {m['ours']} "
                  f"widths {list(m['widths'])}, authors {m['authors']}")
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
