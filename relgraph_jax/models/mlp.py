"""The paper's 5-layer MLP for CIFAR-10: a dense stem, `depth` graph layers, a dense head."""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn

from relgraph_jax.layers import MaskedDense
from relgraph_jax.models.common import LINEAR_INIT, Layer, batch_norm, image_shape, norm_layer
from relgraph_jax.models.families import Family, common_fields, register_family
from relgraph_jax.models.settings import positive_int
from relgraph_jax.ops import IMPLS
from relgraph_jax.relational import block_graph


class MLP(nn.Module):
    """Flattened image -> dense stem (stem_width) -> depth x [graph layer (width), BN, ReLU] -> head.

    Only the head has a bias. All linear layers, the graph layers included, start from
    N(0, 0.01) as in the original code. `widths` = (d,): the hidden width d that budget
    matching chooses; the stem keeps its fixed width.
    """
    graph: Any
    widths: tuple
    stem_width: int
    depth: int
    num_classes: int
    impl: str
    partition: str

    @nn.compact
    def __call__(self, x, train: bool):
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(self.stem_width, use_bias=False, kernel_init=LINEAR_INIT, name="stem")(x)
        x = nn.relu(batch_norm(train, "stem_bn")(x))
        for i in range(self.depth):
            x = MaskedDense(self.widths[0], block_graph(self.graph, i), impl=self.impl,
                            partition=self.partition,
                            kernel_init=LINEAR_INIT, name=f"graph{i}")(x)
            x = nn.relu(batch_norm(train, f"graph{i}_bn")(x))
        return nn.Dense(self.num_classes, kernel_init=LINEAR_INIT, name="head")(x)

    def stage_widths(self) -> tuple[int, ...]:
        return tuple(self.widths)

    def layer_list(self, input_shape) -> tuple[Layer, ...]:
        features = math.prod(image_shape(input_shape, "mlp"))
        layers = [Layer("stem", "dense", features, self.stem_width),
                  norm_layer("stem_bn", self.stem_width)]
        cin = self.stem_width
        for i in range(self.depth):
            layers += [Layer(f"graph{i}", "graph", cin, self.widths[0], block=i),
                       norm_layer(f"graph{i}_bn", self.widths[0])]
            cin = self.widths[0]
        layers.append(Layer("head", "dense", cin, self.num_classes, bias=True))
        return tuple(layers)


def _check(s) -> None:
    positive_int(s, "stem_width")
    positive_int(s, "depth")


register_family(Family(
    "mlp", "5-layer MLP (CIFAR-10): dense stem (`stem_width`), `depth` graph layers of width "
    "d (BN, ReLU), dense head",
    defaults=dict(nodes=64, width=512, num_classes=10, stem_width=512, depth=3),
    check=_check,
    make=lambda s, graph, widths: MLP(graph=graph, widths=widths, stem_width=s.stem_width,
                                      depth=s.depth, **common_fields(s)),
    stage_ratios=lambda s: (1,),
    tiny=dict(nodes=8, width=16, stem_width=16),
    impls=IMPLS))
