"""ResNet-34, ResNet-34-sep and ResNet-50 for ImageNet, ResNet-20 and ResNet-56 for
CIFAR-10, with relational-graph convs.

Which convs carry the graph (the rest stay dense):
- "basic" (ResNet-34): both 3x3 convs of every block and the 1x1 projection shortcut.
- "separable" (ResNet-34-sep): each 3x3 conv becomes a dense 3x3 depthwise conv followed
  by a graph 1x1 pointwise conv; the projection shortcut is a graph conv too.
- "bottleneck" (ResNet-50): all three convs (1x1, 3x3, 1x1; inner width = output / 4
  rounded half to even as Python's round, stride on the 3x3); the projection shortcut
  stays dense.
The last BatchNorm of every block can start at zero scale (the paper's ImageNet recipe).

The CIFAR ResNets are graph2nn's 6n+2-layer ones: a CIFAR stem (`stem="cifar"`: stride 1,
no pool), three stages of n basic blocks (16, 32, 64 channels at 32, 16, 8 pixels), n = 3
for ResNet-20 and 9 for ResNet-56.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from relgraph_jax.layers import DepthwiseConv, MaskedConv
from relgraph_jax.models.common import (CONV_INIT, LINEAR_INIT, STEMS, Layer, batch_norm,
                                        dense_stem, norm_layer, same_padding, stem_layers,
                                        strided)
from relgraph_jax.models.families import FAMILIES, Family, common_fields, register_family
from relgraph_jax.models.settings import choice, flag, positive_int, sequence
from relgraph_jax.relational import block_graph

BLOCKS = ("basic", "separable", "bottleneck")
BOTTLENECK_EXPANSION = 4
SHORTCUT_RULES = ("per_width", "padded_identity")


def bottleneck_inner(out_width: int) -> int:
    """A bottleneck's inner width: round(output / 4), Python's round as the original code."""
    return max(1, int(round(out_width / BOTTLENECK_EXPANSION)))


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """One residual block: channels in, inner width, channels out, stride, shortcut kind.

    shortcut: "identity", "projection" (1x1 conv + BN) or "pad" (identity with zero
    channels appended, so the block's layers do not depend on its width).
    """
    name: str
    cin: int
    width: int
    cout: int
    stride: int
    shortcut: str
    index: int = 0  # within its stage (a graph per block: its own graph)


class _Block(nn.Module):
    """Fields and the shortcut path shared by the three block types."""
    graph: Any
    plan: BlockPlan
    impl: str
    partition: str
    zero_init_last_bn: bool

    def graph_conv(self, features: int, kernel: int, stride: int, name: str) -> MaskedConv:
        return MaskedConv(features, (kernel, kernel), self.graph, strides=stride,
                          padding=same_padding(kernel), impl=self.impl,
                          partition=self.partition, name=name)

    def shortcut(self, x, train: bool, graph_projection: bool):
        p = self.plan
        if p.shortcut == "identity":
            return x
        if p.shortcut == "pad":
            return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, p.cout - p.cin)])
        if graph_projection:
            x = self.graph_conv(p.cout, 1, p.stride, "proj")(x)
        else:
            x = nn.Conv(p.cout, (1, 1), strides=p.stride, use_bias=False, kernel_init=CONV_INIT,
                        name="proj")(x)
        return batch_norm(train, "proj_bn")(x)


class BasicBlock(_Block):
    """3x3 graph conv, BN, ReLU, 3x3 graph conv, BN; + shortcut; ReLU."""

    @nn.compact
    def __call__(self, x, train: bool):
        p = self.plan
        y = nn.relu(batch_norm(train, "bn1")(self.graph_conv(p.cout, 3, p.stride, "conv1")(x)))
        y = batch_norm(train, "bn2", self.zero_init_last_bn)(self.graph_conv(p.cout, 3, 1, "conv2")(y))
        return nn.relu(y + self.shortcut(x, train, graph_projection=True))


class SeparableBlock(_Block):
    """3x3 depthwise, 1x1 graph conv, BN, ReLU, 3x3 depthwise, 1x1 graph conv, BN; + shortcut; ReLU."""

    @nn.compact
    def __call__(self, x, train: bool):
        p = self.plan
        y = DepthwiseConv((3, 3), strides=p.stride, padding=same_padding(3), name="dw1")(x)
        y = nn.relu(batch_norm(train, "bn1")(self.graph_conv(p.cout, 1, 1, "pw1")(y)))
        y = DepthwiseConv((3, 3), padding=same_padding(3), name="dw2")(y)
        y = batch_norm(train, "bn2", self.zero_init_last_bn)(self.graph_conv(p.cout, 1, 1, "pw2")(y))
        return nn.relu(y + self.shortcut(x, train, graph_projection=True))


class BottleneckBlock(_Block):
    """1x1, 3x3 (strided), 1x1 graph convs with BN (ReLU after the first two); + dense shortcut; ReLU."""

    @nn.compact
    def __call__(self, x, train: bool):
        p = self.plan
        y = nn.relu(batch_norm(train, "bn1")(self.graph_conv(p.width, 1, 1, "conv1")(x)))
        y = nn.relu(batch_norm(train, "bn2")(self.graph_conv(p.width, 3, p.stride, "conv2")(y)))
        y = batch_norm(train, "bn3", self.zero_init_last_bn)(self.graph_conv(p.cout, 1, 1, "conv3")(y))
        return nn.relu(y + self.shortcut(x, train, graph_projection=False))


BLOCK_MODULES = {"basic": BasicBlock, "separable": SeparableBlock, "bottleneck": BottleneckBlock}


def block_layers(block: str, p: BlockPlan, h: int, w: int) -> tuple[list[Layer], int, int]:
    """The weight layers of one block with input size h x w, and its output size."""
    ho, wo = strided(h, p.stride), strided(w, p.stride)

    def conv(name, kind, cin, cout, window, out_hw=(ho, wo)):
        return Layer(f"{p.name}/{name}", kind, cin, cout, window, out_hw, block=p.index)

    def norm(name, channels):
        return norm_layer(f"{p.name}/{name}", channels)

    if block == "basic":
        layers = [conv("conv1", "graph", p.cin, p.cout, 9), norm("bn1", p.cout),
                  conv("conv2", "graph", p.cout, p.cout, 9), norm("bn2", p.cout)]
    elif block == "separable":
        layers = [conv("dw1", "depthwise", p.cin, p.cin, 9),
                  conv("pw1", "graph", p.cin, p.cout, 1), norm("bn1", p.cout),
                  conv("dw2", "depthwise", p.cout, p.cout, 9),
                  conv("pw2", "graph", p.cout, p.cout, 1), norm("bn2", p.cout)]
    else:  # the first 1x1 runs before the strided 3x3, at the input's size
        layers = [conv("conv1", "graph", p.cin, p.width, 1, (h, w)), norm("bn1", p.width),
                  conv("conv2", "graph", p.width, p.width, 9), norm("bn2", p.width),
                  conv("conv3", "graph", p.width, p.cout, 1), norm("bn3", p.cout)]
    if p.shortcut == "projection":
        kind = "dense" if block == "bottleneck" else "graph"
        layers += [conv("proj", kind, p.cin, p.cout, 1), norm("proj_bn", p.cout)]
    return layers, ho, wo


class ResNet(nn.Module):
    """Dense stem_kernel x stem_kernel stem (stem_width; `stem` "imagenet": stride 2 + 3x3
    stride-2 max-pool, "cifar": stride 1, no pool), residual stages, pool, dense head.

    Stage s has depths[s] blocks with output width widths[s] (the original code's
    per-stage widths: for the bottleneck these are the outputs, 4x the inner width); the
    first block of stages after the first has stride 2 and a projection shortcut. `widths`
    is what budget matching chooses; the stem keeps its fixed width. stage1_projection
    decides the shortcut of the very first block, whose input is the stem: None projects
    iff the channel counts differ (the original code); True always projects; False keeps
    an identity, zero-padded to the block's width.
    """
    graph: Any
    widths: tuple
    block: str
    depths: tuple
    stem_width: int
    stem: str
    stem_kernel: int
    stage1_projection: Optional[bool]
    zero_init_last_bn: bool
    num_classes: int
    impl: str
    partition: str

    @nn.compact
    def __call__(self, x, train: bool):
        x = dense_stem(x, self.stem, self.stem_width, self.stem_kernel, train)
        block = BLOCK_MODULES[self.block]
        for p in self.blocks():
            x = block(block_graph(self.graph, p.index), p, impl=self.impl, partition=self.partition,
                      zero_init_last_bn=self.zero_init_last_bn, name=p.name)(x, train)
        x = x.mean(axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=LINEAR_INIT, name="head")(x)

    def stage_widths(self) -> tuple[int, ...]:
        return tuple(self.widths)

    def blocks(self) -> list[BlockPlan]:
        """The plan of every block, in order; raises ValueError for an impossible shortcut."""
        if self.block not in BLOCK_MODULES:
            raise ValueError(f"ResNet: unknown block type {self.block!r}; allowed: {BLOCKS}")
        plans, cin = [], self.stem_width
        for s, (depth, cout) in enumerate(zip(self.depths, self.widths)):
            inner = bottleneck_inner(cout) if self.block == "bottleneck" else cout
            for b in range(depth):
                name = f"stage{s}_block{b}"
                stride = 2 if s > 0 and b == 0 else 1
                if stride != 1:
                    shortcut = "projection"
                elif (s, b) != (0, 0) or self.stage1_projection is None:
                    shortcut = "identity" if cin == cout else "projection"
                elif self.stage1_projection:
                    shortcut = "projection"
                elif cout < cin:
                    raise ValueError(
                        f"ResNet {name}: width {cout} is below the stem's {cin} channels, so an "
                        f"identity shortcut cannot carry them; use a width of at least {cin} or a "
                        "projection shortcut (model shortcut_rule='per_width')")
                else:
                    shortcut = "identity" if cin == cout else "pad"
                plans.append(BlockPlan(name, cin, inner, cout, stride, shortcut, b))
                cin = cout
        return plans

    def layer_list(self, input_shape) -> tuple[Layer, ...]:
        layers, h, w = stem_layers(self.stem, input_shape, self.stem_width, self.stem_kernel,
                                   "resnet")
        plans = self.blocks()
        for p in plans:
            block, h, w = block_layers(self.block, p, h, w)
            layers += block
        layers.append(Layer("head", "dense", plans[-1].cout, self.num_classes, bias=True))
        return tuple(layers)


def _check(s) -> None:
    positive_int(s, "stem_width")
    positive_int(s, "stem_kernel")
    choice(s, "stem", STEMS)
    choice(s, "block", BLOCKS)
    choice(s, "shortcut_rule", SHORTCUT_RULES)
    flag(s, "zero_init_last_bn")
    sequence(s, "depths")
    sequence(s, "stage_ratios", length=len(s["depths"]), integer=False)


def _make(s, graph, widths: tuple) -> ResNet:
    return ResNet(graph=graph, widths=widths, block=s.block, depths=s.depths,
                  stem_width=s.stem_width, stem=s.stem, stem_kernel=s.stem_kernel,
                  stage1_projection=_stage1_projection(s),
                  zero_init_last_bn=s.zero_init_last_bn, **common_fields(s))


def _stage1_projection(s) -> bool | None:
    """shortcut_rule "per_width": the original code's rule, decided at each width (None);
    "padded_identity": the first block projects iff it does at the config's widths, so
    every budget-matched width has the same layers (narrower variants pad into wider ones)."""
    if s.shortcut_rule == "per_width":
        return None
    return FAMILIES[s.name].scaled_widths(s, s.width)[0] != s.stem_width


def _family(name: str, block: str, summary: str, tiny_stem_width: int, **defaults) -> Family:
    """The ResNets differ in their block (ResNet-50 also in what its base width is) and the
    CIFAR ones in depth, widths, stem and classes."""
    defaults = {**dict(nodes=64, width=64, num_classes=1000, block=block, depths=(3, 4, 6, 3),
                       stage_ratios=(1, 2, 4, 8), stem="imagenet", stem_width=64, stem_kernel=7,
                       zero_init_last_bn=True, shortcut_rule="per_width"), **defaults}
    return Family(
        name, summary, defaults=defaults,
        check=_check, make=_make, stage_ratios=lambda s: tuple(s.stage_ratios),
        width_scale=BOTTLENECK_EXPANSION if block == "bottleneck" else 1,
        structure=lambda module: tuple(p.shortcut for p in module.blocks()),
        tiny=dict(nodes=8, width=8, depths=(1,) * len(defaults["depths"]),
                  stem_width=tiny_stem_width))


def _cifar_family(n: int) -> Family:
    """graph2nn's CIFAR ResNet of depth 6n + 2 (MODEL.DEPTH): n basic blocks in each of
    three stages of 16, 32, 64 channels (RGRAPH.DIM_LIST) behind a 3x3 stride-1 stem of
    16. graph2nn's hard-coded ResNet-20 baseline, 40,813,184 FLOPs, is this model's; its
    code at HEAD builds a 7x7 stem of 64 instead (stem_kernel=7, stem_width=64), whose
    complete graph would count 58,131,072. No zero-init of the last BN (BN.ZERO_INIT_FINAL_GAMMA
    stays False in its CIFAR config)."""
    depth = 6 * n + 2
    return _family(f"resnet{depth}", "basic", f"ResNet-{depth} (CIFAR-10): 3x3/1 dense stem of "
                   f"16, no pool; 3 stages of {n} basic blocks, graph layers as ResNet-34",
                   tiny_stem_width=10, num_classes=10, depths=(n, n, n), stage_ratios=(1, 2, 4),
                   width=16, stem="cifar", stem_width=16, stem_kernel=3, zero_init_last_bn=False)


# tiny: a ResNet-34 stem as wide as the first stage would give the complete graph an
# identity shortcut there and its wider matched twin a projection (two model structures,
# two compiled programs); a stem of 10 gives both a projection, so they share one.
register_family(_family("resnet34", "basic", "ResNet-34: 7x7/2 dense stem + max-pool; both 3x3 "
                        "convs of every basic block and the 1x1 projection shortcuts",
                        tiny_stem_width=10))
register_family(_family("resnet34sep", "separable", "ResNet-34-sep: as ResNet-34, each 3x3 conv "
                        "a dense 3x3 depthwise conv + a graph 1x1 pointwise conv",
                        tiny_stem_width=10))
register_family(_family("resnet50", "bottleneck", "ResNet-50: all three convs of every "
                        "bottleneck (projections dense); widths are the stage outputs, inner = "
                        "round(out / 4)", tiny_stem_width=8))
register_family(_cifar_family(3))
register_family(_cifar_family(9))
