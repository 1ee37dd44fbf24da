"""RelationalGraph: an immutable graph that names itself with a text spec.

Spec grammar (``kind:body``; several specs joined by ``;`` for `resolve`):
  ws:n=64,k=8.19,p=0.128,seed=4   WS-flex (the paper's generator)
  paper:n64_3942/3552             graph 3552 of a paper set; paper:n64_52 is the whole set
  brain:cat, brain:cat/sym        brain network as the paper's models used it (entry [u, v]
                                  of the file = message v -> u) / symmetrised;
  brain:cat/published             directed as published (entry [u, v] = message u -> v)
  complete:n=64, ring:n=64,k=4    complete graph; WS-flex ring (p = 0)
  er:n=64,p=0.1,seed=0            Erdos-Renyi G(n, p)
  ba:n=64,m=3,seed=0              Barabasi-Albert
  edges:n=4,0-1,1-2,2-3           any graph by its edges (edges:n=3,directed=1,0-1,1-2)
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
from relgraph_jax.graphs.measures import average_clustering, total_distance, undirected_simple
from relgraph_jax.graphs.wsflex import ws_flex_edges

KINDS = ("ws", "paper", "brain", "complete", "ring", "er", "ba", "edges")

# Parameters of the key=value kinds, in canonical order, with their types.
_PARAMS = {
    "ws": {"n": int, "k": float, "p": float, "seed": int},
    "complete": {"n": int},
    "ring": {"n": int, "k": float},
    "er": {"n": int, "p": float, "seed": int},
    "ba": {"n": int, "m": int, "seed": int},
}


def _number_text(value) -> str:
    """Shortest text that parses back to the same number: 8.0 -> '8', 0.128 -> '0.128'."""
    text = repr(float(value)) if isinstance(value, float) else str(value)
    return text[:-2] if text.endswith(".0") else text


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
        code's rule): a WS-flex graph keeps k/n (to the 6 decimals of the original configs),
        p and seed; a complete graph stays complete. ValueError for any other graph."""
        if n == self.n:
            return self
        kind, _, body = self.spec.partition(":")
        if kind == "complete":
            return RelationalGraph.from_spec(f"complete:n={n}")
        if kind == "paper":
            row = catalog.paper_graph(*_paper_key(body))
            k_over_n, p, seed = row.k / row.n, row.p, row.seed
        elif kind == "ws":
            values = _parse_params("ws", body)
            k_over_n, p, seed = values["k"] / values["n"], values["p"], values["seed"]
        else:
            raise ValueError(f"graph {self.spec!r} has no recipe to rebuild it at {n} nodes "
                             "(only ws:, paper: and complete: graphs do)")
        return RelationalGraph.from_spec(ws_spec(n, round(k_over_n, 6) * n, p, seed))

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


# How each kind is written, for the error of a spec without its parameters.
_FORMS = {**{kind: f"{kind}:" + ",".join(f"{key}=.." for key in schema)
             for kind, schema in _PARAMS.items()},
          "paper": "paper:SET or paper:SET/INDEX (e.g. paper:n64_52/27)",
          "brain": "brain:NAME[/sym|/published] (e.g. brain:cat)",
          "edges": "edges:n=NODES,U-V,... (e.g. edges:n=3,0-1,1-2)"}


def _edges_spec(n: int, edges, directed: bool) -> str:
    parts = [f"n={n}"] + (["directed=1"] if directed else []) + [f"{u}-{v}" for u, v in edges]
    return "edges:" + ",".join(parts)


def _parse_params(kind: str, body: str) -> dict:
    schema = _PARAMS[kind]
    allowed = ",".join(f"{key}=..." for key in schema)
    values = {}
    for item in body.split(","):
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or key not in schema:
            raise ValueError(f"{item.strip()!r} is not a parameter of {kind}; allowed: {kind}:{allowed}")
        if key in values:
            raise ValueError(f"parameter {key} is given twice")
        try:
            value = schema[key](text)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not a valid {schema[key].__name__}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key}={text} must be a finite number")
        values[key] = value
    missing = [key for key in schema if key not in values]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}; {kind} needs {kind}:{allowed}")
    return values


def _param_spec(kind: str, values: dict) -> str:
    return f"{kind}:" + ",".join(f"{key}={_number_text(values[key])}" for key in _PARAMS[kind])


def ws_spec(n: int, k: float, p: float, seed: int) -> str:
    """Canonical spec of a WS-flex graph, e.g. ws:n=64,k=8.19,p=0.128,seed=4."""
    return _param_spec("ws", {"n": int(n), "k": float(k), "p": float(p), "seed": int(seed)})


