"""Command line: describe graphs, sweep the design space, sample it, plot the (C, L) plane.

  python -m relgraph_jax.graphs describe 'paper:n64_3942/3552' brain:cat
  python -m relgraph_jax.graphs sweep --n 64 --out space64.npz
  python -m relgraph_jax.graphs sample --space space64.npz --out graphs.csv
  python -m relgraph_jax.graphs plot --space space64.npz --out cl_plane.png
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys

import numpy as np

from relgraph_jax.graphs import cl_grid, design_space
from relgraph_jax.graphs.relational_graph import resolve


def describe(graph) -> dict:
    """JSON-ready facts about a RelationalGraph; L is null when it is disconnected."""
    return {"spec": graph.spec, "name": graph.name, "n": graph.n, "directed": graph.directed,
            "edges": len(graph.edges), "density": graph.density, "C": graph.C,
            "L": None if math.isinf(graph.L) else graph.L, "connected": graph.connected}


def _describe(args) -> None:
    for graph in resolve(args.specs):
        print(json.dumps(describe(graph)))


def _sweep(args) -> None:
    grid = design_space.paper_grid(args.n, args.num_k, args.num_p, args.replicates)
    space = design_space.sweep(grid, seed=args.seed, workers=args.workers)
    space.save(args.out)
    finite = np.isfinite(space.L) & space.ok
    print(json.dumps({"graphs": grid.size, "connected": int(finite.sum()), "out": args.out,
                      "C": [float(space.C[finite].min()), float(space.C[finite].max())],
                      "L": [float(space.L[finite].min()), float(space.L[finite].max())]}))


def _sample(args) -> None:
    space = design_space.DesignSpace.load(args.space)
    # The paper's fine grid for this node count (16 or 64; any other: the 64-node one).
    c_edges, l_edges = cl_grid.FINE_EDGES.get(space.n, cl_grid.FINE_EDGES[64])
    edges = dict(c_edges=c_edges, l_edges=l_edges)
    chosen = design_space.subsample(space.C, space.L, space.k / space.n, **edges)
    if args.block > 1:
        kept, borrowed = design_space.centres(space.C, space.L, chosen, args.block, **edges)
        chosen = np.concatenate([kept, borrowed])
    graphs = design_space.sample(space, chosen, progress=True, **edges)
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "n", "k_over_n", "p", "seed", "C", "L", "spec"])
        for index, graph in enumerate(graphs):
            writer.writerow([index, graph.n, graph.k / graph.n, graph.p, graph.seed,
                             graph.C, graph.L, graph.spec])
    print(json.dumps({"cells": len(chosen), "graphs": len(graphs), "out": args.out}))


def _plot(args) -> None:
    from relgraph_jax.graphs.plot import save_cl_plane  # matplotlib only when plotting

    space = design_space.DesignSpace.load(args.space) if args.space else None
    save_cl_plane(args.out, space)
    print(json.dumps({"out": args.out}))


def _check_out(path: str) -> None:
    """--out names a file in an existing folder: checked before any work starts."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"--out {path!r} is a folder; give a file name")
    if not os.path.isdir(folder):
        raise ValueError(f"--out {path!r}: folder {folder!r} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--out {path!r}: folder {folder!r} is not writable")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


class _Parser(argparse.ArgumentParser):
    """Bad flags in one line (argparse's own error adds the whole usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def main(argv=None) -> None:
    parser = _Parser(prog="python -m relgraph_jax.graphs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("describe", help="n, edges, density, C and L of graph specs as JSON lines")
    sub.add_argument("specs", nargs="+", help="graph specs, e.g. ws:n=64,k=8,p=0.1,seed=0 or paper:n64_52")
    sub.set_defaults(run=_describe)
    sub = commands.add_parser("sweep", help="C and L of the paper's WS-flex grid, to an .npz file")
    sub.add_argument("--n", type=int, default=64, choices=(16, 64))
    sub.add_argument("--num-k", type=_positive, default=None,
                     help="k values (paper: 300 for n=64, 200 for n=16)")
    sub.add_argument("--num-p", type=_positive, default=300)
    sub.add_argument("--replicates", type=_positive, default=30)
    sub.add_argument("--seed", type=int, default=0, help="seed of the sweep's random numbers")
    sub.add_argument("--workers", type=_positive, default=None,
                     help="processes (default: one per core)")
    sub.add_argument("--out", required=True)
    sub.set_defaults(run=_sweep)
    sub = commands.add_parser("sample", help="an evenly spread set of ws_flex graphs from a sweep, as csv")
    sub.add_argument("--space", required=True, help="an .npz file written by sweep")
    sub.add_argument("--block", type=int, default=1, choices=(1, 3, 9),
                     help="1: one graph per cell (paper: 3942, n=16: 2698); 3: 449 (326); 9: 52 (48)")
    sub.add_argument("--out", required=True)
    sub.set_defaults(run=_sample)
    sub = commands.add_parser("plot", help="the (C, L) plane as a PNG")
    sub.add_argument("--space", default=None, help="an .npz file written by sweep (optional)")
    sub.add_argument("--out", required=True)
    sub.set_defaults(run=_plot)
    args = parser.parse_args(argv)
    try:
        if getattr(args, "out", None) is not None:
            _check_out(args.out)
        args.run(args)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    except OSError as error:  # a write that fails part-way (a full disk)
        parser.exit(1, f"{parser.prog}: error: {error}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
