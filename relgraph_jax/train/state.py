"""The training state of one variant; a bucket stacks it along a leading variant axis."""
from __future__ import annotations

from typing import Any

import numpy as np
from flax import struct


@struct.dataclass
class TrainState:
    """Everything a variant's training carries from step to step, by name.

    params, batch_stats, masks: the model's variables ("masks": the graph's static
    arrays, data so that many graphs share one program). opt_state: the optimiser's.
    failed / failed_step: a variant whose step turned non-finite is frozen (its updates
    rejected from then on) and marked with that step (-1: healthy).
    loss_sum / loss_count: the training loss summed over this epoch's steps, and how many.
    """
    params: Any
    batch_stats: Any
    masks: Any
    opt_state: Any
    failed: Any
    failed_step: Any
    loss_sum: Any
    loss_count: Any

    @classmethod
    def fresh(cls, variables: dict, opt_state) -> "TrainState":
        """A variant's state before its first step (host numpy scalars for the flags)."""
        return cls(params=variables["params"], batch_stats=variables["batch_stats"],
                   masks=variables["masks"], opt_state=opt_state, failed=np.bool_(False),
                   failed_step=np.int32(-1), loss_sum=np.float32(0), loss_count=np.float32(0))


VARIABLE_COLLECTIONS = ("params", "batch_stats", "masks")


def collections_of(variables: dict) -> dict:
    """The VARIABLE_COLLECTIONS of a model's variables (or their shapes). A collection the
    model does not have is empty: impl='blocks' has no "masks" (its one graph is compiled
    into the program)."""
    return {k: variables.get(k, {}) for k in VARIABLE_COLLECTIONS}


def variables_of(state: TrainState) -> dict:
    """The model variables of a state, as flax's apply takes them."""
    return {"params": state.params, "batch_stats": state.batch_stats, "masks": state.masks}

