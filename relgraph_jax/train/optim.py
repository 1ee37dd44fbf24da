"""Optimisers, chosen by `train.optimizer`; the paper's is SGD with Nesterov momentum.

Each is a `Component` in OPTIMIZERS whose `make(train_cfg, schedule)` returns a function
(learning_rate, weight_decay) -> optax.GradientTransformation, `schedule` being the
multiplier `train.schedule` gives (schedules.py). Base learning rate and weight decay are
injected hyper-parameters so that a hyper-parameter grid can give each variant its own
values inside one vmapped step. Register one with `OPTIMIZERS.declare(...)`, and its own
fields with `config_fields.register_config_fields` (docs/extending.md). Gradient clipping
(`train.clip_norm`, in `make_optimizer`) applies to every optimiser; which parameters
decay (`train.decay`) to those whose `make` passes `decay_mask` to its decay, as the
built-ins do.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from relgraph_jax import config_fields
from relgraph_jax.registry import Component, Registry
from relgraph_jax.train.schedules import make_schedule

OPTIMIZERS: Registry[Component] = Registry("optimizer")

DECAY = ("all", "kernels")
DECAYED_LEAVES = ("kernel", "blocks")  # conv, linear and graph-layer (layers.py) weights


def decay_mask(train_cfg):
    """optax's `mask=` for the weight decay `train.decay` names: None (every parameter, as
    graph2nn) or only the weights, leaving biases, norms and embeddings undecayed as
    Transformers train (a train block without the field, as hand-made in tests: all)."""
    if train_cfg.get("decay", "all") == "all":
        return None
    return lambda params: jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) in DECAYED_LEAVES, params)


def _sgd(train_cfg, schedule):
    """SGD(momentum, nesterov) with coupled L2 weight decay, as PyTorch SGD and the
    original recipe: the decay is added to the gradient before momentum."""
    def sgd(learning_rate, weight_decay):
        return optax.chain(
            optax.add_decayed_weights(weight_decay, decay_mask(train_cfg)),
            optax.trace(decay=train_cfg.momentum, nesterov=train_cfg.nesterov),
            optax.scale_by_schedule(schedule),
            optax.scale(-1.0),
            optax.scale(learning_rate),
        )
    return sgd


def _adamw(train_cfg, schedule):
    """optax's AdamW, as PyTorch's: the decay, decoupled from the moments, is scaled by the
    scheduled learning rate."""
    def adamw(learning_rate, weight_decay):
        return optax.adamw(lambda count: learning_rate * schedule(count),
                           b1=train_cfg.adam_b1, b2=train_cfg.adam_b2, eps=train_cfg.adam_eps,
                           weight_decay=weight_decay, mask=decay_mask(train_cfg))
    return adamw


OPTIMIZERS.declare(Component(
    "sgd", "SGD with momentum (`train.momentum`, `train.nesterov`) and weight decay added to "
    "the gradient, as PyTorch SGD: the paper's", _sgd))
OPTIMIZERS.declare(Component(
    "adamw", "Adam (`train.adam_b1`, `train.adam_b2`, `train.adam_eps`) with decoupled weight "
    "decay times the scheduled rate, as PyTorch/optax AdamW: the Transformer's", _adamw))



def _unless(optimizer: str):
    """An optimiser's own fields change nothing under another one (left out of the identity)."""
    return lambda flat: flat.get("train.optimizer", "sgd") != optimizer


config_fields.register_config_fields(
    config_fields.ConfigField("train.optimizer", "sgd", "optimiser (a name in the optimizer table)",
                              config_fields.one_of(OPTIMIZERS)),
    config_fields.ConfigField("train.momentum", 0.9, "SGD momentum",
                              config_fields.number("in [0, 1)", lambda v: 0 <= v < 1),
                              inert=_unless("sgd")),
    config_fields.ConfigField("train.nesterov", True, "SGD with Nesterov momentum",
                              config_fields.boolean, inert=_unless("sgd")),
    config_fields.ConfigField("train.adam_b1", 0.9, "AdamW: decay of the first moment",
                              config_fields.number("in [0, 1)", lambda v: 0 <= v < 1),
                              inert=_unless("adamw")),
    config_fields.ConfigField("train.adam_b2", 0.999, "AdamW: decay of the second moment",
                              config_fields.number("in [0, 1)", lambda v: 0 <= v < 1),
                              inert=_unless("adamw")),
    config_fields.ConfigField("train.adam_eps", 1e-8, "AdamW: added to the root of the second "
                              "moment", config_fields.number("> 0", lambda v: v > 0),
                              inert=_unless("adamw")),
    config_fields.ConfigField("train.decay", "all", "which parameters weight decay applies to: "
                              "all (graph2nn's) or kernels (conv, linear and graph-layer weights; "
                              "not biases, norms or embeddings, as Transformers train)",
                              config_fields.one_of(DECAY)),
    config_fields.ConfigField("train.clip_norm", 0.0, "clip the gradient to this global norm "
                              "before the optimiser (0 = off)",
                              config_fields.number(">= 0 (0 = off)", lambda v: v >= 0)))


def make_optimizer(train_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
    """The optimiser `train_cfg` names, scaled by its schedule (with its warmup), after the
    clipping `train.clip_norm` asks for, at train.lr and train.weight_decay until
    `set_hyperparams` gives a variant its own. The clipping goes inside the injected
    transformation so that every optimiser's state keeps its hyper-parameters on top."""
    schedule = make_schedule(train_cfg, steps_per_epoch)
    optimizer = OPTIMIZERS[train_cfg.optimizer].make(train_cfg, schedule)
    clip_norm = train_cfg.get("clip_norm", 0)

    def build(learning_rate, weight_decay):
        tx = optimizer(learning_rate, weight_decay)
        return optax.chain(optax.clip_by_global_norm(clip_norm), tx) if clip_norm else tx
    return optax.inject_hyperparams(build)(learning_rate=train_cfg.lr,
                                           weight_decay=train_cfg.weight_decay)


def set_hyperparams(opt_state, learning_rate, weight_decay):
    """Gives one (unbatched) optimiser state its variant's learning rate and weight decay."""
    opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    opt_state.hyperparams["weight_decay"] = jnp.asarray(weight_decay, jnp.float32)
    return opt_state
