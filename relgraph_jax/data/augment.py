"""On-device augmentation and normalisation of image batches (pure jax: jit, vmap, grad-free).

The paper's CIFAR recipe: zero-pad 4 pixels, take a random crop of the original size,
flip horizontally with probability 1/2; then per-channel normalisation. Images stay
uint8 until `normalize`, so a whole small data set can live on the device.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _check_images(images, what: str) -> None:
    if images.ndim != 4:
        raise ValueError(f"{what} expects a batch of images (N, H, W, C), got shape "
                         f"{tuple(images.shape)}")


def augment_batch(images_uint8: jax.Array, rng: jax.Array, crop_pad: int = 4,
                  flip: bool = True) -> jax.Array:
    """Random crop after zero padding by `crop_pad`, and random horizontal flip, per image.

    rng: a jax key (typed `jax.random.key` or raw `PRNGKey`). Each image draws its own
    offsets (dy, dx) in [0, 2 * crop_pad] and flip bit; the output is uint8, same shape.
    """
    _check_images(images_uint8, "augment_batch")
    if images_uint8.dtype != jnp.uint8:
        raise TypeError(f"augment_batch expects uint8 images, got {images_uint8.dtype}")
    if isinstance(crop_pad, bool) or not isinstance(crop_pad, (int, np.integer)) or crop_pad < 0:
        raise ValueError(f"crop_pad must be a static integer >= 0, got {crop_pad!r}")
    n, h, w, _ = images_uint8.shape
    crop_key, flip_key = jax.random.split(rng)
    out = images_uint8
    if crop_pad:
        padded = jnp.pad(images_uint8, ((0, 0), (crop_pad, crop_pad), (crop_pad, crop_pad),
                                        (0, 0)))
        offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * crop_pad + 1)

        def crop(image, offset):
            return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0),
                                         (h, w, image.shape[-1]))

        out = jax.vmap(crop)(padded, offsets)
    if flip:
        flips = jax.random.bernoulli(flip_key, 0.5, (n,))
        out = jnp.where(flips[:, None, None, None], out[:, :, ::-1, :], out)
    return out


def normalize(images: jax.Array, mean, std) -> jax.Array:
    """(images - mean) / std per channel, as float32; mean and std on the 0-255 scale."""
    _check_images(images, "normalize")
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    channels = images.shape[-1]
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"normalize: mean and std must have shape ({channels},) for "
                         f"{channels}-channel images, got {mean.shape} and {std.shape}")
    return (images.astype(jnp.float32) - mean) / std
