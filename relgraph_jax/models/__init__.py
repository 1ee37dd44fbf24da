"""Model families, built from a config's `model` block and a relational graph.

    model = models.build(config.model, graph, width=None)   # a flax.linen Module
    variables = model.init(key, images, train=False)        # params, batch_stats, masks
    logits = model.apply(variables, images, train=False)

The families are the registry `FAMILIES` (models/families.py): the paper's, the CIFAR
families graph2nn adds and a Vision Transformer, each
registered by its own module, and any a user's module registers. Graph layers are
relgraph_jax.layers' MaskedDense / MaskedConv, so masks live in the "masks" collection.
Every module takes `widths`, one width per stage as the original code's width list
(DIM_LIST) has them: budget matching chooses them (see docs/models.md). Every module also
lists its weight layers (`layer_list`) for the budget.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from relgraph_jax import relational
from relgraph_jax.graphs import RelationalGraph
from relgraph_jax.models.common import Layer
from relgraph_jax.models.families import FAMILIES, Family, register_family
# Importing a family's module registers it; this order is the listing's.
from relgraph_jax.models.mlp import MLP
from relgraph_jax.models.cnn import CNN
from relgraph_jax.models.resnet import ResNet
from relgraph_jax.models.efficientnet import EfficientNet
from relgraph_jax.models.vit import ViT
from relgraph_jax.models.settings import default_config, settings

__all__ = ["FAMILIES", "CNN", "EfficientNet", "Family", "Layer", "MLP", "ResNet", "ViT",
           "architecture", "build", "check_layer_list", "check_nodes", "default_config",
           "default_widths", "has_graph_layers", "layer_list", "register_family", "settings",
           "stage_widths", "structure"]


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
    family = FAMILIES[s.name]
    module = family.make(s, graph, stage_widths(s, width))
    for layer in module.layer_list(family.probe_shape(s)):
        if layer.kind == "graph":
            relational.layer_graph(graph, layer.cin, layer.cout, layer=f"{s.name}: layer {layer.path}")
    return module


def has_graph_layers(model_cfg: Any) -> bool:
    """Whether any layer follows the graph (a ViT with graph_layers="none" has none, so
    every graph gives it the same model)."""
    s = settings(model_cfg)
    layers = architecture(s, default_widths(s), FAMILIES[s.name].probe_shape(s), True)
    return any(layer.kind == "graph" for layer in layers)


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
    through whether it is complete (a family may build its complete-graph baseline
    differently), not its edges."""
    s = settings(model_cfg)
    probe = RelationalGraph(s.nodes, ()) if not complete else relational.as_graph(f"complete:n={s.nodes}")
    return FAMILIES[s.name].make(s, probe, stage_widths(s, widths)).layer_list(input_shape)


def structure(model_cfg: Any, graph: Any, width: Any) -> tuple:
    """What, besides channel counts, decides the model's computation at `width` (the
    family's `structure` of its module, e.g. each residual block's shortcut). Variants can
    share one zero-padded program only if this is equal."""
    s = settings(model_cfg)
    family = FAMILIES[s.name]
    return family.structure(family.make(s, relational.as_graph(graph), stage_widths(s, width)))


def stage_widths(model_cfg: Any, width: Any = None) -> tuple[int, ...]:
    """The per-stage widths (the original code's width list) that `width` stands for.

    None: the config's own (model.width scaled by the family's stage ratios and width
    scale); an int: that base width scaled the same way; a sequence: itself.
    """
    s = settings(model_cfg)
    family = FAMILIES[s.name]
    width = s.width if width is None else width
    ratios = family.stage_ratios(s)
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
    return family.scaled_widths(s, int(width))


def default_widths(model_cfg: Any) -> tuple[int, ...]:
    """The config's own per-stage widths: the complete-graph baseline's."""
    return stage_widths(model_cfg, None)


@functools.lru_cache(maxsize=None)
def check_layer_list(name: str) -> None:
    """A family's contract, checked once per process before its first sweep: at its tiny
    setting, `layer_list` counts every parameter `init` creates. Budget matching, padding
    and the memory estimate are counted from it, so a layer it left out would make them
    silently wrong. Traces the model's shapes only (a fraction of a second)."""
    from relgraph_jax import budget  # it imports this module
    cfg = default_config(name)
    cfg.update(FAMILIES[name].tiny)
    s = settings(cfg)
    graph = relational.as_graph(f"complete:n={s.nodes}")
    module = build(s, graph)
    probe = FAMILIES[name].probe_shape(s)
    shapes = jax.eval_shape(lambda x: module.init(jax.random.key(0), x, train=False),
                            jnp.zeros((1,) + probe))
    created = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes["params"]))
    counted = budget.count(s, graph, None, probe).params
    if created != counted:
        raise ValueError(f"model family {name!r}: its layer_list counts {counted:,} parameters at "
                         f"its tiny setting but init creates {created:,}; layer_list must name "
                         "every weight layer with the shapes the module builds (docs/extending.md)")
