"""The paper's six model families, built from a config's `model` block and a relational graph.

    model = models.build(config.model, graph, width=None)   # a flax.linen Module
    variables = model.init(key, images, train=False)        # params, batch_stats, masks
    logits = model.apply(variables, images, train=False)

Families: mlp (CIFAR-10), cnn8, resnet34, resnet34sep, resnet50, efficientnet_b0. Graph
layers are relgraph_jax.layers' MaskedDense / MaskedConv, so masks live in the "masks"
collection. Every module takes `widths`, one width per stage as the original code's
width list (DIM_LIST) has them: budget matching chooses them (see docs/models.md). Every
module also lists its weight layers (`layer_list`) for the budget.
"""
from __future__ import annotations

import functools
import numbers
from typing import Any

import flax.linen as nn

from relgraph_jax import relational
from relgraph_jax.graphs import RelationalGraph
from relgraph_jax.models.cnn import CNN
from relgraph_jax.models.common import Layer, scaled
from relgraph_jax.models.efficientnet import EfficientNet
from relgraph_jax.models.mlp import MLP
from relgraph_jax.models.resnet import BOTTLENECK_EXPANSION, ResNet
from relgraph_jax.models.settings import FAMILIES, default_config, settings

__all__ = ["FAMILIES", "CNN", "EfficientNet", "Layer", "MLP", "ResNet", "architecture", "build",
           "check_nodes", "default_config", "default_widths", "layer_list", "settings", "stage_widths", "structure"]

# Channel counts do not depend on the image size, so any image shape checks them.
_PROBE_SHAPE = (32, 32, 3)


def build(model_cfg: Any, graph: Any, width: Any = None) -> nn.Module:
    """The family's Flax module for `graph` (RelationalGraph or spec).

    width: None (the config's widths), a base width (int, scaled by the family's stage
    ratios as `stage_widths` says) or the per-stage widths themselves (a tuple or list).
    Raises ValueError, before anything is initialised, for an unknown family or field, a
    graph whose node count differs from model.nodes, bad widths, or a graph layer with
    fewer channels than nodes whose graph cannot be rebuilt smaller (naming the layer).
    """
    s = settings(model_cfg)
    graph = relational.as_graph(graph)
    check_nodes(s, graph)
    module = _make(s, graph, stage_widths(s, width))
    for layer in module.layer_list(_PROBE_SHAPE):
        if layer.kind == "graph":
            relational.layer_graph(graph, layer.cin, layer.cout, layer=f"{s.name}: layer {layer.path}")
    return module


def check_nodes(model_cfg: Any, graph) -> None:
    """The one check that a graph fits the model's node count (ValueError naming both)."""
    s = settings(model_cfg)
    if graph.n != s.nodes:
        raise ValueError(f"{s.name}: graph {graph.spec} has {graph.n} nodes but "
                         f"config.model.nodes is {s.nodes}; use graphs with that many nodes "
                         "or change config.model.nodes")


def layer_list(model_cfg: Any, graph: Any, width: Any, input_shape) -> tuple[Layer, ...]:
    """Every weight layer of the model at `width` (as `build` takes it) for `input_shape` (H, W, C)."""
    return build(model_cfg, graph, width).layer_list(input_shape)


@functools.lru_cache(maxsize=4096)
def architecture(model_cfg: Any, widths: tuple, input_shape: tuple, complete: bool) -> tuple[Layer, ...]:
    """The weight layers at per-stage `widths` (cached): they depend on the graph only
    through whether it is complete (EfficientNet's expansion rule), not its edges."""
    s = settings(model_cfg)
    probe = RelationalGraph(s.nodes, ()) if not complete else relational.as_graph(f"complete:n={s.nodes}")
    return _make(s, probe, stage_widths(s, widths)).layer_list(input_shape)


def structure(model_cfg: Any, graph: Any, width: Any) -> tuple:
    """What, besides channel counts, decides the model's computation at `width`: the
    shortcut of every ResNet block; EfficientNet's expansion rule and each block's expand
    and skip. Variants can share one zero-padded program only if this is equal."""
    s = settings(model_cfg)
    module = _make(s, relational.as_graph(graph), stage_widths(s, width))
    if isinstance(module, ResNet):
        return tuple(p.shortcut for p in module.blocks())
    if isinstance(module, EfficientNet):
        return (module.expansion,) + tuple((p.expand, p.skip) for p in module.blocks())
    return ()


def stage_widths(model_cfg: Any, width: Any = None) -> tuple[int, ...]:
    """The per-stage widths (the original code's width list) that `width` stands for.

    None: the config's own (model.width scaled by the stage ratios); an int: that base
    width scaled the same way (ResNet-50's base is the inner width, its stages list the
    outputs, 4x; EfficientNet's base is the last stage's width); a sequence: itself.
    """
    s = settings(model_cfg)
    width = s.width if width is None else width
    ratios = _stage_ratios(s)
    if isinstance(width, (tuple, list)):
        widths = tuple(width)
        if len(widths) != len(ratios) or any(
                isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in widths):
            raise ValueError(f"{s.name}: widths must be {len(ratios)} positive integers (one per "
                             f"stage), got {width!r}")
        return tuple(int(w) for w in widths)
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"{s.name}: width must be a positive integer or a tuple of "
                         f"{len(ratios)} stage widths, got {width!r}")
    scale = BOTTLENECK_EXPANSION if s.name == "resnet50" else 1
    return tuple(scale * scaled(int(width), r) for r in ratios)


def default_widths(model_cfg: Any) -> tuple[int, ...]:
    """The config's own per-stage widths: the complete-graph baseline's."""
    return stage_widths(model_cfg, None)


def _stage_ratios(s) -> tuple:
    if s.name == "mlp":
        return (1,)
    if s.name == "efficientnet_b0":
        return tuple(w / s.base_widths[-1] for w in s.base_widths)
    return tuple(s.stage_ratios)


def _make(s, graph, widths: tuple) -> nn.Module:
    common = dict(graph=graph, widths=widths, num_classes=s.num_classes, impl=s.impl,
                  partition=s.partition)
    if s.name == "mlp":
        return MLP(stem_width=s.stem_width, depth=s.depth, **common)
    if s.name == "cnn8":
        return CNN(stem_width=s.stem_width, convs_per_stage=s.convs_per_stage, **common)
    if s.name == "efficientnet_b0":
        return EfficientNet(expansion=_expansion(s, graph), stem_width=s.stem_width,
                            base_widths=s.base_widths, depths=s.depths, kernels=s.kernels,
                            strides=s.strides, expand_ratios=s.expand_ratios,
                            se_ratio=s.se_ratio, head_width=s.head_width,
                            activation=s.activation, **common)
    return ResNet(block=s.block, depths=s.depths, stem_width=s.stem_width,
                  stage1_projection=_stage1_projection(s),
                  zero_init_last_bn=s.zero_init_last_bn, **common)


def _expansion(s, graph) -> str:
    """expansion "graph2nn": the original code's standard B0 for the complete graph (its
    baseline) and per-stage expansion widths for every other graph."""
    if s.expansion != "graph2nn":
        return s.expansion
    return "per_block" if graph.is_complete else "per_stage"


def _stage1_projection(s) -> bool | None:
    """shortcut_rule "per_width": the original code's rule, decided at each width (None);
    "padded_identity": the first block projects iff it does at the config's widths, so
    every budget-matched width has the same layers (narrower variants pad into wider ones)."""
    if s.shortcut_rule == "per_width":
        return None
    return default_widths(s)[0] != s.stem_width
