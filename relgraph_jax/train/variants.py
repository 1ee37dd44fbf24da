"""Variants = graphs x seeds (x a small hyper-parameter grid), each budget-matched.

Variant ids are positions in that product, in the order graphs (as resolved), then
hyper-parameter combinations, then seeds, so ids are stable for a given config.
Variants are grouped by width (`width_buckets`); within a group, narrower variants are
embedded in the widest one by zero padding (see `pad_to`): padded
channels have zero weights, zero masks and zero BatchNorm scale, so they stay exactly zero
and change no output or gradient of the real channels.
"""
from __future__ import annotations

import dataclasses
import itertools

import jax
import numpy as np

from relgraph_jax import budget as budget_lib
from relgraph_jax import graphs as graphs_lib

GRID_FIELDS = ("lr", "weight_decay")


@dataclasses.dataclass(frozen=True)
class Variant:
    id: int
    graph: "graphs_lib.RelationalGraph"
    seed: int
    lr: float
    weight_decay: float
    width: int
    macs: int
    params: int

    def record_fields(self, model_name: str, grid_names) -> dict:
        """The per-variant part of every results record."""
        return {"variant": self.id, "graph": self.graph.spec, "C": _finite_or_none(self.graph.C),
                "L": _finite_or_none(self.graph.L), "seed": self.seed, "model": model_name,
                "width": self.width, "macs": int(self.macs), "params": int(self.params),
                "hparams": {name: getattr(self, name) for name in grid_names}}


def _finite_or_none(x) -> float | None:
    """JSON has no infinity: a disconnected graph's L is recorded as null."""
    x = float(x)
    return x if np.isfinite(x) else None


def grid_combinations(config) -> tuple[tuple[str, ...], list[dict]]:
    """The hyper-parameter grid as (names that vary, list of {lr, weight_decay})."""
    grid = config.get("grid", {}) or {}
    unknown = sorted(set(grid.keys()) - set(GRID_FIELDS))
    if unknown:
        raise ValueError(f"config.grid has unknown field(s) {unknown}; allowed: {list(GRID_FIELDS)}")
    axes = {name: tuple(grid.get(name) or ()) or (config.train[name],) for name in GRID_FIELDS}
    varying = tuple(name for name in GRID_FIELDS if grid.get(name))
    combos = [dict(zip(GRID_FIELDS, values)) for values in itertools.product(*axes.values())]
    return varying, combos


def build_variants(config) -> list[Variant]:
    """Resolves graphs, checks them against the model, and matches each one's width."""
    graphs = graphs_lib.resolve(config.graphs)
    if config.seeds < 1:
        raise ValueError(f"config.seeds={config.seeds}: need at least 1 seed")
    nodes = config.model.nodes
    for g in graphs:
        if g.n != nodes:
            raise ValueError(f"graph {g.spec} has {g.n} nodes but config.model.nodes is {nodes}; "
                             "use graphs with that many nodes or change config.model.nodes")
    _, combos = grid_combinations(config)
    input_shape = tuple(config.input_shape)
    variants = []
    for g in graphs:
        b = budget_lib.match(config.model, g, input_shape) if config.budget_match else \
            budget_lib.count(config.model, g, config.model.width, input_shape)
        for hp in combos:
            for seed in range(config.seeds):
                variants.append(Variant(len(variants), g, seed, float(hp["lr"]),
                                        float(hp["weight_decay"]), b.width, b.macs, b.params))
    return variants


def pad_to(tree, like):
    """Zero-pads every leaf of `tree` at the end of each axis to the shape of `like`'s leaf."""
    def one(x, target):
        x = np.asarray(x)
        pad = [(0, t - s) for s, t in zip(x.shape, target.shape)]
        if any(p < 0 for _, p in pad):
            raise ValueError(f"cannot pad shape {x.shape} to the smaller {target.shape}")
        return np.pad(x, pad)
    return jax.tree.map(one, tree, like)


def stack(trees):
    """Stacks a list of identical-structure numpy trees along a new leading variant axis."""
    return jax.tree.map(lambda *xs: np.stack(xs), *trees)


def width_buckets(variant_list, num_buckets: int, cost) -> list[list[Variant]]:
    """Splits variants into at most `num_buckets` groups of neighbouring widths.

    Every variant of a group runs at the group's widest width, so a group of m variants
    costs m * cost(widest). The split minimises the total by dynamic programming over the
    variants sorted by width. Within a group variants keep their id order.
    """
    if num_buckets < 1:
        raise ValueError(f"train.width_buckets={num_buckets!r}: must be a positive integer")
    ordered = sorted(variant_list, key=lambda v: (v.width, v.id))
    widths = [v.width for v in ordered]
    unit = {w: float(cost(w)) for w in set(widths)}
    n, k = len(ordered), min(num_buckets, len(set(widths)))
    # best[j][i]: least cost of the first i variants in j groups; cut[j][i]: where the last starts.
    best = [[float("inf")] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for j in range(1, k + 1):
        for i in range(1, n + 1):
            for start in range(j - 1, i):
                total = best[j - 1][start] + (i - start) * unit[widths[i - 1]]
                if total < best[j][i]:
                    best[j][i], cut[j][i] = total, start
    j = min(range(1, k + 1), key=lambda j: best[j][n])
    groups, end = [], n
    while j:
        start = cut[j][end]
        groups.append(sorted(ordered[start:end], key=lambda v: v.id))
        end, j = start, j - 1
    return [g for g in reversed(groups) if g]
