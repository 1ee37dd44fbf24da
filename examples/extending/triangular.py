"""A learning-rate schedule of one's own: the triangular cyclic rate (Smith, 2017).

Within each cycle of `train.cycle_epochs` epochs the multiplier of train.lr climbs
linearly from LOW to 1 over the first half and falls back to LOW over the second, step
by step. The cycle length is a config field registered here, next to the schedule.
"""
import jax.numpy as jnp

from relgraph_jax.config_fields import ConfigField, positive_int, register_config_fields
from relgraph_jax.registry import Component
from relgraph_jax.train.schedules import SCHEDULES

LOW = 0.1  # the multiplier at the start and end of a cycle


def triangular(train_cfg, steps_per_epoch: int):
    cycle = train_cfg.cycle_epochs * steps_per_epoch

    def multiplier(count):
        phase = jnp.mod(count, cycle) / cycle  # 0 .. 1 within the cycle
        return LOW + (1.0 - LOW) * (1.0 - jnp.abs(2.0 * phase - 1.0))
    return multiplier


SCHEDULES.declare(Component(
    "triangular", f"triangular cyclic rate: {LOW} -> 1 -> {LOW} x lr every "
    "`train.cycle_epochs` epochs", triangular))
register_config_fields(ConfigField(
    "train.cycle_epochs", 2, "epochs per cycle of the triangular schedule", positive_int))
