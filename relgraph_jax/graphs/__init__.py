"""Relational graphs: WS-flex, C and L, the paper's graph sets, the design space.

    from relgraph_jax import graphs
    g = graphs.RelationalGraph.from_spec("paper:n64_3942/3552")
    g.C, g.L, g.density, g.adjacency
    graphs.resolve("paper:n64_52;complete:n=64;brain:cat")

Graph kinds (what comes before a spec's colon) are the entries of `GRAPH_KINDS`; a new
kind is one `register_graph_kind(GraphKind(...))` (docs/extending.md). The design space
lives in `graphs.design_space`, the paper's (C, L) grids (shared with
the analysis) in `graphs.cl_grid`, the (C, L) plot in `graphs.plot`
(imported on demand: it needs matplotlib), the command line in ``python -m relgraph_jax.graphs``.
"""
from relgraph_jax.graphs.catalog import (BEST_GRAPHS, BRAIN_NETWORKS, PAPER_SETS, PaperGraph,
                                         WSFlexGraph, best_graph, brain_adjacency, paper_graph,
                                         paper_set)
from relgraph_jax.graphs.generators import (barabasi_albert_graph, brain_graph, complete_graph,
                                            cycle_graph, erdos_renyi_graph, gnm_graph, grid_graph,
                                            hypercube_graph, random_mask, random_tree, ring_graph)
from relgraph_jax.graphs.measures import adjacency_measures, measures
from relgraph_jax.graphs.kinds import GRAPH_KINDS, GraphKind, Param, register_graph_kind
from relgraph_jax.graphs.relational_graph import RelationalGraph, count, resolve, ws_spec
from relgraph_jax.graphs.per_block import (PerBlockGraph, per_block,  # registers per_block:
                                           per_block_possible)
from relgraph_jax.graphs.wsflex import ws_flex, ws_flex_edges
