"""Variants = graphs x seeds (x a small hyper-parameter grid), each budget-matched.

Variant ids are positions in that product, in the order graphs (as resolved), then
hyper-parameter combinations, then seeds, so ids are stable for a given config.
Variants are grouped by model structure and width (`width_buckets`); within a group,
narrower variants are embedded in the group's widest widths, stage by stage, by zero
padding (see `pad_to`): padded channels have zero weights, zero masks and zero BatchNorm
scale, so they stay exactly zero and change no output or gradient of the real channels.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import numpy as np

from relgraph_jax import budget as budget_lib
from relgraph_jax import config_fields
from relgraph_jax import graphs as graphs_lib
from relgraph_jax import models as models_lib
from relgraph_jax import relational
from relgraph_jax.train import validate


@dataclasses.dataclass(frozen=True)
class Variant:
    id: int
    graph: "graphs_lib.RelationalGraph"
    seed: int
    lr: float
    weight_decay: float
    widths: tuple
    macs: int
    params: int
    structure: tuple = ()

    @property
    def width(self) -> int:
        """The first stage's width (the number the original code logged)."""
        return self.widths[0]

    def record_fields(self, model_name: str, grid_names) -> dict:
        """The per-variant part of every results record."""
        return {"variant": self.id, "graph": self.graph.spec, "C": _finite_or_none(self.graph.C),
                "L": _finite_or_none(self.graph.L), "seed": self.seed, "model": model_name,
                "width": self.width, "widths": list(self.widths), "macs": int(self.macs),
                "params": int(self.params),
                "hparams": {name: getattr(self, name) for name in grid_names}}


def _finite_or_none(x) -> float | None:
    """JSON has no infinity: a disconnected graph's L is recorded as null."""
    x = float(x)
    return x if np.isfinite(x) else None


def grid_combinations(config) -> tuple[tuple[str, ...], list[dict]]:
    """The hyper-parameter grid as (names that vary, list of {lr, weight_decay})."""
    grid = config.get("grid", {}) or {}
    fields = config_fields.GRID_KEYS
    axes = {name: tuple(grid.get(name) or ()) or (config.train[name],) for name in fields}
    varying = tuple(name for name in fields if grid.get(name))
    combos = [dict(zip(fields, values)) for values in itertools.product(*axes.values())]
    return varying, combos


def build_variants(config) -> list[Variant]:
    """Resolves graphs (a graph per block of each seeded one with `graph_per_block`),
    checks them against the model, and matches each one's width."""
    models_lib.check_layer_list(config.model.name)
    graphs = graphs_lib.resolve(config.graphs)
    if config.graph_per_block:
        graphs = [graphs_lib.per_block(g) if graphs_lib.per_block_possible(g) else g
                  for g in graphs]
    validate.check_graphs(config, graphs)
    _, combos = grid_combinations(config)
    input_shape = tuple(config.input_shape)
    variants = []
    for g in graphs:
        b = budget_lib.match(config.model, g, input_shape, config.budget_side,
                             config.budget_measure) if config.budget_match else \
            budget_lib.count(config.model, g, None, input_shape)
        structure = models_lib.structure(config.model, g, b.widths)
        for hp in combos:
            for seed in range(config.seeds):
                variants.append(Variant(len(variants), g, seed, float(hp["lr"]),
                                        float(hp["weight_decay"]), b.widths, b.macs, b.params,
                                        structure))
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


def padded_cost(config, input_shape):
    """Per-slot cost of running at per-stage widths: the MACs of the complete graph there
    (what the mask path computes whatever the graph)."""
    complete = f"complete:n={config.model.nodes}"
    return lambda widths: budget_lib.count(config.model, complete, widths, input_shape).macs


def layout_graph(variant_list):
    """The graph a bucket's model is built from: the one with the most in-neighbours, which
    in the gather layout sets the degree slots every variant's tables are padded to."""
    return max(variant_list, key=lambda v: relational.max_in_degree(v.graph)).graph


def widest(variant_list) -> tuple:
    """Stage by stage, the largest width of the variants: what a shared program runs at."""
    return tuple(int(w) for w in np.max([v.widths for v in variant_list], axis=0))


def width_buckets(variant_list, num_buckets: int, cost) -> list[list[Variant]]:
    """Splits variants into groups that share one model structure and neighbouring widths.

    Variants of different `structure` never share a group. Within a structure, at most
    `num_buckets` groups of consecutive width lists (sorted): every variant of a group runs
    at the group's `widest` widths, so a group of m variants costs m * cost(widest). The
    split minimises the total by dynamic programming over the distinct width lists.
    Within a group variants keep their id order; groups come in structure order, then width.
    """
    if num_buckets < 1:
        raise ValueError(f"train.width_buckets={num_buckets!r}: must be a positive integer")
    cost = functools.lru_cache(maxsize=None)(cost)  # the split asks for few widths, often
    by_structure = {}
    for v in variant_list:
        by_structure.setdefault(v.structure, []).append(v)
    groups = []
    for members in by_structure.values():
        groups += _split_by_width(members, num_buckets, cost)
    return groups


def _split_by_width(variant_list, num_buckets: int, cost) -> list[list[Variant]]:
    distinct = sorted({v.widths for v in variant_list})
    count = {w: sum(v.widths == w for v in variant_list) for w in distinct}
    u, k = len(distinct), min(num_buckets, len(distinct))
    # span[a][b]: cost of one group holding width lists a..b-1.
    span = [[0.0] * (u + 1) for _ in range(u + 1)]
    for a in range(u):
        top, members = distinct[a], 0
        for b in range(a + 1, u + 1):
            top = tuple(max(x, y) for x, y in zip(top, distinct[b - 1]))
            members += count[distinct[b - 1]]
            span[a][b] = members * float(cost(top))
    # best[j][i]: least cost of the first i width lists in j groups; cut[j][i]: last start.
    best = [[float("inf")] * (u + 1) for _ in range(k + 1)]
    cut = [[0] * (u + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for j in range(1, k + 1):
        for i in range(1, u + 1):
            for start in range(j - 1, i):
                total = best[j - 1][start] + span[start][i]
                if total < best[j][i]:
                    best[j][i], cut[j][i] = total, start
    j = min(range(1, k + 1), key=lambda j: best[j][u])
    groups, end = [], u
    while j:
        start = cut[j][end]
        members = set(distinct[start:end])
        groups.append([v for v in variant_list if v.widths in members])
        end, j = start, j - 1
    return [g for g in reversed(groups) if g]
