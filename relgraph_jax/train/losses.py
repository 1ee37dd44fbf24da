"""Training losses, chosen by `train.loss`.

Each is a `Component` in LOSSES whose `make(train_cfg)` returns a function (logits,
integer labels) -> per-example loss (float32). A step minimises its batch mean; the
records' train_loss, test_loss and val_loss are means of it too. Register one with
`LOSSES.declare(...)` (docs/extending.md).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from relgraph_jax import config_fields
from relgraph_jax.registry import Component, Registry

LOSSES: Registry[Component] = Registry("loss")


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def smoothed_cross_entropy(alpha: float):
    """Cross-entropy against one-hot labels smoothed by `alpha` (optax.smooth_labels: the
    true class 1 - alpha + alpha / K, the others alpha / K), as Transformers train."""
    def loss(logits, labels):
        targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), alpha)
        return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
    return loss


LOSSES.declare(Component("cross_entropy", "softmax cross-entropy: the paper's",
                         lambda train_cfg: cross_entropy))
LOSSES.declare(Component(
    "smoothed_cross_entropy", "softmax cross-entropy against labels smoothed by "
    "`train.label_smoothing`: the Transformer's",
    lambda train_cfg: smoothed_cross_entropy(train_cfg.label_smoothing)))

config_fields.register_config_fields(
    config_fields.ConfigField("train.loss", "cross_entropy",
                              "training loss (a name in the loss table)",
                              config_fields.one_of(LOSSES)),
    config_fields.ConfigField("train.label_smoothing", 0.1, "`smoothed_cross_entropy`: the "
                              "share alpha of each label spread evenly over the classes",
                              config_fields.number("in [0, 1)", lambda v: 0 <= v < 1),
                              inert=lambda flat: flat.get("train.loss", "cross_entropy")
                              != "smoothed_cross_entropy"))
