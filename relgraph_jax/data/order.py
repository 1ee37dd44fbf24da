"""The data order of an epoch: a permutation that depends only on (seed, epoch, n).

Each seed has its own order, so all variants of one seed see the same batches. Written
with jax's threefry keys, which make it bit-identical on any backend and any number of
devices; the trainer computes it eagerly, once per seed and epoch, and sends the orders
to the devices (train/feeds.py). It may also be traced (jit, vmap over seeds).
The order stream is folded with its own tag so it never coincides with other keys a
caller derives from the same seed (initialisation, augmentation).
"""
from __future__ import annotations

import numbers

import jax

ORDER_STREAM = 0x6F726472  # "ordr": separates data-order keys from other uses of a seed


def epoch_order(seed, epoch, n: int) -> jax.Array:
    """int32 permutation of range(n) for this seed and epoch (seed, epoch may be traced)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"epoch_order needs a static number of examples n >= 1, got {n!r}")
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), ORDER_STREAM), epoch)
    return jax.random.permutation(key, int(n))
