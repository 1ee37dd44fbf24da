"""WS-flex: the paper's Watts-Strogatz variant with real-valued average degree.

The random draws follow the authors' generator call for call (Python's
``random.Random(seed)``: one ``random()`` per ring edge, ``choice`` for rewiring,
retries on the same stream until the graph is connected), so (n, k, p, seed) from the
paper's tables regenerates the paper's exact graphs.
"""
from __future__ import annotations

import numbers
import random

import networkx as nx
import numpy as np

MAX_TRIES = 100


def check_ws_flex_params(n, k, p, seed) -> None:
    """Raises ValueError/TypeError naming a bad WS-flex parameter and its allowed range."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer, got {n!r}")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise TypeError(f"k must be a real number, got {k!r}")
    if not 2 <= k <= n:
        raise ValueError(f"k (average degree) must lie in [2, n] = [2, {n}], got {k}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, got {p!r}")
    if not 0 <= p <= 1:
        raise ValueError(f"p (rewiring probability) must lie in [0, 1], got {p}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")


def forward_degrees(n: int, k: float) -> np.ndarray:
    """Ring edges each node starts with: round(k n / 2) edges, spread over nodes by index."""
    e = int(round(k * n / 2))
    counts = np.full(n, e // n, dtype=np.int64)
    counts[: e % n] += 1
    return counts


def _rewired_ring(n: int, counts: np.ndarray, p: float,
                  rng: random.Random) -> list[set[int]]:
    """One try of steps 2-4: the ring, then each forward edge rewired with probability p."""
    neighbours = [set() for _ in range(n)]
    for i in range(n):
        for j in range(1, int(counts[i]) + 1):
            v = (i + j) % n
            neighbours[i].add(v)
            neighbours[v].add(i)
    nodes = list(range(n))
    for i in range(n):
        for j in range(1, int(counts[i]) + 1):
            if rng.random() >= p:
                continue
            v = (i + j) % n
            # Redraw until w is a new neighbour; a node already linked to all others
            # gives up after one redraw (the original's order of draws).
            w = rng.choice(nodes)
            found = True
            while w == i or w in neighbours[i]:
                w = rng.choice(nodes)
                if len(neighbours[i]) >= n - 1:
                    found = False
                    break
            if found:
                neighbours[i].discard(v)
                neighbours[v].discard(i)
                neighbours[i].add(w)
                neighbours[w].add(i)
    return neighbours


def _is_connected(neighbours: list[set[int]]) -> bool:
    seen = {0}
    stack = [0]
    while stack:
        for v in neighbours[stack.pop()]:
            if v not in seen:
                seen.add(v)
                stack.append(v)
    return len(seen) == len(neighbours)


def ws_flex_edges(n: int, k: float, p: float, seed: int) -> tuple[tuple[int, int], ...]:
    """Sorted (u, v), u < v, edges of the connected WS-flex graph; see `ws_flex`."""
    check_ws_flex_params(n, k, p, seed)
    counts = forward_degrees(n, k)
    rng = random.Random(seed)
    for _ in range(MAX_TRIES):
        neighbours = _rewired_ring(n, counts, float(p), rng)
        if _is_connected(neighbours):
            return tuple((u, v) for u in range(n) for v in sorted(neighbours[u]) if u < v)
    raise ValueError(
        f"WS-flex(n={n}, k={k}, p={p}, seed={seed}) gave no connected graph in "
        f"{MAX_TRIES} tries; use a larger k or a smaller p")


def ws_flex(n: int, k: float, p: float, seed: int) -> nx.Graph:
    """The paper's connected WS-flex graph on nodes 0..n-1.

    n nodes, average degree k (real, 2 <= k <= n), rewiring probability p in [0, 1].
    Up to 100 tries on one random stream; ValueError if none is connected.
    """
    edges = ws_flex_edges(n, k, p, seed)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges)
    return graph
