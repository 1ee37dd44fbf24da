"""The paper's optimiser: SGD with Nesterov momentum, weight decay, cosine learning rate.

Follows the original recipe's semantics: weight decay is added to the gradient before
momentum (PyTorch SGD), and the cosine learning rate is set once per epoch. Base learning
rate and weight decay are injected hyper-parameters so that a hyper-parameter grid can
give each variant its own values inside one vmapped step.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax


def epoch_cosine(steps_per_epoch: int, epochs: int):
    """Multiplier 0.5 * (1 + cos(pi * epoch / epochs)), constant within an epoch."""
    def schedule(count):
        epoch = jnp.floor_divide(count, steps_per_epoch)
        return 0.5 * (1.0 + jnp.cos(jnp.pi * epoch / epochs))
    return schedule


def make_optimizer(train_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
    """SGD(momentum, nesterov) + coupled L2 weight decay (added to the gradient before
    momentum, as PyTorch SGD) + epoch cosine."""
    schedule = epoch_cosine(steps_per_epoch, train_cfg.epochs)

    def sgd(learning_rate, weight_decay):
        return optax.chain(
            optax.add_decayed_weights(weight_decay),
            optax.trace(decay=train_cfg.momentum, nesterov=train_cfg.nesterov),
            optax.scale_by_schedule(schedule),
            optax.scale(-1.0),
            optax.scale(learning_rate),
        )

    return optax.inject_hyperparams(sgd)(learning_rate=train_cfg.lr,
                                         weight_decay=train_cfg.weight_decay)


def set_hyperparams(opt_state, learning_rate, weight_decay):
    """Gives one (unbatched) optimiser state its variant's learning rate and weight decay."""
    opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    opt_state.hyperparams["weight_decay"] = jnp.asarray(weight_decay, jnp.float32)
    return opt_state
