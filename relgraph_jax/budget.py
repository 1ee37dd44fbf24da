"""Compute budget of a model for a relational graph, and width matching to the complete graph.

The budget is counted analytically from the model's layer list (no tracing):
- MACs: conv and linear layers only, kept weights x output positions. A graph layer
  keeps exactly the weights its channel mask keeps: sum over node pairs (u, v) the graph
  connects (self-loops included) of |group u of the inputs| x |group v of the outputs|.
  Depthwise convs count kh*kw*C per position; BatchNorm, pooling, activations nothing.
- params: trainable parameters; graph kernels count their kept weights only, BatchNorm
  its scale and bias, biases where a layer has one.
Matching (the paper's rule): the smallest base width, in one-channel steps, whose MACs
are at least those of the complete graph at the config's width; stem widths stay fixed
and stage ratios are kept by the model families. Results are cached.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from relgraph_jax import models, relational


@dataclasses.dataclass(frozen=True)
class Budget:
    """A model's width and cost for one graph, next to the complete graph's cost."""
    width: int
    macs: int
    params: int
    complete_macs: int
    complete_params: int


def count(model_cfg, graph, width: int, input_shape) -> Budget:
    """MACs and parameters of the model for `graph` at base `width` (no matching)."""
    s, graph, shape = _normalise(model_cfg, graph, input_shape)
    return _budget(s, graph, width, shape)


def match(model_cfg, graph, input_shape) -> Budget:
    """The smallest width whose MACs are >= the complete graph's at model_cfg.width."""
    s, graph, shape = _normalise(model_cfg, graph, input_shape)
    return _budget(s, graph, _matched_width(s, graph, shape), shape)


def _normalise(model_cfg, graph, input_shape):
    """Hashable, checked forms of the arguments (so the caches below can key on them)."""
    s = models.settings(model_cfg)
    graph = relational.as_graph(graph)
    if graph.n != s.nodes:
        raise ValueError(f"{s.name}: graph has {graph.n} nodes but config.model.nodes is {s.nodes}")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{s.name}: input_shape must be (H, W, C) with positive sizes, "
                         f"got {tuple(input_shape)}")
    return s, graph, shape


@functools.lru_cache(maxsize=None)
def _complete(nodes: int):
    return relational.as_graph(f"complete:n={nodes}")


@functools.lru_cache(maxsize=65536)
def _budget(s, graph, width: int, shape) -> Budget:
    macs, params = _cost(s, graph, width, shape)
    complete_macs, complete_params = _cost(s, _complete(s.nodes), s.width, shape)
    return Budget(width, macs, params, complete_macs, complete_params)


@functools.lru_cache(maxsize=65536)
def _matched_width(s, graph, shape) -> int:
    target, _ = _cost(s, _complete(s.nodes), s.width, shape)

    def macs(width: int) -> int:
        return _cost(s, graph, width, shape)[0]

    # No graph is denser than the complete one, so the answer is >= the config's width.
    low = s.width
    if macs(low) >= target:
        return low
    high = 2 * low
    while macs(high) < target:
        low, high = high, 2 * high
    while high - low > 1:  # macs(low) < target <= macs(high); MACs grow with width
        mid = (low + high) // 2
        low, high = (mid, high) if macs(mid) < target else (low, mid)
    return high


@functools.lru_cache(maxsize=65536)
def _cost(s, graph, width: int, shape) -> tuple[int, int]:
    """(MACs, params) of the model for `graph` at `width`, summed over its layer list."""
    adjacency = _adjacency(graph)
    kept = {}  # many layers share a (cin, cout) shape
    macs = params = 0
    for layer in _layers(s, width, shape):
        if layer.kind == "norm":
            params += 2 * layer.cout
            continue
        if layer.kind == "graph":
            io = (layer.cin, layer.cout)
            if io not in kept:
                kept[io] = kept_weights(adjacency, *io, s.partition)
            weights = layer.window * kept[io]
        elif layer.kind == "depthwise":
            weights = layer.window * layer.cout
        else:
            weights = layer.window * layer.cin * layer.cout
        macs += weights * layer.positions
        params += weights + (layer.cout if layer.bias else 0)
    return int(macs), int(params)


@functools.lru_cache(maxsize=4096)
def _layers(s, width: int, shape):
    """The layer list, which depends on the graph only through its node count (shared)."""
    return models.layer_list(s, _complete(s.nodes), width, shape)


@functools.lru_cache(maxsize=4096)
def _adjacency(graph) -> np.ndarray:
    """The graph's adjacency as int64 with every self-loop set."""
    adjacency = np.asarray(graph.adjacency, dtype=bool) | np.eye(graph.n, dtype=bool)
    return adjacency.astype(np.int64)


def kept_weights(adjacency: np.ndarray, cin: int, cout: int, partition: str) -> int:
    """Number of ones in the (cin, cout) channel mask: in_sizes @ adjacency @ out_sizes."""
    nodes = adjacency.shape[0]
    return int(_group_sizes(cin, nodes, partition) @ adjacency @ _group_sizes(cout, nodes, partition))


@functools.lru_cache(maxsize=65536)
def _group_sizes(channels: int, nodes: int, partition: str) -> np.ndarray:
    return relational.group_sizes(channels, nodes, partition)
