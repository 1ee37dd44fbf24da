"""EfficientNet-B0 with relational graphs (16 nodes in the paper) on the 1x1 convs.

The expand and project 1x1 convs of every MBConv block carry the graph; the stem, the
depthwise convs, squeeze-and-excitation and the head stay dense.

Widths: `widths` are the stage output widths (B0's 16, 24, 40, 80, 112, 192, 320 by
default), what budget matching chooses; stem and head keep their fixed widths. The
expansion width of a block follows one of two rules:
- "per_block" (standard B0): the block's input width x the stage's expand ratio;
- "per_stage" (the original code's graph models): B0's own stage width x the expand
  ratio (144, 240, 480, ...) for every block of the stage, whatever `widths` is; a
  stage with ratio 1 has no expansion.
The original code trained the complete-graph baseline as standard B0 and every other
graph "per_stage" (model.expansion="graph2nn" picks this per graph). A block has
an identity skip iff it keeps its input's shape (stride 1, same width), as in B0.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import flax.linen as nn

from relgraph_jax.layers import DepthwiseConv, MaskedConv
from relgraph_jax.models.common import (CONV_INIT, LINEAR_INIT, Layer, batch_norm, image_shape,
                                        norm_layer, same_padding, strided)
from relgraph_jax.models.families import Family, common_fields, register_family
from relgraph_jax.models.settings import choice, fail, positive_int, sequence
from relgraph_jax.relational import block_graph

ACTIVATIONS = {"swish": nn.swish, "relu": nn.relu}
EXPANSIONS = ("per_block", "per_stage")
MODEL_EXPANSIONS = ("graph2nn",) + EXPANSIONS  # what model.expansion may be


@dataclasses.dataclass(frozen=True)
class MBConvPlan:
    """One MBConv block: channels in, expanded, out; kernel, stride; SE width (0: none); skip.

    expand: whether a 1x1 conv expands cin to `expanded` (else expanded == cin).
    """
    name: str
    cin: int
    expand: bool
    expanded: int
    cout: int
    kernel: int
    stride: int
    se: int
    skip: bool
    index: int = 0  # within its stage (a graph per block: its own graph)


class MBConv(nn.Module):
    """[graph 1x1 expand, BN, act], depthwise kxk, BN, act, SE, graph 1x1 project, BN, + skip."""
    graph: Any
    plan: MBConvPlan
    activation: str
    impl: str
    partition: str

    @nn.compact
    def __call__(self, x, train: bool):
        p, act = self.plan, ACTIVATIONS[self.activation]
        y = x
        if p.expand:
            y = MaskedConv(p.expanded, (1, 1), self.graph, impl=self.impl,
                           partition=self.partition, name="expand")(y)
            y = act(batch_norm(train, "expand_bn")(y))
        y = DepthwiseConv((p.kernel, p.kernel), strides=p.stride, padding=same_padding(p.kernel),
                          name="dw")(y)
        y = act(batch_norm(train, "dw_bn")(y))
        if p.se:
            s = y.mean(axis=(1, 2), keepdims=True)
            s = act(nn.Dense(p.se, kernel_init=CONV_INIT, name="se_reduce")(s))
            y = y * nn.sigmoid(nn.Dense(p.expanded, kernel_init=CONV_INIT, name="se_expand")(s))
        y = MaskedConv(p.cout, (1, 1), self.graph, impl=self.impl, partition=self.partition,
                       name="project")(y)
        y = batch_norm(train, "project_bn")(y)
        return x + y if p.skip else y


class EfficientNet(nn.Module):
    """3x3 stride-2 stem, MBConv stages, 1x1 head conv (head_width), pool, dense head.

    base_widths are B0's stage widths, which the "per_stage" expansion rule reads.
    """
    graph: Any
    widths: tuple
    expansion: str
    stem_width: int
    base_widths: tuple
    depths: tuple
    kernels: tuple
    strides: tuple
    expand_ratios: tuple
    se_ratio: float
    head_width: int
    activation: str
    num_classes: int
    impl: str
    partition: str

    @nn.compact
    def __call__(self, x, train: bool):
        act = ACTIVATIONS[self.activation]
        x = nn.Conv(self.stem_width, (3, 3), strides=2, padding=same_padding(3), use_bias=False,
                    kernel_init=CONV_INIT, name="stem")(x)
        x = act(batch_norm(train, "stem_bn")(x))
        for p in self.blocks():
            x = MBConv(block_graph(self.graph, p.index), p, self.activation, impl=self.impl,
                       partition=self.partition,
                       name=p.name)(x, train)
        x = nn.Conv(self.head_width, (1, 1), use_bias=False, kernel_init=CONV_INIT, name="head_conv")(x)
        x = act(batch_norm(train, "head_bn")(x)).mean(axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=LINEAR_INIT, name="head")(x)

    def stage_widths(self) -> tuple[int, ...]:
        return tuple(self.widths)

    def blocks(self) -> list[MBConvPlan]:
        if self.expansion not in EXPANSIONS:
            raise ValueError(f"EfficientNet: unknown expansion rule {self.expansion!r}; "
                             f"allowed: {EXPANSIONS}")
        plans, cin = [], self.stem_width
        stages = zip(self.widths, self.base_widths, self.depths, self.kernels, self.strides,
                     self.expand_ratios)
        for s, (cout, base, depth, kernel, stride, ratio) in enumerate(stages):
            for b in range(depth):
                block_in, block_stride = (cin, stride) if b == 0 else (cout, 1)
                if self.expansion == "per_block" or int(ratio) == 1:
                    expanded = int(block_in * ratio)
                    expand = expanded != block_in
                else:
                    expanded, expand = int(base * ratio), True
                se = max(1, int(block_in * self.se_ratio)) if self.se_ratio > 0 else 0
                plans.append(MBConvPlan(f"stage{s}_block{b}", block_in, expand, expanded, cout,
                                        kernel, block_stride, se,
                                        skip=block_stride == 1 and block_in == cout, index=b))
            cin = cout
        return plans

    def layer_list(self, input_shape) -> tuple[Layer, ...]:
        h, w, c = image_shape(input_shape, "efficientnet")
        h, w = strided(h, 2), strided(w, 2)
        layers = [Layer("stem", "dense", c, self.stem_width, window=9, out_hw=(h, w)),
                  norm_layer("stem_bn", self.stem_width)]
        plans = self.blocks()
        for p in plans:
            path = p.name + "/"
            if p.expand:
                layers += [Layer(path + "expand", "graph", p.cin, p.expanded, 1, (h, w),
                                 block=p.index),
                           norm_layer(path + "expand_bn", p.expanded)]
            h, w = strided(h, p.stride), strided(w, p.stride)
            layers += [Layer(path + "dw", "depthwise", p.expanded, p.expanded, p.kernel ** 2, (h, w)),
                       norm_layer(path + "dw_bn", p.expanded)]
            if p.se:
                layers += [Layer(path + "se_reduce", "dense", p.expanded, p.se, bias=True,
                                 flops_bias=True),
                           Layer(path + "se_expand", "dense", p.se, p.expanded, bias=True,
                                 flops_bias=True)]
            layers += [Layer(path + "project", "graph", p.expanded, p.cout, 1, (h, w),
                             block=p.index),
                       norm_layer(path + "project_bn", p.cout)]
        layers += [Layer("head_conv", "dense", plans[-1].cout, self.head_width, 1, (h, w)),
                   norm_layer("head_bn", self.head_width),
                   Layer("head", "dense", self.head_width, self.num_classes, bias=True)]
        return tuple(layers)


def _check(s) -> None:
    for field in ("stem_width", "head_width"):
        positive_int(s, field)
    choice(s, "activation", tuple(ACTIVATIONS))
    choice(s, "expansion", MODEL_EXPANSIONS)
    sequence(s, "base_widths")
    stages = len(s["base_widths"])
    for field in ("depths", "kernels", "strides"):
        sequence(s, field, length=stages)
    if any(k % 2 == 0 for k in s["kernels"]):
        fail(s, "kernels", s["kernels"], "odd kernel sizes (padding k // 2 keeps the size)")
    sequence(s, "expand_ratios", length=stages, integer=False)
    se = s["se_ratio"]
    if isinstance(se, bool) or not isinstance(se, numbers.Real) or not 0 <= se <= 1:
        fail(s, "se_ratio", se, "a number in [0, 1] (0: no squeeze-and-excitation)")


def _make(s, graph, widths: tuple) -> EfficientNet:
    return EfficientNet(graph=graph, widths=widths, expansion=_expansion(s, graph),
                        stem_width=s.stem_width, base_widths=s.base_widths, depths=s.depths,
                        kernels=s.kernels, strides=s.strides, expand_ratios=s.expand_ratios,
                        se_ratio=s.se_ratio, head_width=s.head_width, activation=s.activation,
                        **common_fields(s))


def _expansion(s, graph) -> str:
    """expansion "graph2nn": the original code's standard B0 for the complete graph (its
    baseline) and per-stage expansion widths for every other graph."""
    if s.expansion != "graph2nn":
        return s.expansion
    return "per_block" if graph.is_complete else "per_stage"


# tiny: three stages, whose widths stay at their base widths as B0's do (the expansion
# widths of its graph models follow the base widths).
register_family(Family(
    "efficientnet_b0", "EfficientNet-B0: the expand and project 1x1 convs of every MBConv "
    "block; 3x3/2 stem, depthwise convs, SE and the 1x1 head conv (`head_width`) dense",
    defaults=dict(nodes=16, width=320, num_classes=1000, stem_width=32,
                  base_widths=(16, 24, 40, 80, 112, 192, 320), depths=(1, 2, 2, 3, 3, 4, 1),
                  kernels=(3, 3, 5, 3, 5, 5, 3), strides=(1, 2, 2, 2, 1, 2, 1),
                  expand_ratios=(1, 6, 6, 6, 6, 6, 6), se_ratio=0.25, head_width=1280,
                  activation="swish", expansion="graph2nn"),
    check=_check, make=_make,
    stage_ratios=lambda s: tuple(w / s.base_widths[-1] for w in s.base_widths),
    structure=lambda module: (module.expansion,) + tuple((p.expand, p.skip)
                                                         for p in module.blocks()),
    tiny=dict(nodes=6, width=40, stem_width=8, head_width=16, base_widths=(16, 24, 40),
              depths=(1, 1, 1), kernels=(3, 3, 5), strides=(1, 2, 2), expand_ratios=(1, 6, 6))))
