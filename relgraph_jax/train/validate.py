"""Config validation that runs before any data loading or compilation.

Every error names the field, the bad value and what is allowed.
"""
from __future__ import annotations

TOP_LEVEL = {"model", "graphs", "seeds", "budget_match", "input_shape", "data", "train",
             "mesh", "grid"}
TRAIN_FIELDS = {"batch_size", "epochs", "lr", "momentum", "nesterov", "weight_decay",
                "eval_every", "eval_batch_size", "steps_per_call", "log_every_steps",
                "checkpoint_every_steps", "variant_batch", "width_buckets", "compute_dtype"}
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


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}: must be a positive integer")


def validate_config(config) -> None:
    """Checks the structure and ranges of a training config (not graphs or data files)."""
    _check_keys("", config.keys(), TOP_LEVEL)
    tc = config.train
    _check_keys("train.", tc.keys(), TRAIN_FIELDS)
    _check_keys("mesh.", config.mesh.keys(), MESH_FIELDS)
    for name in ("batch_size", "epochs", "eval_every", "eval_batch_size", "steps_per_call",
                 "log_every_steps", "width_buckets"):
        _positive_int(f"train.{name}", tc[name])
    if isinstance(tc.variant_batch, bool) or not isinstance(tc.variant_batch, int) \
            or tc.variant_batch < 0:
        raise ValueError(f"train.variant_batch={tc.variant_batch!r}: must be a positive integer, "
                         "or 0 for all of a device's variants at once")
    if tc.compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"train.compute_dtype={tc.compute_dtype!r}: allowed {list(COMPUTE_DTYPES)}")
    if tc.checkpoint_every_steps < 0:
        raise ValueError(f"train.checkpoint_every_steps={tc.checkpoint_every_steps!r}: must be "
                         ">= 0 (0 = checkpoint only after evaluations)")
    _positive_int("seeds", config.seeds)
    _positive_int("mesh.data", config.mesh.data)
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
