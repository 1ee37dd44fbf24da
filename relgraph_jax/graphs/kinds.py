"""Graph kinds: what may stand before the colon of a graph spec (`ws:`, `paper:`, ...).

Each kind is one `GraphKind`, registered once next to its code (the built-ins in
`relational_graph`; a user's own module with `register_graph_kind`, see
docs/extending.md). Everything else reads the registry: spec parsing and its error
messages, the memory check before a graph is built, `count`, narrowing a graph for a layer
with fewer channels than nodes, and the spec table in docs/graphs.md (`markdown_table`,
checked against the docs by a test).

Two shapes of kind:
- key=value kinds (`params` given): the registry parses and checks the parameters,
  writes the canonical spec (parameters in declared order, shortest number text), checks
  the graph's size against free memory when the kind can tell it (`size`), then calls
  `build(values)`, which returns a networkx graph or a RelationalGraph. Every such kind
  also takes `directed=1` (`DIRECTED`), graph2nn's directed version of its graph;
- free-form kinds (`params` None): `build(body)` gets the text after the colon and returns
  a tuple of RelationalGraphs (a set kind such as `paper:` gives several).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from relgraph_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class Param:
    """A key=value parameter: its name and type (int, float, or bool written 0 or 1)."""
    name: str
    type: type


DIRECTED = Param("directed", bool)
"""The option of every key=value kind: directed=1 orients the kind's undirected graph as
graph2nn's RGRAPH.DIRECTED does (`relational_graph.graph2nn_directed`); the canonical
spec ends with it, and leaves out directed=0."""


def _typed(kind: type, text: str):
    if kind is bool and text not in ("0", "1"):
        raise ValueError(text)
    return text == "1" if kind is bool else kind(text)


@dataclasses.dataclass(frozen=True)
class GraphKind:
    """One kind of graph spec.

    name: the text before the colon. summary: one line for the docs table. examples:
    specs of this kind. params: the parameters of a key=value kind, in canonical order;
    None for a free-form kind, whose `grammar` says how it is written. build: values -> graph (key=value kinds) or body -> tuple of graphs (free-form).
    size: values -> (nodes, expected edges), for the memory check before building (None:
    not checked). count: body -> how many graphs the spec names without building them
    (None: one). resize: (values or body, n) -> the spec of the same recipe at n nodes,
    for a layer with fewer channels than nodes (None: the kind has no such recipe).
    alias_of: for an alias (another name for a kind, e.g. graph2nn's), the kind whose
    name its canonical spec is written with, so that equal graphs get equal specs.
    """
    name: str
    summary: str
    examples: tuple[str, ...]
    build: Callable
    params: tuple[Param, ...] | None = None
    grammar: str = ""
    size: Callable[[dict], tuple[int, float]] | None = None
    count: Callable[[str], int] | None = None
    resize: Callable[[Any, int], str] | None = None
    alias_of: str = ""

    @property
    def form(self) -> str:
        """How the kind is written, for messages."""
        if self.params is None:
            return f"{self.grammar} (e.g. {self.examples[0]})"
        return f"{self.name}:" + ",".join(f"{p.name}=.." for p in self.params)

    def parse(self, body: str) -> dict:
        """The parameters of a key=value body, typed and checked for presence."""
        allowed = ",".join(f"{p.name}=..." for p in self.params) + f"[,{DIRECTED.name}=1]"
        types = {DIRECTED.name: DIRECTED.type, **{p.name: p.type for p in self.params}}
        values = {}
        for item in body.split(","):
            key, sep, text = item.partition("=")
            key, text = key.strip(), text.strip()
            if not sep or key not in types:
                raise ValueError(f"{item.strip()!r} is not a parameter of {self.name}; "
                                 f"allowed: {self.name}:{allowed}")
            if key in values:
                raise ValueError(f"parameter {key} is given twice")
            try:
                value = _typed(types[key], text)
            except ValueError:
                what = "0 or 1" if types[key] is bool else f"a valid {types[key].__name__}"
                raise ValueError(f"{key}={text!r} is not {what}") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key}={text} must be a finite number")
            values[key] = value
        missing = [p.name for p in self.params if p.name not in values]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}; {self.name} needs "
                             f"{self.name}:{allowed}")
        return values

    def spec(self, values: dict) -> str:
        """The canonical spec of a key=value kind (an alias's in its kind's name)."""
        return _directed_as(values, f"{self.alias_of or self.name}:" + ",".join(
            f"{p.name}={number_text(values[p.name])}" for p in self.params))

    def resized(self, body: str, n: int) -> str:
        """`resize` of a spec's body: the same recipe at n nodes, directed if it was."""
        if self.params is None:
            return self.resize(body, n)
        values = self.parse(body)
        return _directed_as(values, self.resize(values, n))


def _directed_as(values: dict, spec: str) -> str:
    """`spec`, ending with directed=1 where `values` ask for it."""
    return spec + f",{DIRECTED.name}=1" if values.get(DIRECTED.name) else spec


def number_text(value) -> str:
    """Shortest text that parses back to the same number: 8.0 -> '8', 0.128 -> '0.128'."""
    text = repr(float(value)) if isinstance(value, float) else str(value)
    return text[:-2] if text.endswith(".0") else text


GRAPH_KINDS: Registry[GraphKind] = Registry("graph kind")


def register_graph_kind(kind: GraphKind) -> GraphKind:
    """Makes `kind` usable in every graph spec (configs, the graphs CLI, resolve); its
    name must be new. Returns it, so a module can keep it under a name of its own."""
    if not isinstance(kind, GraphKind):
        raise TypeError(f"register_graph_kind takes a GraphKind, got {type(kind).__name__}")
    return GRAPH_KINDS.declare(kind, depth=2)


def markdown_table() -> str:
    """The spec table of docs/graphs.md, one row per registered kind."""
    rows = ["| kind | spec (examples) | graph |", "|---|---|---|"]
    for name, kind in GRAPH_KINDS.items():
        rows.append(f"| `{name}` | " + ", ".join(f"`{e}`" for e in kind.examples)
                    + f" | {kind.summary} |")
    return "\n".join(rows)
