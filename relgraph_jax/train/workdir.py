"""A workdir belongs to one configuration: refuse to mix results of different configs."""
from __future__ import annotations

import json
import os
import tempfile

from relgraph_jax import results

CONFIG_FILE = "config.json"
# Fields that may change between a run and its resume: how often to log, save and call
# the device, and the layout of the variants over devices and programs (checkpoints hold
# each variant by id). Layout changes leave results bitwise equal for mesh.devices and
# equal to float32 rounding for the others (another split of the batch, of the buckets'
# padding or of the variants vmapped together reorders floating-point sums).
RUN_CONTROL_FIELDS = ("train.log_every_steps", "train.steps_per_call", "mesh.devices",
                      "mesh.data", "train.checkpoint_every_steps", "train.width_buckets",
                      "train.variant_batch")


def _flatten(d, prefix=""):
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_identity(config_dict: dict) -> dict:
    """The flattened config minus run-control fields: what a workdir's results depend on."""
    flat = _flatten(json.loads(json.dumps(config_dict, default=list)))
    return {k: v for k, v in flat.items() if k not in RUN_CONTROL_FIELDS}


def check_writable(workdir: str) -> None:
    """Creates workdir if needed and proves it is writable, before anything expensive."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test"):
            pass
    except OSError as e:
        raise ValueError(f"workdir {workdir!r} is not writable ({e.strerror}); "
                         "pass a --workdir you can write to") from e


def check_compatible(workdir: str, config_dict: dict) -> bool:
    """Raises if the workdir holds results of a different config; True if it holds this one."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        old = config_identity(json.load(f))
    identity = config_identity(config_dict)
    if old != identity:
        diffs = [f"{k}: {old.get(k, '<absent>')!r} there vs {identity.get(k, '<absent>')!r} now"
                 for k in sorted(set(old) | set(identity)) if old.get(k) != identity.get(k)]
        shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        raise ValueError(
            f"workdir {workdir!r} was created by a different config ({shown}). "
            "Results of different configs are never mixed: use a new --workdir, or "
            "delete this one to start over.")
    return True


def claim(workdir: str, config_dict: dict) -> None:
    """Records the config in a workdir that holds none yet.

    Call it after `check_compatible` and once every other check has passed, so that an
    invalid config never marks a workdir; a resumed workdir keeps the config it holds.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        results.write_atomically(path, json.dumps(config_dict, indent=2, sort_keys=True,
                                                  default=list).encode())
