"""A Vision Transformer whose channel-mixing layers are graph layers (docs/transformers.md).

The model width d is split into `nodes` channel groups, as the paper splits the MLP's
layers. In every pre-LayerNorm block the attention's query, key, value and output
projections (d -> d) and the MLP's two layers (d -> hidden -> d) are graph layers, or the
ones `graph_layers` names ("none": a plain dense ViT, the benchmark's reference). An edge
(u, v) lets group u of a layer's inputs reach group v of its outputs. Attention itself
(the token mixing) is unchanged, and so are the patch embedding and the head, as the paper
keeps its families' stems and heads dense. With the complete graph every mask is all ones:
a standard ViT of width d and MLP width hidden.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from relgraph_jax.layers import MaskedDense
from relgraph_jax.models.common import Layer, image_shape, norm_layer
from relgraph_jax.models.families import Family, common_fields, register_family
from relgraph_jax.models.settings import choice, fail, positive_int
from relgraph_jax.ops import IMPLS
from relgraph_jax.relational import block_graph

# Truncated normal, std 0.02, for every kernel and the position embedding (timm's and
# DeiT's init); zero biases and class token; LayerNorm eps 1e-6 (the original ViT's).
VIT_INIT = nn.initializers.truncated_normal(0.02)
LAYER_NORM_EPS = 1e-6
POOLINGS = ("cls", "mean")
GRAPH_LAYERS = ("all", "mlp", "attention", "none")  # "none": the plain dense ViT
ATTENTION_PROJECTIONS = ("query", "key", "value", "out")
MLP_LAYERS = ("fc1", "fc2")


def _layer_norm(name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LAYER_NORM_EPS, name=name)


class EncoderBlock(nn.Module):
    """x + attention(LN(x)), then x + MLP(LN(x)); `graphed` names the graph layers."""
    graph: Any
    heads: int
    hidden: int
    graphed: frozenset
    impl: str
    partition: str

    def _linear(self, features: int, name: str):
        if name in self.graphed:
            return MaskedDense(features, self.graph, impl=self.impl, partition=self.partition,
                               use_bias=True, kernel_init=VIT_INIT, name=name)
        return nn.Dense(features, kernel_init=VIT_INIT, name=name)

    @nn.compact
    def __call__(self, x):
        batch, tokens, width = x.shape
        head_width = width // self.heads
        y = _layer_norm("ln1")(x)
        q, k, v = (self._linear(width, name)(y).reshape(batch, tokens, self.heads, head_width)
                   for name in ATTENTION_PROJECTIONS[:3])
        scores = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(head_width)
        weights = nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)  # bf16-safe
        mixed = jnp.einsum("bhqk,bkhc->bqhc", weights, v)
        x = x + self._linear(width, "out")(mixed.reshape(batch, tokens, width))
        y = nn.gelu(self._linear(self.hidden, "fc1")(_layer_norm("ln2")(x)), approximate=False)
        return x + self._linear(width, "fc2")(y)


class ViT(nn.Module):
    """Image -> patch embedding (dense p x p conv, stride p) [+ class token] + position
    embedding -> depth x EncoderBlock -> LayerNorm -> class token or mean of tokens -> head.

    `widths` = (d, hidden): the model width and the MLP width that budget matching
    chooses (d a multiple of `heads`).
    """
    graph: Any
    widths: tuple
    depth: int
    heads: int
    patch: int
    pooling: str
    graph_layers: str
    num_classes: int
    impl: str
    partition: str

    @nn.compact
    def __call__(self, x, train: bool):
        width, hidden = self.widths
        x = nn.Conv(width, (self.patch, self.patch), strides=self.patch, padding="VALID",
                    kernel_init=VIT_INIT, name="embed")(x)
        x = x.reshape(x.shape[0], -1, width)
        if self.pooling == "cls":
            cls = self.param("cls", nn.initializers.zeros, (1, 1, width))
            cls = jnp.broadcast_to(cls, (x.shape[0], 1, width)).astype(x.dtype)
            x = jnp.concatenate([cls, x], axis=1)
        x = x + self.param("pos_embedding", VIT_INIT, (1,) + x.shape[1:])
        for i in range(self.depth):
            x = EncoderBlock(block_graph(self.graph, i), self.heads, hidden, self.graphed(),
                             self.impl, self.partition, name=f"block{i}")(x)
        x = _layer_norm("norm")(x)
        x = x[:, 0] if self.pooling == "cls" else x.mean(axis=1)
        return nn.Dense(self.num_classes, kernel_init=VIT_INIT, name="head")(x)

    def graphed(self) -> frozenset:
        """The names of the graph layers in each block."""
        return frozenset({"all": ATTENTION_PROJECTIONS + MLP_LAYERS, "mlp": MLP_LAYERS,
                          "attention": ATTENTION_PROJECTIONS, "none": ()}[self.graph_layers])

    def stage_widths(self) -> tuple[int, ...]:
        return tuple(self.widths)

    def tokens(self, input_shape) -> tuple[int, int]:
        """(patches, tokens): tokens count the class token."""
        h, w, _ = image_shape(input_shape, "vit")
        if h % self.patch or w % self.patch:
            raise ValueError(f"vit: model.patch={self.patch} does not divide the {h}x{w} images; "
                             "use a patch size that divides both sides")
        patches = (h // self.patch) * (w // self.patch)
        return patches, patches + (self.pooling == "cls")

    def layer_list(self, input_shape) -> tuple[Layer, ...]:
        width, hidden = self.widths
        channels = image_shape(input_shape, "vit")[2]
        patches, tokens = self.tokens(input_shape)
        at_tokens = (tokens, 1)
        layers = [Layer("embed", "dense", channels, width, window=self.patch ** 2,
                        out_hw=(patches, 1), bias=True)]
        if self.pooling == "cls":
            layers.append(Layer("cls", "embedding", 1, width))
        layers.append(Layer("pos_embedding", "embedding", tokens, width))
        graphed = self.graphed()
        head_width = width // self.heads
        for i in range(self.depth):
            def linear(name, cin, cout):
                kind = "graph" if name in graphed else "dense"
                return Layer(f"block{i}/{name}", kind, cin, cout, out_hw=at_tokens, bias=True,
                             block=i if kind == "graph" else None)
            layers += [norm_layer(f"block{i}/ln1", width)]
            layers += [linear(name, width, width) for name in ATTENTION_PROJECTIONS[:3]]
            # QK^T: per query, each head's d / heads channels against every key (heads x
            # tokens scores); AV: per query, each head's weights over the tokens against
            # the values, d channels in all.
            layers += [Layer(f"block{i}/scores", "product", head_width, self.heads * tokens,
                             out_hw=at_tokens),
                       Layer(f"block{i}/mix", "product", tokens, width, out_hw=at_tokens),
                       linear("out", width, width), norm_layer(f"block{i}/ln2", width),
                       linear("fc1", width, hidden), linear("fc2", hidden, width)]
        layers += [norm_layer("norm", width),
                   Layer("head", "dense", width, self.num_classes, bias=True)]
        return tuple(layers)


def _check(s) -> None:
    for field in ("depth", "heads", "patch"):
        positive_int(s, field)
    choice(s, "pooling", POOLINGS)
    choice(s, "graph_layers", GRAPH_LAYERS)
    ratio = s["mlp_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not (
            math.isfinite(ratio) and ratio > 0):
        fail(s, "mlp_ratio", ratio, "a positive number (MLP width over model width)")
    if s["width"] % s["heads"]:
        fail(s, "width", s["width"], f"a multiple of model.heads={s['heads']}")


def _make(s, graph, widths: tuple) -> ViT:
    if widths[0] % s.heads:
        raise ValueError(f"vit: model width {widths[0]} is not a multiple of model.heads="
                         f"{s.heads}; each head takes width / heads channels")
    return ViT(graph=graph, widths=widths, depth=s.depth, heads=s.heads, patch=s.patch,
               pooling=s.pooling, graph_layers=s.graph_layers, **common_fields(s))


def _search(s, cost, widths: tuple, target: int, side: str, measure: str) -> tuple:
    """The ViT's width search: the model width d moves in steps of `heads` (each head keeps
    d / heads channels), the MLP width following it at the config's ratio, to the widest d
    whose cost stays at or below the target; then the MLP width, which has no such
    constraint, takes the one-channel step that ends on `side` of the target. One head-sized
    step of d moves the cost by a few percent, one MLP channel by about 1 / (6 d)."""
    if cost(widths) == target:
        return widths
    ratio = widths[1] / widths[0]

    def at(d: int) -> tuple:
        return d, max(1, int(round(d * ratio)))

    step = s.heads
    d = max(step, step * int(round(widths[0] * math.sqrt(target / cost(widths)) / step)))
    while d > step and cost(at(d)) > target:
        d -= step
    while cost(at(d + step)) <= target:
        d += step
    d, hidden = at(d)
    if cost((d, hidden)) > target:
        raise ValueError(f"vit: no model width that is a multiple of model.heads={s.heads} "
                         f"meets the budget of {target:,} {measure}")
    # The largest MLP width within the target: doubling steps past it, then bisection.
    below, step = hidden, 1
    while cost((d, below + step)) <= target:
        below, step = below + step, 2 * step
    above = below + step
    while above - below > 1:
        middle = (below + above) // 2
        below, above = (middle, above) if cost((d, middle)) <= target else (below, middle)
    return d, (above if side == "above" and cost((d, below)) < target else below)


register_family(Family(
    "vit", "Vision Transformer: dense patch embedding (+ class token), `depth` pre-LN blocks "
    "whose attention Q, K, V, output projections and MLP (d -> hidden -> d) are graph layers "
    "(`graph_layers`), dense head; widths d, hidden",
    defaults=dict(nodes=16, width=192, num_classes=10, depth=12, heads=3, patch=4,
                  mlp_ratio=4.0, pooling="cls", graph_layers="all"),
    check=_check,
    make=_make,
    stage_ratios=lambda s: (1, s.mlp_ratio),
    tiny=dict(nodes=4, width=16, depth=1, heads=2, patch=4),
    impls=IMPLS,
    # Padding the model width would change LayerNorm's statistics and the heads' split, so
    # only variants of one d share a program; a narrower MLP width pads exactly.
    structure=lambda module: (module.widths[0],),
    width_search=_search,
    probe_shape=lambda s: (s.patch, s.patch, 3)))
