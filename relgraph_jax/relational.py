"""From a relational graph to the static structure of one layer.

Node i of an n-node graph owns a group of a layer's input channels and a group of its
output channels. Weight entry (input channel a, output channel b) is kept iff the graph
has the message node(a) -> node(b) (adjacency[node(a), node(b)]; every node has a
self-loop). A layer with fewer channels than the graph has nodes uses the same graph
recipe at that many nodes (`layer_graph`), as the original code did. Everything here is
numpy, built once per (graph, layer shape) and cached, so jit closes over constants and
never rebuilds them per step.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

PARTITIONS = ("permuted", "contiguous")
DEFAULT_PARTITION = "permuted"


def as_graph(graph, layer: str = ""):
    """A RelationalGraph from a graph object or a spec string (e.g. "ws:n=64,k=8,p=0.1,seed=0")."""
    prefix = f"{layer}: " if layer else ""
    if isinstance(graph, str):
        try:
            return _graph_from_spec(graph)
        except ValueError as error:
            raise ValueError(f"{prefix}{error}") from None
    if not (hasattr(graph, "n") and hasattr(graph, "adjacency")):
        raise TypeError(f"{prefix}graph must be a RelationalGraph or a spec string, "
                        f"got {type(graph).__name__}: {graph!r}")
    return graph


def block_graph(graph, index):
    """The graph of a stage's block `index` (None: a layer outside the blocks): its own
    draw for a per-block graph (`graphs.per_block`), else `graph` itself."""
    graph = as_graph(graph)
    return graph if index is None or not hasattr(graph, "block") else graph.block(index)


@functools.lru_cache(maxsize=256)
def _graph_from_spec(spec: str):
    from relgraph_jax.graphs import RelationalGraph  # deferred: graphs imports networkx
    return RelationalGraph.from_spec(spec)


def check_partition(partition: str, layer: str = "layer") -> None:
    if partition not in PARTITIONS:
        raise ValueError(f"{layer}: unknown partition {partition!r}; allowed: {', '.join(PARTITIONS)}")


def group_sizes(channels: int, n: int, partition: str = DEFAULT_PARTITION, *,
                layer: str = "layer", side: str = "") -> np.ndarray:
    """Channels per node: channels // n each, one more for the first channels % n nodes.

    "permuted" (the default, the original code's split) reorders these sizes by numpy's
    seed-1 permutation; "contiguous" keeps the bigger groups on the first nodes. Groups
    stay contiguous ranges either way, only their sizes move between nodes.
    """
    check_partition(partition, layer)
    if int(n) < 1:
        raise ValueError(f"{layer}: a graph needs at least 1 node, got n={n}")
    if int(channels) < int(n):
        what = f"{side} channels" if side else "channels"
        raise ValueError(f"{layer}: {n} nodes but only {channels} {what}; "
                         "need at least as many channels as nodes")
    sizes = np.full(n, channels // n, dtype=np.int64)
    sizes[: channels % n] += 1
    if partition == "permuted":
        sizes = sizes[np.random.RandomState(1).permutation(n)]
    return sizes


def channel_nodes(channels: int, n: int, partition: str = DEFAULT_PARTITION, *,
                  layer: str = "layer", side: str = "") -> np.ndarray:
    """The node that owns each channel, shape (channels,)."""
    sizes = group_sizes(channels, n, partition, layer=layer, side=side)
    return np.repeat(np.arange(n), sizes)


def _adjacency(graph, layer: str) -> np.ndarray:
    adjacency = np.asarray(graph.adjacency, dtype=bool)
    n = int(graph.n)
    if adjacency.shape != (n, n):
        raise ValueError(f"{layer}: graph adjacency has shape {adjacency.shape}, expected ({n}, {n})")
    return adjacency | np.eye(n, dtype=bool)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def layer_graph(graph, in_channels: int, out_channels: int, *, layer: str = "layer"):
    """The graph a layer uses: `graph`, or its recipe at min(in, out) nodes when the layer
    has fewer channels than the graph has nodes (the original code's rule, which gives
    EfficientNet's narrow first stage a smaller graph). Raises ValueError, naming the
    layer, for a graph without a recipe (a brain network, an edge list)."""
    graph = as_graph(graph, layer)
    nodes = min(int(in_channels), int(out_channels))
    if nodes >= graph.n:
        return graph
    if nodes < 1:
        raise ValueError(f"{layer}: a graph layer needs at least 1 input and output channel, "
                         f"got {in_channels} -> {out_channels}")
    try:
        return graph.with_nodes(nodes)
    except ValueError as error:
        raise ValueError(f"{layer}: {in_channels} -> {out_channels} channels, fewer than the "
                         f"graph's {graph.n} nodes, and {error}") from None


@functools.lru_cache(maxsize=1024)
def layer_mask(graph, in_channels: int, out_channels: int, partition: str = DEFAULT_PARTITION, *,
               layer: str = "layer") -> np.ndarray:
    """The (in_channels, out_channels) float32 0/1 weight mask of a graph layer (read-only, cached)."""
    graph = layer_graph(graph, in_channels, out_channels, layer=layer)
    in_nodes = channel_nodes(in_channels, graph.n, partition, layer=layer, side="input")
    out_nodes = channel_nodes(out_channels, graph.n, partition, layer=layer, side="output")
    adjacency = _adjacency(graph, layer)
    return _readonly(adjacency[np.ix_(in_nodes, out_nodes)].astype(np.float32))


@dataclasses.dataclass(frozen=True, eq=False)
class BlockStructure:
    """The connected (input node, output node) blocks of one layer, sorted by output node.

    Block e maps input group src[e] to output group dst[e]. Groups are padded to the
    largest group size (in_group, out_group) inside the block ops: in_index[u] lists the
    input channels of node u with the value in_channels for a padding slot, out_index[v]
    the output channels of node v with out_channels for a padding slot.
    """
    n: int
    in_channels: int
    out_channels: int
    src: np.ndarray
    dst: np.ndarray
    in_index: np.ndarray
    out_index: np.ndarray
    mask: np.ndarray

    @property
    def num_blocks(self) -> int:
        return int(self.src.shape[0])

    @property
    def in_group(self) -> int:
        return int(self.in_index.shape[1])

    @property
    def out_group(self) -> int:
        return int(self.out_index.shape[1])

    @property
    def in_padded(self) -> bool:
        return self.n * self.in_group != self.in_channels

    @property
    def out_padded(self) -> bool:
        return self.n * self.out_group != self.out_channels

    @property
    def density(self) -> float:
        return float(self.mask.mean())


def _padded_index(sizes: np.ndarray) -> np.ndarray:
    """(n, max size) channel indices of each node's contiguous group; padding = total channels."""
    total, width = int(sizes.sum()), int(sizes.max())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    slots = np.arange(width)
    return np.where(slots < sizes[:, None], starts[:, None] + slots, total)


@functools.lru_cache(maxsize=1024)
def block_structure(graph, in_channels: int, out_channels: int, partition: str = DEFAULT_PARTITION, *,
                    layer: str = "layer") -> BlockStructure:
    """The block list of a graph layer (cached): only node pairs the graph connects."""
    graph = layer_graph(graph, in_channels, out_channels, layer=layer)
    mask = layer_mask(graph, in_channels, out_channels, partition, layer=layer)
    src, dst = np.nonzero(_adjacency(graph, layer))
    order = np.lexsort((src, dst))
    in_sizes = group_sizes(in_channels, graph.n, partition, layer=layer, side="input")
    out_sizes = group_sizes(out_channels, graph.n, partition, layer=layer, side="output")
    return BlockStructure(
        n=int(graph.n), in_channels=int(in_channels), out_channels=int(out_channels),
        src=_readonly(src[order]), dst=_readonly(dst[order]),
        in_index=_readonly(_padded_index(in_sizes)), out_index=_readonly(_padded_index(out_sizes)),
        mask=mask)


@dataclasses.dataclass(frozen=True, eq=False)
class GatherTables:
    """Index tables of the gather layout: each output node reads its in-neighbours' groups.

    The layer's kernel is (n, degree_slots, in_group, out_group): slot (i, d) holds the
    weights from the d-th in-neighbour of node i (sorted) to node i. Indices are stored
    one higher than the channel they name, so that 0 always means "a zero": zero-padding
    the tables (a narrower variant embedded in a wider layer) keeps them valid.
    reads[i, d, s]: 1 + the input channel read at that kernel row, or 0.
    out_node[c], out_slot[c]: 1 + the node owning output channel c, and c's place in it.
    """
    reads: np.ndarray
    out_node: np.ndarray
    out_slot: np.ndarray

    @property
    def n(self) -> int:
        return int(self.reads.shape[0])

    @property
    def degree_slots(self) -> int:
        return int(self.reads.shape[1])

    @property
    def in_group(self) -> int:
        return int(self.reads.shape[2])

    @property
    def out_group(self) -> int:
        return int(self.out_slot.max()) + 1

    def arrays(self) -> dict:
        return {"reads": self.reads, "out_node": self.out_node, "out_slot": self.out_slot}


def max_in_degree(graph) -> int:
    """The most messages any node receives, its self-loop included."""
    return int(_adjacency(as_graph(graph), "graph").sum(axis=0).max())


@functools.lru_cache(maxsize=1024)
def gather_tables(graph, in_channels: int, out_channels: int, partition: str = DEFAULT_PARTITION, *,
                  degree_slots: int | None = None, layer: str = "layer") -> GatherTables:
    """The gather layout of a graph layer (cached). degree_slots (default: the graph's
    largest in-degree) may be larger, so graphs of one sweep share the kernel shape."""
    graph = layer_graph(graph, in_channels, out_channels, layer=layer)
    adjacency = _adjacency(graph, layer)
    needed = int(adjacency.sum(axis=0).max())
    slots = needed if degree_slots is None else int(degree_slots)
    if slots < needed:
        raise ValueError(f"{layer}: degree_slots={degree_slots} is below the graph's largest "
                         f"in-degree {needed} (self-loop included); allowed: >= {needed} or None")
    in_index = _padded_index(group_sizes(in_channels, graph.n, partition, layer=layer, side="input"))
    out_sizes = group_sizes(out_channels, graph.n, partition, layer=layer, side="output")
    reads = np.zeros((graph.n, slots, in_index.shape[1]), np.int32)
    for node in range(graph.n):
        sources = np.flatnonzero(adjacency[:, node])
        rows = in_index[sources]
        reads[node, :len(sources)] = np.where(rows < in_channels, rows + 1, 0)
    out_nodes = np.repeat(np.arange(graph.n), out_sizes)
    starts = np.concatenate([[0], np.cumsum(out_sizes)[:-1]])
    out_slot = np.arange(out_channels) - starts[out_nodes]
    return GatherTables(reads=_readonly(reads), out_node=_readonly((out_nodes + 1).astype(np.int32)),
                        out_slot=_readonly(out_slot.astype(np.int32)))
