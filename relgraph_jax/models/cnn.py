"""The paper's 8-layer CNN: dense stem, 3 stages of graph 3x3 convs, dense head.

Two families: `cnn8`, the paper's ImageNet model, and `cnn_cifar`, graph2nn's CIFAR-10
test bed, the same network behind the CIFAR stem (graph2nn's RGRAPH.STEM_MODE "default":
3x3 stride-1 conv, no pool), so its stages run at 16, 8 and 4 pixels.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn

from relgraph_jax.layers import MaskedConv
from relgraph_jax.models.common import (LINEAR_INIT, STEMS, Layer, batch_norm, dense_stem,
                                        norm_layer, same_padding, stem_layers, strided)
from relgraph_jax.models.families import Family, common_fields, register_family
from relgraph_jax.models.settings import choice, positive_int, sequence
from relgraph_jax.relational import block_graph


class CNN(nn.Module):
    """3x3 dense stem (stem_width; `stem` "imagenet": stride 2 + 3x3 stride-2 max-pool,
    "cifar": stride 1, no pool), then per stage convs_per_stage x [graph 3x3 conv, BN,
    ReLU] (the first of each stage at stride 2), global average pool and a dense head with
    bias.

    `widths` are the stage widths (64/128/256 in the paper), what budget matching
    chooses; the stem keeps its fixed width.
    """
    graph: Any
    widths: tuple
    stem_width: int
    stem: str
    convs_per_stage: int
    num_classes: int
    impl: str
    partition: str

    @nn.compact
    def __call__(self, x, train: bool):
        x = dense_stem(x, self.stem, self.stem_width, 3, train)
        for name, features, stride, block in self._convs():
            x = MaskedConv(features, (3, 3), block_graph(self.graph, block), strides=stride,
                           padding=same_padding(3),
                           impl=self.impl, partition=self.partition, name=name)(x)
            x = nn.relu(batch_norm(train, f"{name}_bn")(x))
        x = x.mean(axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=LINEAR_INIT, name="head")(x)

    def stage_widths(self) -> tuple[int, ...]:
        return tuple(self.widths)

    def _convs(self):
        """(name, output channels, stride, block index) of every graph conv, in order: each
        conv is a block of its stage (graph2nn's CNN stages)."""
        return [(f"stage{s}_conv{j}", features, 2 if j == 0 else 1, j)
                for s, features in enumerate(self.stage_widths())
                for j in range(self.convs_per_stage)]

    def layer_list(self, input_shape) -> tuple[Layer, ...]:
        layers, h, w = stem_layers(self.stem, input_shape, self.stem_width, 3, "cnn")
        cin = self.stem_width
        for name, features, stride, block in self._convs():
            h, w = strided(h, stride), strided(w, stride)
            layers += [Layer(name, "graph", cin, features, window=9, out_hw=(h, w), block=block),
                       norm_layer(f"{name}_bn", features)]
            cin = features
        layers.append(Layer("head", "dense", cin, self.num_classes, bias=True))
        return tuple(layers)


def _check(s) -> None:
    positive_int(s, "stem_width")
    positive_int(s, "convs_per_stage")
    choice(s, "stem", STEMS)
    sequence(s, "stage_ratios", integer=False)


def _family(name: str, summary: str, **defaults) -> Family:
    """The two CNNs differ in their stem and classes only."""
    return Family(
        name, summary,
        defaults=dict(nodes=64, width=64, stem_width=64, stage_ratios=(1, 2, 4),
                      convs_per_stage=2, **defaults),
        check=_check,
        make=lambda s, graph, widths: CNN(graph=graph, widths=widths, stem_width=s.stem_width,
                                          stem=s.stem, convs_per_stage=s.convs_per_stage,
                                          **common_fields(s)),
        stage_ratios=lambda s: tuple(s.stage_ratios),
        tiny=dict(nodes=8, width=8, stem_width=8))


register_family(_family(
    "cnn8", "8-layer CNN: 3x3/2 dense stem + max-pool, `convs_per_stage` graph 3x3 convs per "
    "stage (the first of each stride 2), dense head", num_classes=1000, stem="imagenet"))
# graph2nn's CIFAR CNN with its "64d" widths and 6 graph convs (MODEL.LAYERS 6): its
# hard-coded complete-graph baseline, 48,957,952 FLOPs, is this model's.
register_family(_family(
    "cnn_cifar", "8-layer CNN for CIFAR-10 (graph2nn's): as `cnn8` behind the 3x3/1 CIFAR "
    "stem (no pool)", num_classes=10, stem="cifar"))
