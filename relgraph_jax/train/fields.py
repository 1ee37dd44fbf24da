"""The trainer's rows of the config-field table: the top level, `train`, `mesh`, `grid`.

Rows of the optimiser, schedule and loss are beside them (optim.py, schedules.py,
losses.py), the data block's in data/spec.py, the search's in search/live.py. A recipe
field (batch size, epochs, learning rate, weight decay, evaluation batch) has no default:
every experiment config states its recipe. Run-control fields (identity=False) may change
between a run and its resume: how often to log, call the device and save, and the layout
of the variants over devices and programs (checkpoints hold each variant by id); the
layout leaves results bitwise equal for mesh.devices and equal to float32 rounding for
the others (another split of the batch, of the buckets' padding or of the variants
vmapped together reorders floating-point sums).
"""
from __future__ import annotations

from typing import Sequence

from relgraph_jax import budget
from relgraph_jax.config_fields import (REQUIRED, ConfigField, boolean, int_at_least_zero, number,
                                        one_of, positive_int, register_config_fields)

LEARNING_RATE = number("> 0", lambda v: v > 0)
WEIGHT_DECAY = number(">= 0", lambda v: v >= 0)
COMPUTE_DTYPES = ("float32", "bfloat16")


def _image_shape(name: str, value) -> None:
    if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, Sequence)
                              or len(value) != 3):
        raise ValueError(f"{name}={value!r}: must be the images' (H, W, C), or unset when "
                         "data.image_size gives it")
    for v in value or ():
        positive_int(name, v)


def _compute_dtype(name: str, value) -> None:
    if value not in COMPUTE_DTYPES:
        raise ValueError(f"{name}={value!r}: allowed {list(COMPUTE_DTYPES)}")


def _variant_batch(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r}: must be a positive integer, or 0 for all of a "
                         "device's variants at once")


def _grid_values(train_check):
    """A grid field: distinct numbers in its train field's range (a value listed twice
    would train the same variants twice, which the analysis would count as more seeds)."""
    def check(name: str, values) -> None:
        key = name.rpartition(".")[2]
        if values is None:  # as ()
            return
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"{name}={values!r}: must be a list of numbers, e.g. "
                             f"(0.1, 0.05), or () for train.{key} alone")
        for i, v in enumerate(values):
            train_check(f"{name}[{i}]", v)
        repeated = sorted({v for v in values if list(values).count(v) > 1})
        if repeated:
            raise ValueError(f"{name}={tuple(values)!r} lists {repeated[0]!r} twice: each "
                             "setting would train the same variants twice")
    return check


register_config_fields(
    ConfigField("graphs", REQUIRED, "graph specs, `;`-separated (docs/graphs.md)"),
    ConfigField("seeds", 1, "seeds (replicates) per graph", positive_int),
    ConfigField("graph_per_block", False, "a graph per block, drawn from each seeded graph's "
                "recipe (graph2nn's KEEP_GRAPH=False; spec form per_block:SPEC, docs/models.md)",
                boolean),
    ConfigField("budget_match", True, "match every graph's cost (budget_measure) to the "
                "complete graph's",
                boolean),
    ConfigField("budget_side", "above", "where matching ends: at or above the complete "
                "graph's cost (graph2nn's RGRAPH.UPPER=True) or at or below it (UPPER=False)",
                one_of(budget.SIDES)),
    ConfigField("budget_measure", "flops", "what matching counts: FLOPs (graph2nn's) or "
                "parameters", one_of(tuple(budget.MEASURES))),
    ConfigField("input_shape", None, "the images' (H, W, C); follows data.image_size where "
                "the data set is resized to it", _image_shape, type=tuple),
    ConfigField("train.batch_size", REQUIRED, "training batch", positive_int),
    ConfigField("train.epochs", REQUIRED, "training epochs", positive_int),
    ConfigField("train.lr", REQUIRED, "base learning rate", LEARNING_RATE),
    ConfigField("train.weight_decay", REQUIRED, "weight decay", WEIGHT_DECAY),
    ConfigField("train.eval_batch_size", REQUIRED, "evaluation batch", positive_int),
    ConfigField("train.eval_every", 1, "evaluate every this many epochs (and after the last)",
                positive_int),
    ConfigField("train.compute_dtype", "float32", "dtype of the layer arithmetic",
                _compute_dtype),
    ConfigField("train.bn_group_size", 0, "examples per BatchNorm group (0: the whole batch; "
                "docs/batchnorm.md)"),
    ConfigField("train.precise_bn_samples", 0, "training images re-estimating BatchNorm "
                "statistics after each epoch (0: off)"),
    ConfigField("train.steps_per_call", 50, "steps per device call", positive_int,
                identity=False),
    ConfigField("train.log_every_steps", 100, "log progress every this many steps",
                positive_int, identity=False),
    ConfigField("train.checkpoint_every_steps", 0, "checkpoint every this many steps",
                int_at_least_zero("0 = checkpoint only after evaluations"), identity=False),
    ConfigField("train.variant_batch", 1, "variants vmapped at a time on a device (0: all)",
                _variant_batch, identity=False),
    ConfigField("train.width_buckets", 4, "buckets of similar widths, one program each",
                positive_int, identity=False),
    ConfigField("mesh.data", 1, "devices splitting each batch (the rest split the variants)",
                identity=False),
    ConfigField("mesh.devices", 0, "devices used (0: all)", identity=False),
    ConfigField("grid.lr", (), "learning rates to sweep (each variant trains at each)",
                _grid_values(LEARNING_RATE)),
    ConfigField("grid.weight_decay", (), "weight decays to sweep",
                _grid_values(WEIGHT_DECAY)),
)
