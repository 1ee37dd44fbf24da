"""The paper's six model families, built from a config's `model` block and a relational graph.

    model = models.build(config.model, graph, width=None)   # a flax.linen Module
    variables = model.init(key, images, train=False)        # params, batch_stats, masks
    logits = model.apply(variables, images, train=False)

Families: mlp (CIFAR-10), cnn8, resnet34, resnet34sep, resnet50, efficientnet_b0. Graph
layers are relgraph_jax.layers' MaskedDense / MaskedConv, so masks live in the "masks"
collection. `width` is the base width budget matching chooses (see each family and
docs/models.md); every module also lists its weight layers (`layer_list`) for the budget.
"""
from __future__ import annotations

import numbers
from typing import Any

import flax.linen as nn

from relgraph_jax import relational
from relgraph_jax.models.cnn import CNN
from relgraph_jax.models.common import Layer, scaled
from relgraph_jax.models.efficientnet import EfficientNet
from relgraph_jax.models.mlp import MLP
from relgraph_jax.models.resnet import BOTTLENECK_EXPANSION, ResNet
from relgraph_jax.models.settings import FAMILIES, default_config, settings

__all__ = ["FAMILIES", "CNN", "EfficientNet", "Layer", "MLP", "ResNet", "build", "default_config",
           "layer_list", "settings"]

# Channel counts do not depend on the image size, so any image shape checks them.
_PROBE_SHAPE = (32, 32, 3)


def build(model_cfg: Any, graph: Any, width: int | None = None) -> nn.Module:
    """The family's Flax module for `graph` (RelationalGraph or spec) at base `width`.

    Raises ValueError, before anything is initialised, for an unknown family or field, a
    graph whose node count differs from model.nodes, or a graph layer with fewer channels
    than the graph has nodes (naming the layer).
    """
    s = settings(model_cfg)
    graph = relational.as_graph(graph)
    if graph.n != s.nodes:
        raise ValueError(f"{s.name}: graph has {graph.n} nodes but config.model.nodes is {s.nodes}")
    width = s.width if width is None else width
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"{s.name}: width must be a positive integer, got {width!r}")
    module = _make(s, graph, int(width))
    _check_graph_channels(s.name, module.layer_list(_PROBE_SHAPE), graph.n)
    return module


def layer_list(model_cfg: Any, graph: Any, width: int, input_shape) -> tuple[Layer, ...]:
    """Every weight layer of the model at `width` for images of `input_shape` (H, W, C)."""
    return build(model_cfg, graph, width).layer_list(input_shape)


def _make(s, graph, width: int) -> nn.Module:
    common = dict(graph=graph, width=width, num_classes=s.num_classes, impl=s.impl,
                  partition=s.partition)
    if s.name == "mlp":
        return MLP(stem_width=s.stem_width, depth=s.depth, **common)
    if s.name == "cnn8":
        return CNN(stem_width=s.stem_width, stage_ratios=s.stage_ratios,
                   convs_per_stage=s.convs_per_stage, **common)
    if s.name == "efficientnet_b0":
        return EfficientNet(stem_width=s.stem_width, base_widths=s.base_widths, depths=s.depths,
                            kernels=s.kernels, strides=s.strides, expand_ratios=s.expand_ratios,
                            se_ratio=s.se_ratio, head_width=s.head_width,
                            activation=s.activation, **common)
    return ResNet(block=s.block, depths=s.depths, stage_ratios=s.stage_ratios,
                  stem_width=s.stem_width, stage1_projection=_stage1_projection(s),
                  zero_init_last_bn=s.zero_init_last_bn, **common)


def _stage1_projection(s) -> bool | None:
    """shortcut_rule "reference": the first block projects iff it does at the config's width,
    so every budget-matched width has the same layers (narrower variants pad into wider
    ones); "per_width": the original code's rule, decided at each width (None)."""
    if s.shortcut_rule == "per_width":
        return None
    expansion = BOTTLENECK_EXPANSION if s.block == "bottleneck" else 1
    return expansion * scaled(s.width, s.stage_ratios[0]) != s.stem_width


def _check_graph_channels(name: str, layers, nodes: int) -> None:
    for layer in layers:
        if layer.kind != "graph":
            continue
        for side, channels in (("input", layer.cin), ("output", layer.cout)):
            if channels < nodes:
                raise ValueError(
                    f"{name}: layer {layer.path} has {channels} {side} channels, fewer than the "
                    f"graph's {nodes} nodes (each node needs at least one channel); use a larger "
                    "width or a graph with fewer nodes")
