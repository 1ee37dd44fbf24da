"""A different graph in every block: graph2nn's `RGRAPH.KEEP_GRAPH = False`.

`per_block:SPEC` (or `graph_per_block=True`, which wraps every seeded graph of a config)
names a model whose blocks each draw their own graph from SPEC's recipe: block i of every
stage uses the recipe with seed 100 * seed + i. graph2nn restarts that count in every stage
(ResStage, CNNStage, EfficientNet's stages), so blocks at the same depth of different
stages share a graph. Its MLP seeds layer i with int(width * 100 * k/n) + i, from the
layer's width, which changes while the width search runs; here the MLP follows the rule
of the other families (its layers are the blocks of its one stage). SPEC is a key=value
kind with a `seed` parameter (ws:, er:, ba:, ...) or a paper graph (a WS-flex row).

The graph itself (its edges, C and L) is SPEC's own graph, drawn with `seed`: graph2nn
records a run under its graph's parameters, so the analysis places the model there,
although no block uses that draw (docs/models.md). Each family asks
`relational.block_graph(graph, i)` for block i's graph; `describe` lists them.
"""
from __future__ import annotations

import dataclasses
import functools

from relgraph_jax.graphs import catalog
from relgraph_jax.graphs.kinds import GRAPH_KINDS, GraphKind, register_graph_kind
from relgraph_jax.graphs.relational_graph import (RelationalGraph, count, paper_key, resolve,
                                                  ws_spec)

PREFIX = "per_block:"
BLOCK_SEED_SCALE = 100  # block i of a stage: seed * BLOCK_SEED_SCALE + i (graph2nn's rule)


@dataclasses.dataclass(frozen=True, repr=False)
class PerBlockGraph(RelationalGraph):
    """SPEC's graph, whose blocks each use the recipe's graph at their own seed.
    `recipe`: SPEC as a key=value spec with a seed (a paper row as its ws: spec)."""
    recipe: str = ""

    def block(self, index: int) -> RelationalGraph:
        """The graph of a stage's block `index` (0-based)."""
        return _block_graph(self.recipe, int(index))


def _seeded_recipe(graph: RelationalGraph) -> str:
    """`graph`'s recipe as a key=value spec with a seed; ValueError for a graph without one."""
    name, _, body = graph.spec.partition(":")
    if name == "paper":
        row = catalog.paper_graph(*paper_key(body))
        return ws_spec(row.n, row.k, row.p, row.seed)
    kind = GRAPH_KINDS[name] if name in GRAPH_KINDS else None
    if kind is None or kind.params is None or "seed" not in [p.name for p in kind.params]:
        seeded = [k for k, entry in GRAPH_KINDS.items()
                  if entry.params and "seed" in [p.name for p in entry.params]]
        raise ValueError(f"{graph.spec!r} has no seed to draw a graph per block from; "
                         f"allowed: paper: and {', '.join(f'{k}:' for k in seeded)} graphs")
    return graph.spec


@functools.lru_cache(maxsize=4096)
def _block_graph(recipe: str, index: int) -> RelationalGraph:
    name, _, body = recipe.partition(":")
    kind = GRAPH_KINDS[name]
    values = kind.parse(body)
    values["seed"] = values["seed"] * BLOCK_SEED_SCALE + index
    return RelationalGraph.from_spec(kind.spec(values))


def per_block(graph: RelationalGraph) -> PerBlockGraph:
    """`graph` with a graph per block drawn from its recipe (ValueError if it has no seed)."""
    if isinstance(graph, PerBlockGraph):
        return graph
    return PerBlockGraph(graph.n, graph.edges, graph.directed, spec=PREFIX + graph.spec,
                         recipe=_seeded_recipe(graph))


def per_block_possible(graph: RelationalGraph) -> bool:
    """Whether `graph` is drawn from a seed, so that it has per-block draws (a complete
    graph, a brain network or an edge list is the same in every block)."""
    try:
        _seeded_recipe(graph)
    except ValueError:
        return False
    return True


def _resize(body: str, n: int) -> str:
    return PREFIX + RelationalGraph.from_spec(body).with_nodes(n).spec


register_graph_kind(GraphKind(
    "per_block", "a graph per block drawn from SPEC's recipe, block i of each stage at seed "
    "100 seed + i (graph2nn's KEEP_GRAPH=False); its own graph, C and L are SPEC's",
    ("per_block:ws:n=64,k=8,p=0.1,seed=4", "per_block:paper:n64_52"),
    grammar="per_block:SPEC (SPEC a seeded graph or a paper set)",
    build=lambda body: tuple(per_block(g) for g in resolve(body)),
    count=count, resize=_resize))
