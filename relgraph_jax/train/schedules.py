"""Learning-rate schedules, chosen by `train.schedule`: a multiplier of the base rate.

Each is a `Component` in SCHEDULES whose `make(train_cfg, steps_per_epoch)` returns a
function of the step count (a traced jax integer) to the multiplier of train.lr (and of
each grid learning rate) at that step. Register one with `SCHEDULES.declare(...)`
(docs/extending.md).
"""
from __future__ import annotations

import jax.numpy as jnp

from relgraph_jax import config_fields
from relgraph_jax.registry import Component, Registry

SCHEDULES: Registry[Component] = Registry("learning-rate schedule")


def epoch_cosine(steps_per_epoch: int, epochs: int):
    """Multiplier 0.5 * (1 + cos(pi * epoch / epochs)), constant within an epoch."""
    def schedule(count):
        epoch = jnp.floor_divide(count, steps_per_epoch)
        return 0.5 * (1.0 + jnp.cos(jnp.pi * epoch / epochs))
    return schedule


SCHEDULES.declare(Component(
    "cosine", "0.5 (1 + cos(pi epoch / epochs)), set once per epoch: the paper's",
    lambda train_cfg, steps_per_epoch: epoch_cosine(steps_per_epoch, train_cfg.epochs)))

config_fields.register_config_fields(config_fields.ConfigField(
    "train.schedule", "cosine", "learning-rate schedule (a name in the schedule table)",
    config_fields.one_of(SCHEDULES)))
