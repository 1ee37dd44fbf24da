"""The paper's ImageNet transforms of one decoded image (numpy and Pillow, no jax).

Train: random-sized crop (area 0.08-1 of the image, aspect 3/4-4/3, 10 tries, else a
centre square), resize to `image_size`, horizontal flip, AlexNet-style PCA lighting
(std 0.1); float32 on the 0-255 scale. Eval: resize the shorter side to
image_size * 256 / 224, centre crop `image_size`; uint8. Both still need `normalize`.
The train transform (`train_crop`) draws everything from the generator it is given;
data/stream.py seeds it with (seed, epoch, example index), so a batch never depends on
which worker process or host made it.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)
CROP_ATTEMPTS = 10
RESIZE_RATIO = 256.0 / 224.0
LIGHTING_STD = 0.1
# Eigenvalues and eigenvectors (columns, RGB rows) of the ImageNet pixel covariance on the
# 0-1 scale, as used for AlexNet-style lighting noise.
EIGVALS = np.array([0.2175, 0.0188, 0.0045])
EIGVECS = np.array([[-0.5675, 0.7192, 0.4009],
                    [-0.5808, -0.0045, -0.8140],
                    [-0.5836, -0.6948, 0.4203]])


def crop_box(height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random-sized crop; the centre square if no try fits."""
    for _ in range(CROP_ATTEMPTS):
        area = rng.uniform(*AREA_RANGE) * height * width
        aspect = rng.uniform(*ASPECT_RANGE)
        w = int(round(math.sqrt(area * aspect)))
        h = int(round(math.sqrt(area / aspect)))
        if rng.uniform() < 0.5:
            w, h = h, w
        if 0 < h <= height and 0 < w <= width:
            return (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)),
                    h, w)
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def as_rgb(image: Image.Image) -> Image.Image:
    """An RGB Pillow image of any decoded mode. 16-bit greyscale (a 16-bit PNG decodes to
    mode I;16 or I) is scaled to 8 bits, 65535 -> 255: Pillow's own conversion clips every
    level above 255 to white."""
    if image.mode.startswith("I"):
        levels = np.rint(np.asarray(image, np.float64) / 257.0)
        image = Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8), "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _as_image(image: Image.Image | np.ndarray) -> Image.Image:
    """A Pillow RGB image of a decoded one (Pillow, or a uint8 (H, W, 3) array)."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, np.uint8))
    return as_rgb(image)


def _resize(image: Image.Image, width: int, height: int) -> Image.Image:
    return image if image.size == (width, height) else image.resize((width, height),
                                                                   Image.BILINEAR)


def lighting_offset(alpha: np.ndarray) -> np.ndarray:
    """RGB shift (0-255 scale) for PCA weights alpha: eigvecs @ (alpha * eigvals) * 255."""
    return (EIGVECS @ (np.asarray(alpha) * EIGVALS) * 255.0).astype(np.float32)


def train_crop(image: Image.Image | np.ndarray, size: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The train transform in two parts: the random-sized crop, resized and maybe flipped
    (uint8 (size, size, 3)), and its PCA lighting offset (float32 (3,), 0-255 scale).

    The train image is crop.astype(float32) + offset. Streams carry the uint8 crop, a
    quarter of the float32 image's bytes, and make that sum on the device. Crop, resize
    and flip stay in Pillow, which converts to an array once, at the end: the same pixels
    as cropping and flipping the array, 16 % less time per image (benchmarks/RESULTS.md).
    """
    image = _as_image(image)
    top, left, h, w = crop_box(image.height, image.width, rng)
    out = _resize(image.crop((left, top, left + w, top + h)), size, size)
    if rng.uniform() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out), lighting_offset(rng.normal(0.0, LIGHTING_STD, 3))


def eval_transform(image: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to round(size * 256 / 224), centre crop size: uint8."""
    image = _as_image(image)
    width, height = image.size
    short = int(round(size * RESIZE_RATIO))
    scale = short / min(height, width)
    new_h = short if height <= width else int(round(height * scale))
    new_w = short if width < height else int(round(width * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.asarray(_resize(image, new_w, new_h).crop((left, top, left + size, top + size)))
