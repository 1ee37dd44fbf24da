"""Optimisers, chosen by `train.optimizer`; the paper's is SGD with Nesterov momentum.

Each is a `Component` in OPTIMIZERS whose `make(train_cfg, schedule)` returns a function
(learning_rate, weight_decay) -> optax.GradientTransformation, `schedule` being the
multiplier `train.schedule` gives (schedules.py). Base learning rate and weight decay are
injected hyper-parameters so that a hyper-parameter grid can give each variant its own
values inside one vmapped step. Register one with `OPTIMIZERS.declare(...)`, and its own
fields with `config_fields.register_config_fields` (docs/extending.md).
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from relgraph_jax import config_fields
from relgraph_jax.registry import Component, Registry
from relgraph_jax.train.schedules import make_schedule

OPTIMIZERS: Registry[Component] = Registry("optimizer")


def _sgd(train_cfg, schedule):
    """SGD(momentum, nesterov) with coupled L2 weight decay, as PyTorch SGD and the
    original recipe: the decay is added to the gradient before momentum."""
    def sgd(learning_rate, weight_decay):
        return optax.chain(
            optax.add_decayed_weights(weight_decay),
            optax.trace(decay=train_cfg.momentum, nesterov=train_cfg.nesterov),
            optax.scale_by_schedule(schedule),
            optax.scale(-1.0),
            optax.scale(learning_rate),
        )
    return sgd


OPTIMIZERS.declare(Component(
    "sgd", "SGD with momentum (`train.momentum`, `train.nesterov`) and weight decay added to "
    "the gradient, as PyTorch SGD: the paper's", _sgd))

config_fields.register_config_fields(
    config_fields.ConfigField("train.optimizer", "sgd", "optimiser (a name in the optimizer table)",
                              config_fields.one_of(OPTIMIZERS)),
    config_fields.ConfigField("train.momentum", 0.9, "SGD momentum",
                              config_fields.number("in [0, 1)", lambda v: 0 <= v < 1)),
    config_fields.ConfigField("train.nesterov", True, "SGD with Nesterov momentum",
                              config_fields.boolean))


def make_optimizer(train_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
    """The optimiser `train_cfg` names, scaled by its schedule (with its warmup), at train.lr
    and train.weight_decay until `set_hyperparams` gives a variant its own."""
    schedule = make_schedule(train_cfg, steps_per_epoch)
    build = OPTIMIZERS[train_cfg.optimizer].make(train_cfg, schedule)
    return optax.inject_hyperparams(build)(learning_rate=train_cfg.lr,
                                           weight_decay=train_cfg.weight_decay)


def set_hyperparams(opt_state, learning_rate, weight_decay):
    """Gives one (unbatched) optimiser state its variant's learning rate and weight decay."""
    opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    opt_state.hyperparams["weight_decay"] = jnp.asarray(weight_decay, jnp.float32)
    return opt_state
