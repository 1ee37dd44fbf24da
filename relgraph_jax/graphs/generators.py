"""Graphs a researcher expects besides WS-flex, as networkx graphs on nodes 0..n-1."""
from __future__ import annotations

import numbers

import networkx as nx
import numpy as np

from relgraph_jax.graphs import catalog
from relgraph_jax.graphs.wsflex import ws_flex


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")


def _check_probability(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def complete_graph(n: int) -> nx.Graph:
    """Every pair of the n nodes linked: the dense layer the paper compares against."""
    _check_int("n", n, 1)
    return nx.complete_graph(n)


def ring_graph(n: int, k: float = 2) -> nx.Graph:
    """WS-flex ring before rewiring (p = 0): average degree k, a cycle for k = 2."""
    return ws_flex(n, k, 0.0, 0)


def erdos_renyi_graph(n: int, p: float, seed: int) -> nx.Graph:
    """G(n, p): each pair linked independently with probability p; may be disconnected."""
    _check_int("n", n, 1)
    _check_probability("p", p)
    _check_int("seed", seed, 0)
    return nx.gnp_random_graph(n, p, seed=seed)


def barabasi_albert_graph(n: int, m: int, seed: int) -> nx.Graph:
    """Preferential attachment: each new node links to m existing ones (1 <= m < n)."""
    _check_int("n", n, 2)
    _check_int("m", m, 1, n - 1)
    _check_int("seed", seed, 0)
    return nx.barabasi_albert_graph(n, m, seed=seed)


def gnm_graph(n: int, m: int, seed: int) -> nx.Graph:
    """G(n, m): m distinct pairs drawn at random, graph2nn's "er" (its m is
    n * (n * SPARSITY) // 2); may be disconnected."""
    _check_int("n", n, 1)
    _check_int("m", m, 0, n * (n - 1) // 2)
    _check_int("seed", seed, 0)
    return nx.gnm_random_graph(n, m, seed=seed)


def cycle_graph(n: int) -> nx.Graph:
    """The n-cycle, graph2nn's "cycle" (equal to the WS-flex ring with k = 2)."""
    _check_int("n", n, 3)
    return nx.cycle_graph(n)


def hypercube_graph(n: int) -> nx.Graph:
    """graph2nn's "hypercube": log2(n) dimensions, node i linked to the nodes whose index
    differs from i in one bit. n must be a power of 2: graph2nn rounds log2(n) down and
    leaves the nodes beyond 2^d without a graph."""
    _check_int("n", n, 2)
    if n & (n - 1):
        raise ValueError(f"n must be a power of 2 (2, 4, 8, ...), got {n}")
    return nx.convert_node_labels_to_integers(nx.hypercube_graph(n.bit_length() - 1))


def grid_graph(rows: int, cols: int) -> nx.Graph:
    """graph2nn's "grid": a rows x cols lattice, node (i, j) numbered i * cols + j (its
    rows are n * SPARSITY, its columns n // rows)."""
    _check_int("rows", rows, 1)
    _check_int("cols", cols, 1)
    return nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols))


def random_tree(n: int, seed: int) -> nx.Graph:
    """graph2nn's "tree": the tree of a random Pruefer sequence drawn with
    random.Random(seed), as networkx 2.3's random_tree (now random_labeled_tree) drew it."""
    _check_int("n", n, 1)
    _check_int("seed", seed, 0)
    return nx.random_labeled_tree(n, seed=seed)


def random_mask(n: int, m: int, seed: int) -> nx.DiGraph:
    """graph2nn's "random" mask, seeded: m of the n * n cells of the (output node, input
    node) mask drawn without replacement by numpy's RandomState(seed).choice, the call
    graph2nn makes on numpy's unseeded global state (its m is int(n * n * SPARSITY)).
    Cell c is the message c % n -> c // n; a drawn diagonal cell is a self-loop, which
    every RelationalGraph has anyway."""
    _check_int("n", n, 1)
    _check_int("m", m, 0, n * n)
    _check_int("seed", seed, 0, 2 ** 32 - 1)
    cells = np.random.RandomState(seed).choice(n * n, m, replace=False)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((int(c % n), int(c // n)) for c in cells if c % n != c // n)
    return graph


BRAIN_ORIENTATIONS = ("graph2nn", "published", "sym")


def brain_graph(name: str, orientation: str = "graph2nn") -> nx.Graph:
    """A brain network from `catalog.BRAIN_NETWORKS` as a message graph.

    The files list link u -> v as entry [u, v]. "graph2nn" (what the paper's models
    trained on) reads entry [u, v] as the message v -> u, the original code's mask
    convention; "published" keeps u -> v; "sym" is the undirected union of both.
    """
    if orientation not in BRAIN_ORIENTATIONS:
        raise ValueError(f"brain network orientation {orientation!r}; allowed: {BRAIN_ORIENTATIONS}")
    adjacency = catalog.brain_adjacency(name)
    if orientation == "graph2nn":
        adjacency = adjacency.T
    if orientation == "sym":
        adjacency = adjacency | adjacency.T
        return nx.from_numpy_array(adjacency.astype(int), create_using=nx.Graph, edge_attr=None)
    return nx.from_numpy_array(adjacency.astype(int), create_using=nx.DiGraph, edge_attr=None)
