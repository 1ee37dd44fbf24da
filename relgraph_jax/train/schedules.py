"""Learning-rate schedules, chosen by `train.schedule`: a multiplier of the base rate.

Each is a `Component` in SCHEDULES whose `make(train_cfg, steps_per_epoch)` returns a
function of the step count (a traced jax integer) to the multiplier of train.lr (and of
each grid learning rate) at that step. Register one with `SCHEDULES.declare(...)`
(docs/extending.md). The built-ins are graph2nn's policies (pycls lr_policy), set once
per epoch as its trainer sets them, and the Transformer's `cosine_steps`, set every step.
`make_schedule` adds the linear warmup
(`train.warmup`) to whichever schedule is chosen, so every schedule and optimiser gets it.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import jax.numpy as jnp

from relgraph_jax import config_fields
from relgraph_jax.registry import Component, Registry

SCHEDULES: Registry[Component] = Registry("learning-rate schedule")


def per_unit(steps_per_unit: int, of_unit):
    """The step multiplier `of_unit(t)` throughout unit t of `steps_per_unit` steps: with
    a unit of an epoch, a rate set once per epoch, as graph2nn's trainer sets it."""
    return lambda count: of_unit(jnp.floor_divide(count, steps_per_unit))


def cosine(length: int):
    """0.5 * (1 + cos(pi * t / length)) of unit t (an epoch, or a step)."""
    return lambda t: 0.5 * (1.0 + jnp.cos(jnp.pi * t / length))


SCHEDULES.declare(Component(
    "cosine", "0.5 (1 + cos(pi epoch / epochs)), set once per epoch: the paper's",
    lambda train_cfg, steps_per_epoch: per_unit(steps_per_epoch, cosine(train_cfg.epochs))))

config_fields.register_config_fields(config_fields.ConfigField(
    "train.schedule", "cosine", "learning-rate schedule (a name in the schedule table)",
    config_fields.one_of(SCHEDULES)))


def steps(boundaries: Sequence[int], mult: float):
    """mult ** (how many of `boundaries` the epoch has reached): graph2nn's `steps`
    policy, whose OPTIM.STEPS is `boundaries` with a leading 0."""
    at = jnp.asarray(tuple(boundaries), jnp.int32)
    return lambda epoch: jnp.float32(mult) ** jnp.sum(epoch >= at)


def exp(gamma: float):
    """gamma ** epoch: graph2nn's `exp` policy."""
    return lambda epoch: jnp.float32(gamma) ** epoch.astype(jnp.float32)


def _lr_steps(name: str, value) -> None:
    allowed = ("must be increasing epochs > 0, e.g. (30, 60, 90): graph2nn's OPTIM.STEPS "
               "without its leading 0")
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name}={value!r}: {allowed}")
    for i, epoch in enumerate(value):
        whole = isinstance(epoch, numbers.Integral) and not isinstance(epoch, bool)
        if not whole or epoch < 1 or (i and epoch <= value[i - 1]):
            raise ValueError(f"{name}={tuple(value)!r}: {allowed}")


SCHEDULES.declare(Component(
    "steps", "lr_mult^i from the i-th epoch of `train.lr_steps` on, set once per epoch: "
    "graph2nn's `steps` (OPTIM.STEPS, LR_MULT)",
    lambda train_cfg, steps_per_epoch: per_unit(steps_per_epoch, steps(train_cfg.lr_steps,
                                                                       train_cfg.lr_mult))))
SCHEDULES.declare(Component(
    "exp", "lr_gamma^epoch, set once per epoch: graph2nn's `exp` (OPTIM.GAMMA)",
    lambda train_cfg, steps_per_epoch: per_unit(steps_per_epoch, exp(train_cfg.lr_gamma))))
SCHEDULES.declare(Component(
    "cosine_steps", "0.5 (1 + cos(pi step / (epochs x steps per epoch))), set every step: the "
    "Transformer's (with `train.warmup` in steps)",
    lambda train_cfg, steps_per_epoch: cosine(train_cfg.epochs * steps_per_epoch)))

WARMUP_UNITS = ("epochs", "steps")


def linear_warmup(length: int, factor: float):
    """factor + (1 - factor) t / length of unit t while t < length, then 1: graph2nn's
    warmup (OPTIM.WARMUP_EPOCHS, WARMUP_FACTOR) in epochs, the same ramp per step in
    steps."""
    def ramp(t):
        alpha = t.astype(jnp.float32) / length
        return jnp.where(t < length, factor * (1.0 - alpha) + alpha, 1.0)
    return ramp


def make_schedule(train_cfg, steps_per_epoch: int):
    """The multiplier `train.schedule` names, under `train.warmup` when that is on (a
    train block without the warmup fields, as hand-made in tests, has none)."""
    schedule = SCHEDULES[train_cfg.schedule].make(train_cfg, steps_per_epoch)
    length = train_cfg.get("warmup", 0)
    if not length:
        return schedule
    warmup = per_unit(steps_per_epoch if train_cfg.warmup_unit == "epochs" else 1,
                      linear_warmup(length, train_cfg.warmup_factor))
    return lambda count: schedule(count) * warmup(count)


config_fields.register_config_fields(
    config_fields.ConfigField(
        "train.lr_steps", (), "`steps` schedule: epochs at which the rate is multiplied by "
        "train.lr_mult (graph2nn's OPTIM.STEPS without its leading 0; none: a constant rate)",
        _lr_steps),
    config_fields.ConfigField(
        "train.lr_mult", 0.1, "`steps` schedule: factor at each of train.lr_steps (graph2nn's "
        "OPTIM.LR_MULT)", config_fields.number("> 0", lambda v: v > 0)),
    config_fields.ConfigField(
        "train.lr_gamma", 0.1, "`exp` schedule: the rate is lr x lr_gamma^epoch (graph2nn's "
        "OPTIM.GAMMA)", config_fields.number("> 0", lambda v: v > 0)),
    config_fields.ConfigField(
        "train.warmup", 0, "linear warmup of any schedule over this many train.warmup_unit "
        "(graph2nn's OPTIM.WARMUP_EPOCHS)", config_fields.int_at_least_zero("0 = no warmup")),
    config_fields.ConfigField(
        "train.warmup_unit", "epochs", "unit of train.warmup: epochs (graph2nn's, the rate "
        "set per epoch) or steps (set per step, as Transformers warm up)",
        config_fields.one_of(WARMUP_UNITS)),
    config_fields.ConfigField(
        "train.warmup_factor", 0.1, "multiplier the warmup starts from, rising linearly to 1 "
        "(graph2nn's OPTIM.WARMUP_FACTOR)",
        config_fields.number("in [0, 1]", lambda v: 0 <= v <= 1)),
)
