"""Training losses, chosen by `train.loss`.

Each is a `Component` in LOSSES whose `make(train_cfg)` returns a function (logits,
integer labels) -> per-example loss (float32). A step minimises its batch mean; the
records' train_loss, test_loss and val_loss are means of it too. Register one with
`LOSSES.declare(...)` (docs/extending.md).
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from relgraph_jax import config_fields
from relgraph_jax.registry import Component, Registry

LOSSES: Registry[Component] = Registry("loss")


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


LOSSES.declare(Component("cross_entropy", "softmax cross-entropy: the paper's",
                         lambda train_cfg: cross_entropy))

config_fields.register_config_fields(config_fields.ConfigField(
    "train.loss", "cross_entropy", "training loss (a name in the loss table)",
    config_fields.one_of(LOSSES)))
