"""EfficientNet-B0 with relational graphs (16 nodes in the paper) on the 1x1 convs.

The expand and project 1x1 convs of every MBConv block carry the graph; the stem, the
depthwise convs, squeeze-and-excitation and the head stay dense.

Width rule: `width` is the last stage's width (320 for B0) and every stage keeps its B0
ratio to it, rounded to whole channels: stage i has round(base_widths[i] * width /
base_widths[-1]) channels, base_widths being B0's (16, 24, 40, 80, 112, 192, 320). One
step of `width` is then the finest change that keeps the ratios, so budget matching can
land within one channel of the last stage. Expansion widths follow the block's input
(input x expand ratio, as in B0); stem and head keep their fixed widths.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn

from relgraph_jax.layers import DepthwiseConv, MaskedConv
from relgraph_jax.models.common import (CONV_INIT, LINEAR_INIT, Layer, batch_norm, image_shape,
                                        norm_layer, same_padding, scaled, strided)

ACTIVATIONS = {"swish": nn.swish, "relu": nn.relu}


@dataclasses.dataclass(frozen=True)
class MBConvPlan:
    """One MBConv block: channels in, expanded, out; kernel, stride; SE width (0: none); skip."""
    name: str
    cin: int
    expanded: int
    cout: int
    kernel: int
    stride: int
    se: int
    skip: bool


class MBConv(nn.Module):
    """[graph 1x1 expand, BN, act], depthwise kxk, BN, act, SE, graph 1x1 project, BN, + skip."""
    graph: Any
    plan: MBConvPlan
    activation: str = "swish"
    impl: str = "mask"
    partition: str = "contiguous"

    @nn.compact
    def __call__(self, x, train: bool):
        p, act = self.plan, ACTIVATIONS[self.activation]
        y = x
        if p.expanded != p.cin:
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

    A block keeps an identity skip iff it is not the first of its stage (B0's rule: only
    those keep their input's shape), so the layers do not depend on `width`.
    """
    graph: Any
    width: int = 320
    stem_width: int = 32
    base_widths: tuple = (16, 24, 40, 80, 112, 192, 320)
    depths: tuple = (1, 2, 2, 3, 3, 4, 1)
    kernels: tuple = (3, 3, 5, 3, 5, 5, 3)
    strides: tuple = (1, 2, 2, 2, 1, 2, 1)
    expand_ratios: tuple = (1, 6, 6, 6, 6, 6, 6)
    se_ratio: float = 0.25
    head_width: int = 1280
    activation: str = "swish"
    num_classes: int = 1000
    impl: str = "mask"
    partition: str = "contiguous"

    @nn.compact
    def __call__(self, x, train: bool):
        act = ACTIVATIONS[self.activation]
        x = nn.Conv(self.stem_width, (3, 3), strides=2, padding=same_padding(3), use_bias=False,
                    kernel_init=CONV_INIT, name="stem")(x)
        x = act(batch_norm(train, "stem_bn")(x))
        for p in self.blocks():
            x = MBConv(self.graph, p, self.activation, impl=self.impl, partition=self.partition,
                       name=p.name)(x, train)
        x = nn.Conv(self.head_width, (1, 1), use_bias=False, kernel_init=CONV_INIT, name="head_conv")(x)
        x = act(batch_norm(train, "head_bn")(x)).mean(axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=LINEAR_INIT, name="head")(x)

    def stage_widths(self) -> tuple[int, ...]:
        return tuple(scaled(self.width, w / self.base_widths[-1]) for w in self.base_widths)

    def blocks(self) -> list[MBConvPlan]:
        plans, cin = [], self.stem_width
        stages = zip(self.stage_widths(), self.depths, self.kernels, self.strides, self.expand_ratios)
        for s, (cout, depth, kernel, stride, ratio) in enumerate(stages):
            for b in range(depth):
                block_in = cin if b == 0 else cout
                se = max(1, int(block_in * self.se_ratio)) if self.se_ratio > 0 else 0
                plans.append(MBConvPlan(f"stage{s}_block{b}", block_in, scaled(block_in, ratio), cout,
                                        kernel, stride if b == 0 else 1, se, skip=b > 0))
            cin = cout
        return plans

    def layer_list(self, input_shape) -> tuple[Layer, ...]:
        h, w, c = image_shape(input_shape, "efficientnet")
        h, w = strided(h, 2), strided(w, 2)
        layers = [Layer("stem", "dense", c, self.stem_width, window=9, positions=h * w),
                  norm_layer("stem_bn", self.stem_width)]
        plans = self.blocks()
        for p in plans:
            path = p.name + "/"
            if p.expanded != p.cin:
                layers += [Layer(path + "expand", "graph", p.cin, p.expanded, 1, h * w),
                           norm_layer(path + "expand_bn", p.expanded)]
            h, w = strided(h, p.stride), strided(w, p.stride)
            layers += [Layer(path + "dw", "depthwise", p.expanded, p.expanded, p.kernel ** 2, h * w),
                       norm_layer(path + "dw_bn", p.expanded)]
            if p.se:
                layers += [Layer(path + "se_reduce", "dense", p.expanded, p.se, bias=True),
                           Layer(path + "se_expand", "dense", p.se, p.expanded, bias=True)]
            layers += [Layer(path + "project", "graph", p.expanded, p.cout, 1, h * w),
                       norm_layer(path + "project_bn", p.cout)]
        layers += [Layer("head_conv", "dense", plans[-1].cout, self.head_width, 1, h * w),
                   norm_layer("head_bn", self.head_width),
                   Layer("head", "dense", self.head_width, self.num_classes, bias=True)]
        return tuple(layers)
