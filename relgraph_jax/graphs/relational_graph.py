"""RelationalGraph: an immutable graph that names itself with a text spec.

A spec is ``kind:body``; several specs joined by ``;`` go to `resolve`. The kinds are the
entries of `kinds.GRAPH_KINDS`: the built-ins are registered at the end of this module,
next to their code, and their table is in docs/graphs.md (`kinds.markdown_table`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Iterable, Sequence

import networkx as nx
import numpy as np

from relgraph_jax import machine
from relgraph_jax.graphs import catalog, generators
from relgraph_jax.graphs.kinds import DIRECTED, GRAPH_KINDS, GraphKind, Param, register_graph_kind
from relgraph_jax.graphs.measures import average_clustering, total_distance, undirected_simple
from relgraph_jax.graphs.wsflex import ws_flex_edges

def _canonical_edges(n: int, edges: Iterable, directed: bool) -> tuple[tuple[int, int], ...]:
    canonical = set()
    for edge in edges:
        u, v = (int(x) for x in edge)
        if not (0 <= u < n and 0 <= v < n):
            raise ValueError(f"edge ({u}, {v}) has a node outside 0..{n - 1}")
        if u != v:  # every node has a self-loop implicitly
            canonical.add((u, v) if directed or u < v else (v, u))
    return tuple(sorted(canonical))


@dataclasses.dataclass(frozen=True, repr=False)
class RelationalGraph:
    """n nodes and their edges; equal (and hashing equal) iff n, direction and edges are.

    ``spec`` and ``name`` are labels: spec parses back to this graph with `from_spec`,
    name is a short label for plots. C and L are measured on the undirected simple
    version; L is ``math.inf`` for a disconnected graph.
    """
    n: int
    edges: tuple[tuple[int, int], ...]
    directed: bool = False
    spec: str = dataclasses.field(default="", compare=False)
    name: str = dataclasses.field(default="", compare=False)

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "directed", bool(self.directed))
        object.__setattr__(self, "edges", _canonical_edges(self.n, self.edges, self.directed))
        if not self.spec:
            object.__setattr__(self, "spec", _edges_spec(self.n, self.edges, self.directed))
        if ";" in self.spec:
            raise ValueError(f"spec {self.spec!r} must not contain ';' (it separates specs)")
        if not self.name:
            object.__setattr__(self, "name", self.spec if len(self.spec) <= 40 else
                               f"graph n={self.n} e={len(self.edges)}")

    def __repr__(self):
        return (f"RelationalGraph({self.spec!r})" if len(self.spec) <= 80 else
                f"RelationalGraph(n={self.n}, edges={len(self.edges)}, directed={self.directed})")

    @functools.cached_property
    def adjacency(self) -> np.ndarray:
        """Read-only bool (n, n) with self-loops; [u, v] = message u -> v."""
        matrix = np.eye(self.n, dtype=bool)
        if self.edges:
            u, v = np.array(self.edges).T
            matrix[u, v] = True
            if not self.directed:
                matrix[v, u] = True
        matrix.flags.writeable = False
        return matrix

    @property
    def density(self) -> float:
        """Fraction of kept weights: (2|E| + n) / n^2 undirected, (|E| + n) / n^2 directed."""
        return float(self.adjacency.mean())

    @functools.cached_property
    def _measures(self) -> tuple[float, float]:
        simple = undirected_simple(self.adjacency)
        if self.n == 1:
            return 0.0, 0.0
        return average_clustering(simple), total_distance(simple) / (self.n * (self.n - 1))

    @property
    def C(self) -> float:
        """Average clustering coefficient (networkx's), undirected simple version."""
        return self._measures[0]

    @property
    def L(self) -> float:
        """Average shortest path length (networkx's); math.inf if disconnected."""
        return self._measures[1]

    @property
    def is_complete(self) -> bool:
        """Every node sends to every other (the dense layer's graph)."""
        return bool(self.adjacency.all())

    @property
    def connected(self) -> bool:
        return not math.isinf(self.L)

    def to_networkx(self) -> nx.Graph:
        """A networkx Graph (DiGraph if directed) on nodes 0..n-1, without self-loops."""
        graph = nx.DiGraph() if self.directed else nx.Graph()
        graph.add_nodes_from(range(self.n))
        graph.add_edges_from(self.edges)
        return graph

    def with_nodes(self, n: int) -> "RelationalGraph":
        """The same recipe at n nodes, for a layer narrower than the graph (the original
        code's rule; each kind's `resize`): a WS-flex graph keeps k/n (to the 6 decimals
        of the original configs), p and seed; a complete graph stays complete. ValueError
        for a graph whose kind has no such recipe."""
        if n == self.n:
            return self
        name, _, body = self.spec.partition(":")
        kind = GRAPH_KINDS[name] if name in GRAPH_KINDS else None
        if kind is None or kind.resize is None:
            able = [f"{k}:" for k, entry in GRAPH_KINDS.items() if entry.resize is not None]
            raise ValueError(f"graph {self.spec!r} has no recipe to rebuild it at {n} nodes "
                             f"(only {', '.join(able[:-1])} and {able[-1]} graphs do)")
        return RelationalGraph.from_spec(kind.resized(body, n))

    @classmethod
    def from_networkx(cls, graph: nx.Graph, spec: str | None = None,
                      name: str | None = None) -> "RelationalGraph":
        """Nodes are renumbered 0..n-1 in the graph's node order; self-loops are dropped.

        Without `spec` the canonical ``edges:`` spec is used; a given spec is trusted to
        name this graph (so that `from_spec(spec)` rebuilds it).
        """
        if not isinstance(graph, nx.Graph):
            raise TypeError(f"graph must be a networkx graph, got {type(graph).__name__}")
        index = {node: i for i, node in enumerate(graph.nodes)}
        edges = [(index[u], index[v]) for u, v in graph.edges()]
        return cls(len(index), edges, graph.is_directed(), spec or "", name or "")

    @classmethod
    def from_spec(cls, spec: str) -> "RelationalGraph":
        """The one graph a spec names; ValueError naming the spec and what is allowed."""
        graphs = _resolve_one(spec)
        if len(graphs) != 1:
            raise ValueError(f"graph spec {spec!r} names a set of {len(graphs)} graphs; "
                             f"use graphs.resolve() for sets, or add /INDEX for one graph")
        return graphs[0]


def _edges_spec(n: int, edges, directed: bool) -> str:
    parts = [f"n={n}"] + (["directed=1"] if directed else []) + [f"{u}-{v}" for u, v in edges]
    return "edges:" + ",".join(parts)


# ------------------------------------------------------------------ the built-in kinds
# Registered in the order their table and the "allowed kinds" of errors list them.

def ws_spec(n: int, k: float, p: float, seed: int) -> str:
    """Canonical spec of a WS-flex graph, e.g. ws:n=64,k=8.19,p=0.128,seed=4."""
    return GRAPH_KINDS["ws"].spec({"n": int(n), "k": float(k), "p": float(p), "seed": int(seed)})


def _ws_at(n: int, k_over_n: float, p: float, seed: int) -> str:
    """The original code's rule for a narrower layer: k/n to the configs' 6 decimals."""
    return ws_spec(n, round(k_over_n, 6) * n, p, seed)


def _ring_size(values: dict) -> tuple[int, float]:
    return values["n"], values["n"] * values["k"] / 2


register_graph_kind(GraphKind(
    "ws", "WS-flex, the paper's generator: n nodes, average degree k (real, 2 <= k <= n), "
    "rewiring probability p in [0, 1]", ("ws:n=64,k=8.19,p=0.128,seed=4",),
    params=(Param("n", int), Param("k", float), Param("p", float), Param("seed", int)),
    build=lambda v: RelationalGraph(v["n"], ws_flex_edges(v["n"], v["k"], v["p"], v["seed"])),
    size=_ring_size,
    resize=lambda v, n: _ws_at(n, v["k"] / v["n"], v["p"], v["seed"])))


@functools.lru_cache(maxsize=None)
def _paper_graph(set_name: str, index: int) -> RelationalGraph:
    row = catalog.paper_graph(set_name, index)
    return RelationalGraph(row.n, ws_flex_edges(row.n, row.k, row.p, row.seed),
                           spec=f"paper:{set_name}/{index}", name=f"{set_name}/{index}")


def paper_key(body: str) -> tuple[str, int | None]:
    """(set name, index or None for the whole set) of a paper spec's body, checked."""
    set_name, sep, index_text = body.partition("/")
    catalog.check_paper_set(set_name)
    if not sep:
        return set_name, None
    if not index_text.isdigit():
        raise ValueError(f"index {index_text!r} must be a non-negative integer "
                         f"(paper:{set_name}/INDEX)")
    return set_name, int(index_text)


def _paper(body: str) -> tuple[RelationalGraph, ...]:
    set_name, index = paper_key(body)
    if index is None:
        return tuple(_paper_graph(set_name, i) for i in range(len(catalog.paper_set(set_name))))
    return (_paper_graph(set_name, index),)


def _paper_at(body: str, n: int) -> str:
    row = catalog.paper_graph(*paper_key(body))
    return _ws_at(n, row.k / row.n, row.p, row.seed)


def _paper_count(body: str) -> int:
    set_name, index = paper_key(body)
    return len(catalog.paper_set(set_name)) if index is None else 1


register_graph_kind(GraphKind(
    "paper", "graph INDEX of one of the paper's graph sets (`graphs.PAPER_SETS`); without "
    "/INDEX the whole set, in index order (with `resolve`)",
    ("paper:n64_3942/3552", "paper:n64_52"), grammar="paper:SET or paper:SET/INDEX",
    build=_paper, count=_paper_count, resize=_paper_at))


def _brain(body: str) -> RelationalGraph:
    name, sep, variant = body.partition("/")
    if sep and variant not in ("sym", "published"):
        raise ValueError(f"brain network variant {variant!r}; allowed: brain:{name}, "
                         f"brain:{name}/sym or brain:{name}/published")
    graph = generators.brain_graph(name, variant if sep else "graph2nn")
    spec = f"brain:{body}"
    return RelationalGraph.from_networkx(graph, spec=spec, name=body)


register_graph_kind(GraphKind(
    "brain", "brain network (`mcwhole`, `mcvisual`, `cat`) as the authors' brain-network "
    "models used it (file entry [u, v] = 1 is the message v -> u, graph2nn's mask "
    "convention) / symmetrised / directed as published (u -> v)",
    ("brain:cat", "brain:cat/sym", "brain:cat/published"),
    grammar="brain:NAME[/sym|/published]", build=lambda body: (_brain(body),)))


def _pairs(values: dict, fraction: float = 1.0) -> tuple[int, float]:
    n = values["n"]
    return n, n * (n - 1) / 2 * fraction


def _complete(values: dict) -> nx.Graph:
    if values.get(DIRECTED.name):
        raise ValueError("directed=1 would keep one direction of each pair (a triangular "
                         "mask), not the dense layer that complete: stands for as every "
                         "baseline; leave directed out")
    return generators.complete_graph(values["n"])


register_graph_kind(GraphKind(
    "complete", "complete graph: every pair of nodes linked (the dense layer)",
    ("complete:n=64",), params=(Param("n", int),),
    build=_complete, size=_pairs,
    resize=lambda v, n: f"complete:n={n}"))
_RING = register_graph_kind(GraphKind(
    "ring", "the WS-flex ring before rewiring (p = 0): average degree k, a cycle for k = 2",
    ("ring:n=64,k=4",), params=(Param("n", int), Param("k", float)),
    build=lambda v: generators.ring_graph(v["n"], v["k"]), size=_ring_size))
register_graph_kind(GraphKind(
    "er", "Erdos-Renyi G(n, p): each pair linked with probability p (may be disconnected)",
    ("er:n=64,p=0.1,seed=0",), params=(Param("n", int), Param("p", float), Param("seed", int)),
    build=lambda v: generators.erdos_renyi_graph(v["n"], v["p"], v["seed"]),
    size=lambda v: _pairs(v, v["p"])))
register_graph_kind(GraphKind(
    "ba", "Barabasi-Albert preferential attachment: each new node links to m earlier ones",
    ("ba:n=64,m=3,seed=0",), params=(Param("n", int), Param("m", int), Param("seed", int)),
    build=lambda v: generators.barabasi_albert_graph(v["n"], v["m"], v["seed"]),
    size=lambda v: (v["n"], v["m"] * max(v["n"] - v["m"], 0))))


# graph2nn's other message types (relation_graph.generate_index), each under its own name.
register_graph_kind(dataclasses.replace(
    _RING, name="regular", alias_of="ring", examples=("regular:n=64,k=4",),
    summary="graph2nn's `regular` (WS with p = 0), an alias of `ring`: its spec is written "
            "ring:n=..,k=..; networkx's watts_strogatz_graph(n, k, 0) for an even k"))
register_graph_kind(GraphKind(
    "gnm", "Erdos-Renyi G(n, m), graph2nn's `er`: m distinct pairs drawn at random (graph2nn's "
    "m = n (n SPARSITY) // 2; may be disconnected)", ("gnm:n=64,m=256,seed=0",),
    params=(Param("n", int), Param("m", int), Param("seed", int)),
    build=lambda v: generators.gnm_graph(v["n"], v["m"], v["seed"]),
    size=lambda v: (v["n"], v["m"])))
register_graph_kind(GraphKind(
    "cycle", "graph2nn's `cycle`: the n-cycle (n >= 3)", ("cycle:n=64",),
    params=(Param("n", int),), build=lambda v: generators.cycle_graph(v["n"]),
    size=lambda v: (v["n"], v["n"])))
register_graph_kind(GraphKind(
    "hypercube", "graph2nn's `hypercube`: n = 2^d nodes, i linked to the d nodes whose index "
    "differs in one bit", ("hypercube:n=64",), params=(Param("n", int),),
    build=lambda v: generators.hypercube_graph(v["n"]),
    size=lambda v: (v["n"], v["n"] * v["n"].bit_length() / 2)))
register_graph_kind(GraphKind(
    "grid", "graph2nn's `grid`: a rows x cols lattice, node (i, j) numbered i cols + j "
    "(graph2nn's rows = n SPARSITY, cols = n // rows)", ("grid:rows=8,cols=8",),
    params=(Param("rows", int), Param("cols", int)),
    build=lambda v: generators.grid_graph(v["rows"], v["cols"]),
    size=lambda v: (v["rows"] * v["cols"], 2 * v["rows"] * v["cols"])))
register_graph_kind(GraphKind(
    "tree", "graph2nn's `tree`: networkx's random tree on n nodes (a random Pruefer sequence)",
    ("tree:n=64,seed=0",), params=(Param("n", int), Param("seed", int)),
    build=lambda v: generators.random_tree(v["n"], v["seed"]), size=lambda v: (v["n"], v["n"])))
register_graph_kind(GraphKind(
    "random", "graph2nn's `random` mask, seeded here: m of the n x n mask cells drawn with numpy "
    "(graph2nn's m = int(n n SPARSITY)); directed, with every self-loop",
    ("random:n=64,m=1024,seed=0",), params=(Param("n", int), Param("m", int), Param("seed", int)),
    build=lambda v: generators.random_mask(v["n"], v["m"], v["seed"]),
    size=lambda v: (v["n"], v["m"])))


def _edges(body: str) -> RelationalGraph:
    items = [item.strip() for item in body.split(",")]
    if not items[0].startswith("n="):
        raise ValueError("an edges spec starts with n=NODES, e.g. edges:n=3,0-1,1-2")
    n = GRAPH_KINDS["complete"].parse(items[0])["n"]
    directed = len(items) > 1 and items[1].startswith("directed=")
    if directed and items[1] not in ("directed=1", "directed=0"):
        raise ValueError(f"{items[1]!r}: allowed directed=1 or directed=0")
    directed_flag = directed and items[1] == "directed=1"
    edges = []
    for item in items[1 + directed:]:
        u, sep, v = item.partition("-")
        if not (sep and u.isdigit() and v.isdigit()):
            raise ValueError(f"edge {item!r} must be U-V with node numbers, e.g. 0-1")
        edges.append((int(u), int(v)))
    return RelationalGraph(n, edges, directed_flag)


register_graph_kind(GraphKind(
    "edges", "any graph by its edges, directed with directed=1 (the spec `from_networkx` "
    "gives)", ("edges:n=4,0-1,1-2,2-3", "edges:n=3,directed=1,0-1,2-1"),
    grammar="edges:n=NODES,U-V,...", build=lambda body: (_edges(body),)))


# Host memory per edge while a graph is built and measured: networkx's adjacency dicts,
# the edge tuples and the (C, L) computation (measured about 320-340 bytes on CPython 3.11
# for complete graphs of 1,000-3,000 nodes), plus the n x n adjacency of a RelationalGraph.
_BYTES_PER_EDGE = 400


def _check_fits(kind: GraphKind, values: dict) -> None:
    """Refuses a generated graph that would not fit in memory before building any of it."""
    if kind.size is None:
        return
    nodes, edges = kind.size(values)
    machine.check_fits(int(edges * _BYTES_PER_EDGE + nodes ** 2), machine.available_host_bytes(),
                       f"building this {nodes:,}-node graph (~{int(edges):,} edges)",
                       "use fewer nodes or a sparser graph")


def count(specs: str | Sequence[str]) -> int:
    """How many graphs `resolve(specs)` gives, without building any: a paper set counts
    its catalog rows (building the 3942 graphs of n64_3942 takes seconds)."""
    items = [specs] if isinstance(specs, str) else list(specs)
    total = 0
    for item in items:
        for piece in str(item).split(";"):
            name, _, body = piece.strip().partition(":")
            kind = GRAPH_KINDS[name] if name in GRAPH_KINDS else None
            if kind is not None and kind.count is not None:
                total += kind.count(body)
            elif piece.strip():
                total += 1
    return total


@functools.lru_cache(maxsize=4096)
def _resolve_one(spec: str) -> tuple[RelationalGraph, ...]:
    if not isinstance(spec, str):
        raise TypeError(f"a graph spec must be a string, got {type(spec).__name__}: {spec!r}")
    name, sep, body = spec.strip().partition(":")
    try:
        if name not in GRAPH_KINDS:
            raise ValueError(f"unknown kind {name!r}; allowed kinds: "
                             f"{', '.join(GRAPH_KINDS.names())} (e.g. ws:n=64,k=8,p=0.1,seed=0)")
        kind = GRAPH_KINDS[name]
        if not sep:
            raise ValueError(f"'{name}' needs its parameters after a colon: {kind.form}")
        if kind.params is None:
            return tuple(kind.build(body))
        values = kind.parse(body)
        _check_fits(kind, values)
        graph = kind.build(values)
        if values.get(DIRECTED.name):
            return (graph2nn_directed(graph, kind.spec(values)),)
        if isinstance(graph, RelationalGraph):
            return (dataclasses.replace(graph, spec=kind.spec(values), name=""),)
        return (RelationalGraph.from_networkx(graph, spec=kind.spec(values)),)
    except (ValueError, TypeError) as error:
        raise ValueError(f"graph spec {spec.strip()!r}: {error}") from None


def graph2nn_directed(graph: nx.Graph | RelationalGraph, spec: str) -> RelationalGraph:
    """The directed version of an undirected graph as graph2nn's RGRAPH.DIRECTED builds it.

    graph2nn numbers the nodes in the graph's node order (as `from_networkx` does), keeps
    each networkx edge (u, v), u < v, once, and sets mask entry [u, v], which its layers
    read as output node u, input node v: the message v -> u. So every edge carries the
    message from its higher node index to its lower one.
    """
    if not isinstance(graph, RelationalGraph):
        graph = RelationalGraph.from_networkx(graph, spec=spec)
    if graph.directed:
        raise ValueError("this kind's graphs are directed already; directed=1 orients "
                         "undirected kinds only")
    return RelationalGraph(graph.n, [(v, u) for u, v in graph.edges], True, spec=spec)


def _not_a_spec(item) -> str:
    """Why `item` is not a graph spec, and what to pass instead."""
    if isinstance(item, (bytes, bytearray)):
        return f"a graph spec must be text, got bytes {bytes(item)[:60]!r}: decode it first"
    if isinstance(item, (nx.Graph, nx.DiGraph)):
        return (f"a networkx graph ({item.number_of_nodes()} nodes) is not a spec: pass "
                "RelationalGraph.from_networkx(graph)")
    return (f"a graph spec must be a string such as 'paper:n64_52;complete:n=64', a "
            f"RelationalGraph, or a list of them; got {type(item).__name__} {item!r:.60}")


def resolve(specs: str | RelationalGraph | Sequence[str | RelationalGraph]) -> list[RelationalGraph]:
    """Graphs named by specs: a ';'-separated string, or a sequence of specs and graphs.

    A set spec such as ``paper:n64_52`` expands to all its graphs in index order.
    """
    if isinstance(specs, (str, bytes, bytearray, RelationalGraph, nx.Graph)) \
            or not isinstance(specs, Iterable):
        items = [specs]  # one spec, or what the check below names
    else:
        items = list(specs)  # a list, tuple, set, generator or array of specs
    graphs = []
    for item in items:
        if isinstance(item, RelationalGraph):
            graphs.append(item)
            continue
        if not isinstance(item, str):
            raise TypeError(_not_a_spec(item))
        for piece in item.split(";"):
            if piece.strip():
                graphs.extend(_resolve_one(piece.strip()))
    if not graphs:
        raise ValueError(f"no graph spec given in {specs!r}; e.g. 'paper:n64_52;complete:n=64'")
    return graphs
