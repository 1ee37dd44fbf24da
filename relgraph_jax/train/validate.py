"""Config validation that runs before any data loading or compilation.

Every error names the field, the bad value and what is allowed.
"""
from __future__ import annotations

TOP_LEVEL = {"model", "graphs", "seeds", "budget_match", "input_shape", "data", "train",
             "mesh", "grid"}
TRAIN_FIELDS = {"batch_size", "epochs", "lr", "momentum", "nesterov", "weight_decay",
                "eval_every", "eval_batch_size", "steps_per_call", "log_every_steps",
                "checkpoint_every_steps", "variant_batch", "width_buckets", "compute_dtype",
                "bn_group_size", "precise_bn_samples"}
COMPUTE_DTYPES = ("float32", "bfloat16")
MESH_FIELDS = {"data", "devices"}


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


def _check_batchnorm(tc, data_devices: int) -> None:
    """Ghost BatchNorm groups must tile each device's share of the batch (none straddles
    devices); precise BN takes whole training batches."""
    g, n = tc.bn_group_size, tc.precise_bn_samples
    if not _is_int(g) or g < 0 or (g and tc.batch_size % (data_devices * g)):
        raise ValueError(f"train.bn_group_size={g!r}: must be 0 (BatchNorm statistics over the "
                         "whole batch) or a positive integer dividing the per-device batch "
                         f"train.batch_size / mesh.data = {tc.batch_size} / {data_devices}")
    if not _is_int(n) or n < 0 or n % tc.batch_size:
        raise ValueError(f"train.precise_bn_samples={n!r}: must be 0 (off) or a positive "
                         f"multiple of train.batch_size={tc.batch_size}")


def validate_config(config) -> None:
    """Checks the structure and ranges of a training config (not graphs or data files)."""
    _check_keys("", config.keys(), TOP_LEVEL)
    tc = config.train
    _check_keys("train.", tc.keys(), TRAIN_FIELDS)
    _check_keys("mesh.", config.mesh.keys(), MESH_FIELDS)
    for name in ("batch_size", "epochs", "eval_every", "eval_batch_size", "steps_per_call",
                 "log_every_steps", "width_buckets"):
        _positive_int(f"train.{name}", tc[name])
    if not _is_int(tc.variant_batch) or tc.variant_batch < 0:
        raise ValueError(f"train.variant_batch={tc.variant_batch!r}: must be a positive integer, "
                         "or 0 for all of a device's variants at once")
    if tc.compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"train.compute_dtype={tc.compute_dtype!r}: allowed {list(COMPUTE_DTYPES)}")
    if tc.checkpoint_every_steps < 0:
        raise ValueError(f"train.checkpoint_every_steps={tc.checkpoint_every_steps!r}: must be "
                         ">= 0 (0 = checkpoint only after evaluations)")
    _positive_int("seeds", config.seeds)
    _positive_int("mesh.data", config.mesh.data)
    _check_batchnorm(tc, config.mesh.data)
    if not tc.lr > 0:
        raise ValueError(f"train.lr={tc.lr!r}: must be > 0")
    if not 0 <= tc.momentum < 1:
        raise ValueError(f"train.momentum={tc.momentum!r}: must be in [0, 1)")
    if not tc.weight_decay >= 0:
        raise ValueError(f"train.weight_decay={tc.weight_decay!r}: must be >= 0")
    for name, values in (config.grid or {}).items():
        for v in values or ():
            if not v >= 0:
                raise ValueError(f"grid.{name} value {v!r}: must be >= 0")
