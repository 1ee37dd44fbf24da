"""Compute budget of a model for a relational graph, and width matching to the complete graph.

The budget is counted analytically from the model's layer list (no tracing):
- MACs: conv and linear layers only, kept weights x output positions. A graph layer
  keeps exactly the weights its channel mask keeps: sum over node pairs (u, v) the graph
  connects (self-loops included) of |group u of the inputs| x |group v of the outputs|.
  Depthwise convs count kh*kw*C per position; attention's QK^T and AV products (layer
  kind "product") their multiply-adds; BatchNorm, LayerNorm, softmax, pooling and
  activations nothing.
- FLOPs: the original code's count (graph2nn's `flops_count`), which budget matching
  uses: the MACs above, except that a graph layer's count is a float product (dense
  weights x kept fraction x H x W) truncated to an integer, and the SE convs add their
  bias. The paper's GFLOPs are these / 1e9, rounded to 3 decimals (`Budget.gflops`).
- params: trainable parameters; graph kernels count their kept weights only, BatchNorm
  and LayerNorm their scale and bias, biases where a layer has one, and embeddings
  (a ViT's position embedding and class token) their size.
Matching is the original code's search (`match`), over the per-stage width list, or a
family's own (`Family.width_search`: the ViT keeps its width a multiple of its heads). Results
are cached. It ends at or above the complete graph's cost (graph2nn's RGRAPH.UPPER=True,
the paper's) or at or below it (UPPER=False), on FLOPs (graph2nn's only measure) or on
parameters (the same search; graph2nn has the switch but never uses it).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from relgraph_jax import models, relational

# Rounds of the first, multiplicative search step: the original code ran 15 on CIFAR
# (32 x 32 inputs) and 9 on ImageNet.
CIFAR_SCALE_ROUNDS, IMAGENET_SCALE_ROUNDS = 15, 9
# Where matching ends relative to the complete graph's cost (`side`), and what it counts
# (`measure`, an index into _cost's (MACs, params, FLOPs)).
SIDES = ("above", "below")
MEASURES = {"flops": 2, "params": 1}


@dataclasses.dataclass(frozen=True)
class Budget:
    """A model's per-stage widths and cost for one graph, next to the complete graph's.

    target_flops is what matching on FLOPs (the default) aims at: the complete graph's FLOPs
    at the config's widths; matching on parameters aims at complete_params.
    """
    widths: tuple
    macs: int
    params: int
    flops: int
    complete_macs: int
    complete_params: int
    target_flops: int

    @property
    def width(self) -> int:
        """The first stage's width: the number the original code logs as the run's width."""
        return self.widths[0]

    @property
    def gflops(self) -> float:
        """FLOPs / 1e9 rounded to 3 decimals, as the original code logs them."""
        return round(self.flops / 1e9, 3)


def count(model_cfg, graph, width, input_shape) -> Budget:
    """The model's cost for `graph` at `width` (as `models.build` takes it), no matching."""
    s, graph, shape = _normalise(model_cfg, graph, input_shape)
    return _budget(s, graph, models.stage_widths(s, width), shape)


def match(model_cfg, graph, input_shape, side: str = "above", measure: str = "flops") -> Budget:
    """The widths the original code's search finds for `graph` (see `search_widths`):
    the complete graph's `measure` ("flops" or "params") matched from `side` ("above": at
    or above it, "below": at or below)."""
    if side not in SIDES:
        raise ValueError(f"budget side {side!r}: allowed {list(SIDES)}")
    if measure not in MEASURES:
        raise ValueError(f"budget measure {measure!r}: allowed {list(MEASURES)}")
    s, graph, shape = _normalise(model_cfg, graph, input_shape)
    return _budget(s, graph, _matched_widths(s, graph, shape, side, measure), shape)


def _normalise(model_cfg, graph, input_shape):
    """Hashable, checked forms of the arguments (so the caches below can key on them)."""
    s = models.settings(model_cfg)
    graph = relational.as_graph(graph)
    models.check_nodes(s, graph)
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{s.name}: input_shape must be (H, W, C) with positive sizes, "
                         f"got {tuple(input_shape)}")
    return s, graph, shape


@functools.lru_cache(maxsize=None)
def _complete(nodes: int):
    return relational.as_graph(f"complete:n={nodes}")


@functools.lru_cache(maxsize=65536)
def _budget(s, graph, widths: tuple, shape) -> Budget:
    macs, params, flops = _cost(s, graph, widths, shape)
    complete_macs, complete_params, target = _cost(s, _complete(s.nodes), models.default_widths(s), shape)
    return Budget(widths, macs, params, flops, complete_macs, complete_params, target)


