"""A graph kind of one's own: the Moebius ladder `moebius:n=N` (N even, at least 4).

A ring of N nodes plus a rung from each node to the opposite one: 3-regular, clustering
coefficient 0, and a shorter average path than the ring's. No built-in kind makes it.
"""
import networkx as nx

from relgraph_jax.graphs import GraphKind, Param, register_graph_kind


def moebius_ladder(values: dict) -> nx.Graph:
    n = values["n"]
    if n < 4 or n % 2:
        raise ValueError(f"n={n}: a Moebius ladder needs an even n >= 4")
    return nx.circulant_graph(n, [1, n // 2])


MOEBIUS = register_graph_kind(GraphKind(
    "moebius", "Moebius ladder: a ring of n nodes plus a rung to the opposite node",
    ("moebius:n=64",), params=(Param("n", int),), build=moebius_ladder,
    size=lambda v: (v["n"], 1.5 * v["n"]),
    resize=lambda v, n: f"moebius:n={max(4, n - n % 2)}"))
