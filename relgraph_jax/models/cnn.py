"""The paper's 8-layer CNN for ImageNet: dense stem, 3 stages of graph 3x3 convs, dense head."""
from __future__ import annotations

from typing import Any

import flax.linen as nn

from relgraph_jax.layers import MaskedConv
from relgraph_jax.models.common import (LINEAR_INIT, Layer, batch_norm, image_shape,
                                        norm_layer, pooled_stem, same_padding, strided)
from relgraph_jax.models.families import Family, common_fields, register_family
from relgraph_jax.models.settings import positive_int, sequence


class CNN(nn.Module):
    """3x3 stride-2 stem (stem_width) + 3x3 stride-2 max-pool, then per stage
    convs_per_stage x [graph 3x3 conv, BN, ReLU] (the first of each stage at stride 2),
    global average pool and a dense head with bias.

    `widths` are the stage widths (64/128/256 in the paper), what budget matching
    chooses; the stem keeps its fixed width.
    """
    graph: Any
    widths: tuple
    stem_width: int
    convs_per_stage: int
    num_classes: int
    impl: str
    partition: str

    @nn.compact
    def __call__(self, x, train: bool):
        x = pooled_stem(x, self.stem_width, 3, train)
        for name, features, stride in self._convs():
            x = MaskedConv(features, (3, 3), self.graph, strides=stride, padding=same_padding(3),
                           impl=self.impl, partition=self.partition, name=name)(x)
            x = nn.relu(batch_norm(train, f"{name}_bn")(x))
        x = x.mean(axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=LINEAR_INIT, name="head")(x)

    def stage_widths(self) -> tuple[int, ...]:
        return tuple(self.widths)

    def _convs(self):
        """(name, output channels, stride) of every graph conv, in order."""
        return [(f"stage{s}_conv{j}", features, 2 if j == 0 else 1)
                for s, features in enumerate(self.stage_widths())
                for j in range(self.convs_per_stage)]

    def layer_list(self, input_shape) -> tuple[Layer, ...]:
        h, w, c = image_shape(input_shape, "cnn8")
        h, w = strided(h, 2), strided(w, 2)
        layers = [Layer("stem", "dense", c, self.stem_width, window=9, out_hw=(h, w)),
                  norm_layer("stem_bn", self.stem_width)]
        h, w = strided(h, 2), strided(w, 2)  # max-pool
        cin = self.stem_width
        for name, features, stride in self._convs():
            h, w = strided(h, stride), strided(w, stride)
            layers += [Layer(name, "graph", cin, features, window=9, out_hw=(h, w)),
                       norm_layer(f"{name}_bn", features)]
            cin = features
        layers.append(Layer("head", "dense", cin, self.num_classes, bias=True))
        return tuple(layers)


def _check(s) -> None:
    positive_int(s, "stem_width")
    positive_int(s, "convs_per_stage")
    sequence(s, "stage_ratios", integer=False)


register_family(Family(
    "cnn8", "8-layer CNN: 3x3/2 dense stem + max-pool, `convs_per_stage` graph 3x3 convs per "
    "stage (the first of each stride 2), dense head",
    defaults=dict(nodes=64, width=64, num_classes=1000, stem_width=64, stage_ratios=(1, 2, 4),
                  convs_per_stage=2),
    check=_check,
    make=lambda s, graph, widths: CNN(graph=graph, widths=widths, stem_width=s.stem_width,
                                      convs_per_stage=s.convs_per_stage, **common_fields(s)),
    stage_ratios=lambda s: tuple(s.stage_ratios),
    tiny=dict(nodes=8, width=8, stem_width=8)))