@functools.lru_cache(maxsize=65536)
def _matched_widths(s, graph, shape, side: str, measure: str) -> tuple:
    which = MEASURES[measure]
    defaults = models.default_widths(s)
    target = _cost(s, _complete(s.nodes), defaults, shape)[which]

    def cost(widths):
        return _cost(s, graph, widths, shape)[which]

    family_search = models.FAMILIES[s.name].width_search
    if family_search is not None:
        return family_search(s, cost, defaults, target, side, measure)
    rounds = CIFAR_SCALE_ROUNDS if shape[:2] == (32, 32) else IMAGENET_SCALE_ROUNDS
    return search_widths(cost, defaults, target, rounds, side, measure)


def search_widths(cost, widths, target: int, scale_rounds: int, side: str = "above",
                  measure: str = "flops") -> tuple:
    """The original code's width search (graph2nn's train_net.py), restated.

    cost(widths) -> the model's FLOPs (or parameters) at that width list; `widths` starts
    at the family's defaults; `measure` only names the cost in errors. Python's round
    (half to even) throughout, as the original.
    1. Scale rounds: the first width times round(sqrt(target / cost), 2); every width
       keeps its ratio to the first (recomputed from the rounded list each time).
    2. Step the first width by one channel toward the target, ratios kept, until the cost
       reaches or crosses it; on crossing, end on `side` of the target (step back if the
       last step crossed to the other side). As in graph2nn, a scale round that lands
       exactly on the target still takes one step down, which "below" then keeps.
    3. For each later stage i, up to round(width_i / first) one-channel steps toward the
       target, undoing the step that crosses it (so "above" ends at or above the target,
       "below" at or below it).
    """
    widths = list(widths)
    if cost(tuple(widths)) == target:
        return tuple(widths)

    def rescaled(first: int) -> list:
        if first < 1:
            raise ValueError(f"width search reached a first width of {first}: no model of "
                             f"these stages meets the budget of {target:,} {measure}")
        return [int(round(first * (w / widths[0]))) for w in widths]

    for _ in range(scale_rounds):
        scale = round(math.sqrt(target / cost(tuple(widths))), 2)
        widths = rescaled(int(round(widths[0] * scale)))
    direction = 1 if cost(tuple(widths)) < target else -1
    while True:
        widths = rescaled(widths[0] + direction)
        current = cost(tuple(widths))
        if current == target:
            break
        if (1 if current < target else -1) != direction:
            if (current < target) == (side == "above"):
                widths = rescaled(widths[0] - direction)
            break
    steps = [int(round(w / widths[0])) for w in widths]
    direction = 1 if cost(tuple(widths)) < target else -1
    for i in range(1, len(widths)):
        for _ in range(steps[i]):
            widths[i] += direction
            if (1 if cost(tuple(widths)) < target else -1) != direction:
                widths[i] -= direction
                break
    return tuple(widths)


@functools.lru_cache(maxsize=65536)
def _cost(s, graph, widths: tuple, shape) -> tuple[int, int, int]:
    """(MACs, params, FLOPs) of the model for `graph` at `widths`, over its layer list; a
    graph per block counts each block's own graph."""
    kept = {}  # many layers share a (cin, cout) shape and graph
    per_block = hasattr(graph, "block")
    macs = params = flops = 0
    for layer in models.architecture(s, widths, shape, graph.is_complete):
        if layer.kind == "norm":
            params += 2 * layer.cout
            continue
        if layer.kind == "embedding":
            params += layer.cin * layer.cout
            continue
        if layer.kind == "product":  # activations times activations: no weights
            work = layer.cin * layer.cout * layer.positions
            macs, flops = macs + work, flops + work
            continue
        if layer.kind == "graph":
            io = (layer.cin, layer.cout)
            key = io + ((layer.block,) if per_block else ())
            if key not in kept:
                layer_graph = relational.layer_graph(relational.block_graph(graph, layer.block),
                                                     *io, layer=f"{s.name}: layer {layer.path}")
                kept[key] = kept_weights(_adjacency(layer_graph), *io, s.partition)
            weights = layer.window * kept[key]
            dense = layer.window * layer.cin * layer.cout
            h, w = layer.out_hw
            flops += int(dense * (kept[key] / (layer.cin * layer.cout)) * h * w)
        else:
            weights = layer.window * (layer.cout if layer.kind == "depthwise" else layer.cin * layer.cout)
            flops += weights * layer.positions + (layer.cout if layer.flops_bias else 0)
        macs += weights * layer.positions
        params += weights + (layer.cout if layer.bias else 0)
    return int(macs), int(params), int(flops)


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
