"""On-device augmentation and normalisation of image batches (pure jax: jit, vmap, grad-free).

The CIFAR recipe: random crop of the original size from the image padded by 4 pixels, and
a random horizontal flip; per-channel normalisation. Images stay uint8 until they are
batched, so a whole small data set can live on the device. Two crop styles:

- "graph2nn" (the authors' code, the default): normalise, flip, zero-pad (so the border
  is the mean colour), crop at offsets drawn like numpy's randint(0, 2 * pad), i.e.
  0 .. 2 * pad - 1.
- "torchvision" (RandomCrop(padding) then RandomHorizontalFlip on uint8 images): black
  border, offsets 0 .. 2 * pad, then normalise.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

CROP_STYLES = ("graph2nn", "torchvision")


def _check_images(images, what: str) -> None:
    if images.ndim != 4:
        raise ValueError(f"{what} expects a batch of images (N, H, W, C), got shape "
                         f"{tuple(images.shape)}")


def augment_batch(images: jax.Array, rng: jax.Array, crop_pad: int = 4, flip: bool = True,
                  style: str = "graph2nn") -> jax.Array:
    """Random crop from the zero-padded image and random horizontal flip, per image.

    rng: a jax key (typed `jax.random.key` or raw `PRNGKey`); each image draws its own
    offsets (dy, dx) and flip bit. "graph2nn" flips first and draws offsets in
    [0, 2 * crop_pad); it expects normalised floating images, whose zero is the mean
    colour. "torchvision" draws offsets in [0, 2 * crop_pad], flips after the crop and
    expects uint8 images (zero = black). Output: same shape and dtype.
    """
    _check_images(images, "augment_batch")
    if style not in CROP_STYLES:
        raise ValueError(f"augment_batch: style={style!r}; allowed {list(CROP_STYLES)}")
    graph2nn = style == "graph2nn"
    if not (jnp.issubdtype(images.dtype, jnp.floating) if graph2nn
            else images.dtype == jnp.uint8):
        raise TypeError(f"augment_batch style={style!r} expects "
                        f"{'normalised floating' if graph2nn else 'uint8'} images, got "
                        f"{images.dtype}")
    if isinstance(crop_pad, bool) or not isinstance(crop_pad, (int, np.integer)) or crop_pad < 0:
        raise ValueError(f"crop_pad must be a static integer >= 0, got {crop_pad!r}")
    n, h, w, _ = images.shape
    crop_key, flip_key = jax.random.split(rng)
    flips = jax.random.bernoulli(flip_key, 0.5, (n,)) if flip else None

    def flipped(x):
        return x if flips is None else jnp.where(flips[:, None, None, None], x[:, :, ::-1, :], x)

    out = flipped(images) if graph2nn else images
    if crop_pad:
        padded = jnp.pad(out, ((0, 0), (crop_pad, crop_pad), (crop_pad, crop_pad), (0, 0)))
        highest = 2 * crop_pad - 1 if graph2nn else 2 * crop_pad
        offsets = jax.random.randint(crop_key, (n, 2), 0, highest + 1)

        def crop(image, offset):
            return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0),
                                         (h, w, image.shape[-1]))

        out = jax.vmap(crop)(padded, offsets)
    return out if graph2nn else flipped(out)


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


def train_images(images_uint8: jax.Array, rng: jax.Array, mean, std, crop_pad: int = 4,
                 flip: bool = True, style: str = "graph2nn") -> jax.Array:
    """Augmented, normalised float32 training images, in the order `style`'s pipeline uses."""
    if style == "graph2nn":
        return augment_batch(normalize(images_uint8, mean, std), rng, crop_pad, flip, style)
    return normalize(augment_batch(images_uint8, rng, crop_pad, flip, style), mean, std)
