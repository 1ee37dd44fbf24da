"""The device mesh: a "variants" axis (independent models) and a "data" axis (batch split).

Arrays are placed with `jax.make_array_from_callback`, which works the same on one device,
many local devices and many hosts (each process fills only its addressable shards from
the same host copy).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P


class Shardings(NamedTuple):
    variants: NamedSharding     # leading axis split over "variants"
    replicated: NamedSharding   # a full copy on every device


def make_mesh(data_parallel: int = 1, num_devices: int = 0) -> jax.sharding.Mesh:
    """The first num_devices devices (0 = all) as (variants, data)."""
    from relgraph_jax.train.validate import check_mesh
    check_mesh(data_parallel, num_devices)
    n = num_devices or jax.device_count()
    return jax.make_mesh((n // data_parallel, data_parallel), ("variants", "data"),
                         axis_types=(AxisType.Auto, AxisType.Auto), devices=jax.devices()[:n])


def shardings(mesh) -> Shardings:
    return Shardings(NamedSharding(mesh, P("variants")), NamedSharding(mesh, P()))


def batch_spec(mesh):
    """How a step splits its batch: over the "data" axis when it has several devices. A
    bare spec: inside shard_map it refers to the mesh whose "variants" axis is manual."""
    return P("data") if mesh.shape["data"] > 1 else None


def put(tree, sharding: NamedSharding):
    """Host numpy tree -> global jax arrays with the given sharding."""
    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
    return jax.tree.map(one, tree)


def fetch(tree):
    """Global jax arrays -> host numpy, gathered from every process when there are several."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
    return jax.tree.map(np.asarray, tree)


def variant_slots(num_variants: int, mesh, variant_batch: int = 1) -> int:
    """Variant-axis length: the variant count rounded up so that every device of the
    "variants" axis holds the same whole number of groups of `variant_batch` (0: one
    group of all its variants)."""
    return slots_on(num_variants, mesh.shape["variants"], variant_batch)


def slots_on(num_variants: int, variant_devices: int, variant_batch: int = 1) -> int:
    """`variant_slots` for a "variants" axis of `variant_devices`, before any mesh exists."""
    unit = variant_devices * max(variant_batch, 1)
    return -(-num_variants // unit) * unit
