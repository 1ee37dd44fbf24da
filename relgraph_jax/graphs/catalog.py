"""The paper's graph sets and the brain networks, shipped as package data.

Paper sets: csv rows (index, n, k/n, p, seed, C, L) of the WS-flex graphs the paper
trained; C and L are the authors' values. Brain networks: 0/1 adjacency matrices, one
row per line, directed as published (macaque whole cortex, Young 1993; macaque visual
cortex, close to Felleman & Van Essen 1991; cat cortex, Scannell 1999).
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
from importlib import resources

import numpy as np

PAPER_SETS = ("n64_52", "n64_449", "n64_3942", "n16_48", "n16_326", "n16_2698")

# The best graph the paper reports for each model: (set, index into the set).
BEST_GRAPHS = {
    "mlp": ("n64_3942", 3552),
    "cnn8": ("n64_52", 27),
    "resnet34": ("n64_52", 37),
    "resnet34sep": ("n64_52", 36),
    "resnet50": ("n64_52", 22),
    "efficientnet_b0": ("n16_48", 42),
}

BRAIN_NETWORKS = {
    "mcwhole": "macaque whole cortex (71 areas, 746 directed links)",
    "mcvisual": "macaque visual cortex (30 areas, 308 directed links)",
    "cat": "cat cortex (52 areas, 820 directed links)",
}


@dataclasses.dataclass(frozen=True)
class WSFlexGraph:
    """A WS-flex graph by its parameters, with its C and L: a row of a paper set (the
    authors' C and L; `set_name` and `index` place it) or a graph `design_space.sample`
    drew (C and L measured; in no set)."""
    n: int
    k: float
    p: float
    seed: int
    C: float
    L: float
    set_name: str | None = None
    index: int | None = None

    @property
    def spec(self) -> str:
        """`paper:SET/INDEX` for a paper set's row, else its `ws:` spec."""
        if self.set_name is not None:
            return f"paper:{self.set_name}/{self.index}"
        from relgraph_jax.graphs.relational_graph import ws_spec  # it imports this module
        return ws_spec(self.n, self.k, self.p, self.seed)


PaperGraph = WSFlexGraph  # the name relgraph_jax.graphs has exported for paper set rows


def _data_text(relative_path: str) -> str:
    return resources.files(__package__).joinpath("data").joinpath(relative_path).read_text()


def check_paper_set(name: str) -> None:
    if name not in PAPER_SETS:
        raise ValueError(f"unknown paper graph set {name!r}; allowed: {', '.join(PAPER_SETS)}")


@functools.lru_cache(maxsize=None)
def paper_set(name: str) -> tuple[WSFlexGraph, ...]:
    """All graphs of a paper set in index order; k = (k/n) * n as the authors used it."""
    check_paper_set(name)
    rows = csv.DictReader(io.StringIO(_data_text(f"graphs_{name}.csv")))
    graphs = []
    for position, row in enumerate(rows):
        n = int(row["n"])
        graph = WSFlexGraph(set_name=name, index=int(row["index"]), n=n,
                           k=float(row["k_over_n"]) * n, p=float(row["p"]),
                           seed=int(row["seed"]), C=float(row["C"]), L=float(row["L"]))
        if graph.index != position:
            raise ValueError(f"graphs_{name}.csv: row {position} has index {graph.index}")
        graphs.append(graph)
    return tuple(graphs)


def config_key(graph: WSFlexGraph) -> tuple:
    """(k/n, p, seed) rounded as the authors' configs and logs write them (6 decimals): how
    their runs name a graph, and how one graph is found in two paper sets."""
    return round(graph.k / graph.n, 6), round(graph.p, 6), graph.seed


@functools.lru_cache(maxsize=None)
def index_by_config_key(name: str) -> dict:
    """config_key -> index of every graph of paper set `name`."""
    return {config_key(g): g.index for g in paper_set(name)}


def paper_graph(name: str, index: int) -> WSFlexGraph:
    """Row `index` of paper set `name`; ValueError names the allowed index range."""
    graphs = paper_set(name)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index into {name} must be an integer, got {index!r}")
    if not 0 <= index < len(graphs):
        raise ValueError(f"index {index} is outside paper set {name}; allowed: 0..{len(graphs) - 1}")
    return graphs[index]


def best_graph(model: str) -> WSFlexGraph:
    """The paper's best graph for a model name in `BEST_GRAPHS`."""
    if model not in BEST_GRAPHS:
        raise ValueError(f"no best graph for model {model!r}; known: {', '.join(BEST_GRAPHS)}")
    return paper_graph(*BEST_GRAPHS[model])


def check_brain_network(name: str) -> None:
    if name not in BRAIN_NETWORKS:
        raise ValueError(f"unknown brain network {name!r}; allowed: {', '.join(BRAIN_NETWORKS)}")


@functools.lru_cache(maxsize=None)
def _brain_adjacency(name: str) -> np.ndarray:
    check_brain_network(name)
    rows = [line.strip() for line in _data_text(f"brain/{name}.txt").splitlines() if line.strip()]
    matrix = np.array([[char == "1" for char in row] for row in rows], dtype=bool)
    if matrix.shape != (len(rows), len(rows)):
        raise ValueError(f"brain/{name}.txt is not a square 0/1 matrix: shape {matrix.shape}")
    matrix.flags.writeable = False
    return matrix


def brain_adjacency(name: str) -> np.ndarray:
    """Directed 0/1 adjacency of a brain network (entry [u, v]: link u -> v), a fresh copy."""
    return _brain_adjacency(name).copy()
