"""Decodes the JPEG copy of CIFAR-10 (`cifar10_jpeg.npz`) into the arrays format.

    python -m relgraph_jax.data.prepare_cifar10 --src cifar10_jpeg.npz \
        [--out data_cache/cifar10_jpeg.npz]

The copy is lossy (JPEG at about quality 75): expect 1-3 points more test error than on
the official release (source='cifar', the configs' default), so compare graphs trained on
it only with each other. It serves machines that cannot download. The source stores
each split as one byte stream of concatenated JPEG files (`{split}_jpeg`), with `{split}_offsets` (N + 1 byte positions), `{split}_labels` and
`classes`. The output holds x_train (50000, 32, 32, 3) uint8, y_train int32, x_test,
y_test and classes, written to a temporary file and renamed, so a half-written output
never exists.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_OUT = Path("data_cache") / "cifar10_jpeg.npz"
SPLITS = ("train", "test")
IMAGE_SHAPE = (32, 32, 3)


def _source_keys() -> list[str]:
    return [f"{s}_{part}" for s in SPLITS for part in ("jpeg", "offsets", "labels")] + ["classes"]


def decode_split(stream: np.ndarray, offsets: np.ndarray, split: str) -> np.ndarray:
    """Decodes the JPEG files stream[offsets[i]:offsets[i+1]] into (N, 32, 32, 3) uint8."""
    if offsets.ndim != 1 or offsets.shape[0] < 2 or offsets[0] != 0 \
            or offsets[-1] != stream.shape[0] or np.any(np.diff(offsets) <= 0):
        raise ValueError(f"{split}_offsets must rise strictly from 0 to the stream length "
                         f"{stream.shape[0]}, got {offsets.shape[0]} offsets ending at "
                         f"{offsets[-1] if offsets.size else None}")
    raw = stream.tobytes()
    images = np.empty((offsets.shape[0] - 1,) + IMAGE_SHAPE, np.uint8)
    for i in range(images.shape[0]):
        try:
            with Image.open(io.BytesIO(raw[offsets[i]:offsets[i + 1]])) as im:
                pixels = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{split} image {i} is not a readable JPEG: {e}") from e
        if pixels.shape != IMAGE_SHAPE:
            raise ValueError(f"{split} image {i} decodes to {pixels.shape}, "
                             f"expected {IMAGE_SHAPE}")
        images[i] = pixels
    return images


def decode(src: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads the JPEG npz and returns the arrays-format dict (not yet written)."""
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"CIFAR-10 JPEG copy {str(src)!r} not found; pass --src")
    with np.load(src, allow_pickle=False) as archive:
        missing = [k for k in _source_keys() if k not in archive.files]
        if missing:
            raise ValueError(f"{str(src)!r} is missing {missing}; expected {_source_keys()}")
        out = {"classes": archive["classes"]}
        for split in SPLITS:
            labels = archive[f"{split}_labels"]
            images = decode_split(archive[f"{split}_jpeg"], archive[f"{split}_offsets"], split)
            if labels.shape != (images.shape[0],):
                raise ValueError(f"{split}: {images.shape[0]} images but labels of shape "
                                 f"{labels.shape}")
            out[f"x_{split}"] = images
            out[f"y_{split}"] = labels.astype(np.int32)
    return out


def write_atomic(arrays: dict[str, np.ndarray], out: str | os.PathLike) -> Path:
    """Writes an uncompressed npz via a temporary file in the same folder, then renames."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="the JPEG copy, cifar10_jpeg.npz")
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help="output .npz for source='arrays' (default: %(default)s)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        arrays = decode(args.src)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = write_atomic(arrays, args.out)
    print(f"wrote {out}: x_train {arrays['x_train'].shape}, x_test {arrays['x_test'].shape}, "
          f"{arrays['classes'].shape[0]} classes in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
