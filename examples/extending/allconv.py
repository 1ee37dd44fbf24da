"""A model family of one's own: a small all-convolutional net (after Springenberg et al.,
"Striving for Simplicity", 2015), model.name="allconv".

No pooling and no dense layer: a dense 3x3 stem, then per stage a graph 3x3 conv at
stride 2 (it replaces pooling) and a graph 3x3 conv at stride 1, each with BatchNorm and
ReLU, and a 1x1 conv to the classes averaged over the image. `layer_list` names every
weight layer with the shapes the module builds, which is all budget matching, padding and
the memory estimate need.
"""
from typing import Any

import flax.linen as nn

from relgraph_jax.layers import MaskedConv
from relgraph_jax.models.common import (CONV_INIT, Layer, batch_norm, image_shape, norm_layer,
                                        same_padding, strided)
from relgraph_jax.models.families import Family, common_fields, register_family
from relgraph_jax.models.settings import positive_int, sequence


class AllConv(nn.Module):
    graph: Any
    widths: tuple  # one per stage: what budget matching chooses
    stem_width: int
    num_classes: int
    impl: str
    partition: str

    def _convs(self):
        """(name, output channels, stride) of every graph conv, in order."""
        return [(f"stage{s}_conv{j}", width, 2 - j)
                for s, width in enumerate(self.widths) for j in range(2)]

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(self.stem_width, (3, 3), padding=same_padding(3), use_bias=False,
                    kernel_init=CONV_INIT, name="stem")(x)
        x = nn.relu(batch_norm(train, "stem_bn")(x))
        for name, width, stride in self._convs():
            x = MaskedConv(width, (3, 3), self.graph, strides=stride, padding=same_padding(3),
                           impl=self.impl, partition=self.partition, name=name)(x)
            x = nn.relu(batch_norm(train, f"{name}_bn")(x))
        x = nn.Conv(self.num_classes, (1, 1), kernel_init=CONV_INIT, name="head")(x)
        return x.mean(axis=(1, 2))

    def layer_list(self, input_shape) -> tuple[Layer, ...]:
        h, w, c = image_shape(input_shape, "allconv")
        layers = [Layer("stem", "dense", c, self.stem_width, window=9, out_hw=(h, w)),
                  norm_layer("stem_bn", self.stem_width)]
        cin = self.stem_width
        for name, width, stride in self._convs():
            h, w = strided(h, stride), strided(w, stride)
            layers += [Layer(name, "graph", cin, width, window=9, out_hw=(h, w)),
                       norm_layer(f"{name}_bn", width)]
            cin = width
        layers.append(Layer("head", "dense", cin, self.num_classes, out_hw=(h, w), bias=True))
        return tuple(layers)


def _check(s) -> None:
    positive_int(s, "stem_width")
    sequence(s, "stage_ratios", integer=False)


ALLCONV = register_family(Family(
    "allconv", "all-convolutional net: dense 3x3 stem, per stage a graph 3x3 conv at stride "
    "2 and one at stride 1, 1x1 conv head averaged (no pooling, no dense layer)",
    defaults=dict(nodes=16, width=32, num_classes=10, stem_width=32, stage_ratios=(1, 2, 4)),
    check=_check,
    make=lambda s, graph, widths: AllConv(graph=graph, widths=widths, stem_width=s.stem_width,
                                          **common_fields(s)),
    stage_ratios=lambda s: tuple(s.stage_ratios),
    tiny=dict(nodes=8, width=8, stem_width=8)))