@functools.lru_cache(maxsize=None)
def _paper_graph(set_name: str, index: int) -> RelationalGraph:
    row = catalog.paper_graph(set_name, index)
    return RelationalGraph(row.n, ws_flex_edges(row.n, row.k, row.p, row.seed),
                           spec=f"paper:{set_name}/{index}", name=f"{set_name}/{index}")


def _paper_key(body: str) -> tuple[str, int | None]:
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
    set_name, index = _paper_key(body)
    if index is None:
        return tuple(_paper_graph(set_name, i) for i in range(len(catalog.paper_set(set_name))))
    return (_paper_graph(set_name, index),)


def _brain(body: str) -> RelationalGraph:
    name, sep, variant = body.partition("/")
    if sep and variant not in ("sym", "published"):
        raise ValueError(f"brain network variant {variant!r}; allowed: brain:{name}, "
                         f"brain:{name}/sym or brain:{name}/published")
    graph = generators.brain_graph(name, variant if sep else "graph2nn")
    spec = f"brain:{body}"
    return RelationalGraph.from_networkx(graph, spec=spec, name=body)


def _edges(body: str) -> RelationalGraph:
    items = [item.strip() for item in body.split(",")]
    if not items[0].startswith("n="):
        raise ValueError("an edges spec starts with n=NODES, e.g. edges:n=3,0-1,1-2")
    n = _parse_params("complete", items[0])["n"]
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


# Host memory per edge while a graph is built and measured: networkx's adjacency dicts,
# the edge tuples and the (C, L) computation (measured about 320-340 bytes on CPython 3.11
# for complete graphs of 1,000-3,000 nodes), plus the n x n adjacency of a RelationalGraph.
_BYTES_PER_EDGE = 400


def _edge_count(kind: str, values: dict) -> float:
    """The (expected) edges of a generated graph, from its parameters alone."""
    n = values["n"]
    if kind in ("ws", "ring"):
        return n * values["k"] / 2
    if kind == "ba":
        return values["m"] * max(n - values["m"], 0)
    return n * (n - 1) / 2 * (values["p"] if kind == "er" else 1)


def _check_fits(kind: str, values: dict) -> None:
    """Refuses a generated graph that would not fit in memory before building any of it."""
    edges = _edge_count(kind, values)
    machine.check_fits(int(edges * _BYTES_PER_EDGE + values["n"] ** 2),
                       machine.available_host_bytes(),
                       f"building this {values['n']:,}-node graph (~{int(edges):,} edges)",
                       "use fewer nodes or a sparser graph")


def count(specs: str | Sequence[str]) -> int:
    """How many graphs `resolve(specs)` gives, without building any: a paper set counts
    its catalog rows (building the 3942 graphs of n64_3942 takes seconds)."""
    items = [specs] if isinstance(specs, str) else list(specs)
    total = 0
    for item in items:
        for piece in str(item).split(";"):
            kind, _, body = piece.strip().partition(":")
            if kind == "paper":
                set_name, index = _paper_key(body)
                total += len(catalog.paper_set(set_name)) if index is None else 1
            elif piece.strip():
                total += 1
    return total


@functools.lru_cache(maxsize=4096)
def _resolve_one(spec: str) -> tuple[RelationalGraph, ...]:
    if not isinstance(spec, str):
        raise TypeError(f"a graph spec must be a string, got {type(spec).__name__}: {spec!r}")
    kind, sep, body = spec.strip().partition(":")
    try:
        if not sep and kind in KINDS:
            raise ValueError(f"'{kind}' needs its parameters after a colon: {_FORMS[kind]}")
        if not sep or kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; allowed kinds: {', '.join(KINDS)} "
                             f"(e.g. ws:n=64,k=8,p=0.1,seed=0)")
        if kind == "paper":
            return _paper(body)
        if kind == "brain":
            return (_brain(body),)
        if kind == "edges":
            return (_edges(body),)
        values = _parse_params(kind, body)
        _check_fits(kind, values)
        canonical = _param_spec(kind, values)
        if kind == "ws":
            edges = ws_flex_edges(values["n"], values["k"], values["p"], values["seed"])
            return (RelationalGraph(values["n"], edges, spec=canonical),)
        build = {"complete": generators.complete_graph, "ring": generators.ring_graph,
                 "er": generators.erdos_renyi_graph, "ba": generators.barabasi_albert_graph}[kind]
        return (RelationalGraph.from_networkx(build(**values), spec=canonical),)
    except (ValueError, TypeError) as error:
        raise ValueError(f"graph spec {spec.strip()!r}: {error}") from None


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
