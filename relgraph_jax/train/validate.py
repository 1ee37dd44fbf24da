"""Config validation that runs before any data loading or compilation: the one place.

Every error names the field, the bad value and what is allowed. `validate_config` checks
the config's structure and ranges (and the mesh against the devices present);
`check_graphs` the resolved graphs against the model.
"""
from __future__ import annotations

import jax

from relgraph_jax import models

TOP_LEVEL = {"model", "graphs", "seeds", "budget_match", "input_shape", "data", "train",
             "mesh", "grid"}
TRAIN_FIELDS = {"batch_size", "epochs", "lr", "momentum", "nesterov", "weight_decay",
                "eval_every", "eval_batch_size", "steps_per_call", "log_every_steps",
                "checkpoint_every_steps", "variant_batch", "width_buckets", "compute_dtype",
                "bn_group_size", "precise_bn_samples"}
COMPUTE_DTYPES = ("float32", "bfloat16")
MESH_FIELDS = {"data", "devices"}
GRID_FIELDS = ("lr", "weight_decay")


def _check_keys(section: str, present, allowed) -> None:
    unknown = sorted(set(present) - set(allowed))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(section + k for k in unknown)}; "
                         f"allowed in {section.rstrip('.') or 'config'}: {sorted(allowed)}")
    missing = sorted(set(allowed) - set(present))
    if missing:
        raise ValueError(f"config is missing {', '.join(section + k for k in missing)}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(name: str, value) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name}={value!r}: must be a positive integer")


def _check_batchnorm(train_cfg, data_devices: int) -> None:
    """Ghost BatchNorm groups must tile each device's share of the batch (none straddles
    devices); precise BN takes whole training batches."""
    g, n = train_cfg.bn_group_size, train_cfg.precise_bn_samples
    if not _is_int(g) or g < 0 or (g and train_cfg.batch_size % (data_devices * g)):
        raise ValueError(f"train.bn_group_size={g!r}: must be 0 (BatchNorm statistics over the "
                         "whole batch) or a positive integer dividing the per-device batch "
                         f"train.batch_size / mesh.data = {train_cfg.batch_size} / {data_devices}")
    if not _is_int(n) or n < 0 or n % train_cfg.batch_size:
        raise ValueError(f"train.precise_bn_samples={n!r}: must be 0 (off) or a positive "
                         f"multiple of train.batch_size={train_cfg.batch_size}")


def validate_config(config) -> None:
    """Checks the structure and ranges of a training config (not graphs or data files)."""
    _check_keys("", config.keys(), TOP_LEVEL)
    train_cfg = config.train
    _check_keys("train.", train_cfg.keys(), TRAIN_FIELDS)
    _check_keys("mesh.", config.mesh.keys(), MESH_FIELDS)
    for name in ("batch_size", "epochs", "eval_every", "eval_batch_size", "steps_per_call",
                 "log_every_steps", "width_buckets"):
        _positive_int(f"train.{name}", train_cfg[name])
    if not _is_int(train_cfg.variant_batch) or train_cfg.variant_batch < 0:
        raise ValueError(f"train.variant_batch={train_cfg.variant_batch!r}: must be a positive integer, "
                         "or 0 for all of a device's variants at once")
    if train_cfg.compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"train.compute_dtype={train_cfg.compute_dtype!r}: allowed {list(COMPUTE_DTYPES)}")
    if train_cfg.checkpoint_every_steps < 0:
        raise ValueError(f"train.checkpoint_every_steps={train_cfg.checkpoint_every_steps!r}: must be "
                         ">= 0 (0 = checkpoint only after evaluations)")
    _positive_int("seeds", config.seeds)
    check_mesh(config.mesh.data, config.mesh.devices)
    _check_batchnorm(train_cfg, config.mesh.data)
    if not train_cfg.lr > 0:
        raise ValueError(f"train.lr={train_cfg.lr!r}: must be > 0")
    if not 0 <= train_cfg.momentum < 1:
        raise ValueError(f"train.momentum={train_cfg.momentum!r}: must be in [0, 1)")
    if not train_cfg.weight_decay >= 0:
        raise ValueError(f"train.weight_decay={train_cfg.weight_decay!r}: must be >= 0")
    unknown = sorted(set((config.grid or {}).keys()) - set(GRID_FIELDS))
    if unknown:
        raise ValueError(f"config.grid has unknown field(s) {unknown}; allowed: {list(GRID_FIELDS)}")
    for name, values in (config.grid or {}).items():
        for v in values or ():
            if not v >= 0:
                raise ValueError(f"grid.{name} value {v!r}: must be >= 0")


def check_mesh(data_parallel, num_devices) -> None:
    """mesh.devices (0 = all) must exist here and mesh.data must divide them."""
    available = jax.device_count()
    if not _is_int(num_devices) or not 0 <= num_devices <= available:
        raise ValueError(f"config.mesh.devices={num_devices!r}: allowed 0 (all) or 1..{available}")
    used = num_devices or available
    if not _is_int(data_parallel) or data_parallel < 1 or used % data_parallel:
        raise ValueError(f"config.mesh.data={data_parallel!r} must be a positive divisor of the "
                         f"{used} devices used")


def check_graphs(config, graphs) -> None:
    """Every graph has the model's node count; the blocks layout (one graph's block list
    compiled into the program) takes one graph, mask and gather carry each as data."""
    for g in graphs:
        models.check_nodes(config.model, g)
    specs = {g.spec for g in graphs}
    if config.model.get("impl") == "blocks" and len(specs) > 1:
        raise ValueError(f"model.impl='blocks' compiles one graph's blocks into the program, but "
                         f"this sweep has {len(specs)} graphs; use model.impl='mask' or (MLP) "
                         "'gather', which carry each variant's graph as data")
