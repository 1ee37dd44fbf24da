"""Graphs per second: the batched design-space sweep against networkx, in one run.

  python benchmarks/graph_sweep.py                      # 1/10 of the n=64 grid (270,000 graphs)
  python benchmarks/graph_sweep.py --k-stride 1 --out space64.npz   # the full 2.7M graphs

networkx side: `ws_flex` (Python, the paper's generator) + networkx's average_clustering and
average_shortest_path_length, one graph at a time, on a random sample of the same grid.
Sweep side: `design_space.sweep` (batched numpy generator + bitset C and L) on every
`k_stride`-th k of the paper grid with all p and replicates. Prints one JSON object.
"""
import argparse
import json
import os
import platform
import resource
import time

import networkx as nx
import numpy as np

from relgraph_jax.graphs import design_space
from relgraph_jax.graphs.wsflex import ws_flex


def networkx_rate(grid: design_space.Grid, graphs: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(graphs):
        graph = ws_flex(grid.n, float(rng.choice(grid.k)), float(rng.choice(grid.p)),
                        int(rng.integers(grid.replicates)))
        nx.average_clustering(graph)
        nx.average_shortest_path_length(graph)
    return graphs / (time.perf_counter() - start)


def _cpu_seconds() -> float:
    """CPU time of this process and its finished worker processes."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, choices=(16, 64))
    parser.add_argument("--k-stride", type=int, default=10, help="sweep every k-th value of k")
    parser.add_argument("--networkx-graphs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--out", default=None, help="also save the swept design space (.npz)")
    args = parser.parse_args()

    full = design_space.paper_grid(args.n)
    grid = design_space.Grid(full.n, full.k[::args.k_stride], full.p, full.replicates)
    load_before = os.getloadavg()
    nx_rate = networkx_rate(full, args.networkx_graphs)
    start = time.perf_counter()
    cpu_start = _cpu_seconds()
    space = design_space.sweep(grid, workers=args.workers)
    seconds = time.perf_counter() - start
    cpu_seconds = _cpu_seconds() - cpu_start
    if args.out:
        space.save(args.out)
    rate = grid.size / seconds
    print(json.dumps({
        "n": args.n, "sweep_graphs": grid.size, "sweep_seconds": round(seconds, 1),
        "sweep_graphs_per_s": round(rate), "networkx_graphs": args.networkx_graphs,
        "networkx_graphs_per_s": round(nx_rate, 1), "speedup": round(rate / nx_rate, 1),
        "sweep_cpu_seconds": round(cpu_seconds, 1),
        "sweep_graphs_per_cpu_s": round(grid.size / cpu_seconds),
        "full_grid_graphs": full.size, "full_grid_minutes_at_this_rate": round(full.size / rate / 60, 2),
        "full_grid_minutes_on_all_cores_if_idle": round(
            full.size / (grid.size / cpu_seconds) / (args.workers or os.cpu_count()) / 60, 2),
        "workers": args.workers or os.cpu_count(), "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "connected": float(space.ok.mean()), "python": platform.python_version(),
        "numpy": np.__version__, "networkx": nx.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
    }))


if __name__ == "__main__":
    main()
