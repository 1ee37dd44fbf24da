"""C and L of a graph: average clustering and average shortest path length.

Both are computed on the undirected simple version (direction and self-loops dropped),
with the same arithmetic as networkx's ``average_clustering`` and
``average_shortest_path_length``, so the values are equal to networkx's, not just close.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
from scipy.sparse import csgraph


def undirected_simple(adjacency: np.ndarray) -> np.ndarray:
    """Symmetric bool adjacency without self-loops from any square 0/1 matrix."""
    adjacency = np.asarray(adjacency, dtype=bool)
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"adjacency must be a square matrix, got shape {adjacency.shape}")
    simple = adjacency | adjacency.T
    np.fill_diagonal(simple, False)
    return simple


def average_clustering(adjacency: np.ndarray) -> float:
    """networkx's average clustering of an undirected simple graph given as bool (n, n)."""
    a = adjacency.astype(np.float64)
    degree = a.sum(axis=1)
    closed_walks = ((a @ a) * a).sum(axis=1)  # diag(A^3): twice the triangles at each node
    with np.errstate(divide="ignore", invalid="ignore"):
        per_node = np.where(closed_walks > 0, closed_walks / (degree * (degree - 1)), 0.0)
    return float(np.cumsum(per_node)[-1] / len(per_node))  # left-to-right, as Python's sum


def total_distance(adjacency: np.ndarray) -> float:
    """Sum of shortest-path lengths over ordered node pairs; inf if disconnected."""
    distances = csgraph.shortest_path(adjacency, method="D", directed=False, unweighted=True)
    return float(distances.sum())


def adjacency_measures(adjacency: np.ndarray) -> tuple[float, float]:
    """(C, L) of a graph given by a square 0/1 matrix (symmetrised, diagonal ignored)."""
    simple = undirected_simple(adjacency)
    n = simple.shape[0]
    if n < 2:
        raise ValueError(f"C and L need a graph with at least 2 nodes, got {n}")
    components = csgraph.connected_components(simple, directed=False)[0]
    if components > 1:
        raise ValueError(
            f"L is defined only for connected graphs; this graph ({n} nodes, "
            f"{int(simple.sum()) // 2} edges) has {components} connected components")
    return average_clustering(simple), total_distance(simple) / (n * (n - 1))


def measures(graph: nx.Graph) -> tuple[float, float]:
    """(C, L) of a networkx graph (directed or not), equal to networkx's values.

    ValueError for a graph with fewer than 2 nodes or more than one connected component.
    """
    if not isinstance(graph, nx.Graph):
        raise TypeError(f"graph must be a networkx graph, got {type(graph).__name__}")
    return adjacency_measures(nx.to_numpy_array(graph, dtype=bool, weight=None))
