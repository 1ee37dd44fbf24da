"""Image folders as users keep ImageNet: PATH/train/<class>/*.JPEG and PATH/val/<class>/*.

The layout is torchvision's ImageFolder: every subfolder of a split is a class, classes
are sorted by name and numbered in that order, and a class's images are its files ending
in .jpg, .jpeg or .png (any case, also in nested folders), in sorted order; other files
are ignored. The split folders' names are `data.train_split` / `data.test_split`
("train" / "val" by default).

`validate` checks the layout before anything is compiled: both split folders, their
class folders, one image in each class and the same classes in both splits; then that
every listed file opens and starts with a JPEG or PNG signature (`check_headers`: its
first bytes are read, by threads). Images are decoded only when an example is read; a
file whose header is fine but whose data is not is an error naming it then.

A run asks for the classes and the file lists several times (the summary, the data's
fingerprint, the stream): `validate` and `listing` are cached, so each process checks the
layout once and lists each split once. A folder changed while a process runs is seen by
the next process.
"""
from __future__ import annotations

import concurrent.futures
import functools
import os
from typing import Iterator

import numpy as np
from PIL import Image

from relgraph_jax.data import imagenet
from relgraph_jax.data.spec import DataNotFoundError, DataSpec

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_HEADER_THREADS = 16  # file reads in flight while the headers are checked
_HEADER_BATCH = 4096  # files whose checks are queued at once (bounded memory)
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LAYOUT = "PATH/SPLIT/CLASS/IMAGE with SPLIT the train and test folders"


def split_dir(spec: DataSpec, split: str) -> str:
    return os.path.join(spec.path, split)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _images(class_dir: str) -> Iterator[str]:
    """Image paths under class_dir in torchvision's order (sorted walk, sorted files)."""
    for root, _, files in sorted(os.walk(class_dir, followlinks=True)):
        for name in sorted(files):
            if _is_image(name):
                yield os.path.join(root, name)


def _has_image(folder: str) -> bool:
    """Whether `folder` or a folder below it holds an image; reads entries only up to the
    first image (a class folder of ImageNet is never listed whole)."""
    subfolders = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file() and _is_image(entry.name):
                return True
            if entry.is_dir():
                subfolders.append(entry.path)
    return any(_has_image(sub) for sub in sorted(subfolders))


def class_names(spec: DataSpec, split: str) -> list[str]:
    """The split's class folders, sorted; errors for a missing split or no classes."""
    folder = split_dir(spec, split)
    if not os.path.isdir(spec.path):
        raise DataNotFoundError(f"data.path={spec.path!r} is not a folder; source='imagefolder' "
                                f"needs {_LAYOUT} (here {spec.train_split!r} and "
                                f"{spec.test_split!r})")
    if not os.path.isdir(folder):
        present = sorted(e.name for e in os.scandir(spec.path) if e.is_dir())
        field = "train_split" if split == spec.train_split else "test_split"
        raise DataNotFoundError(f"data.path={spec.path!r} has no {split!r} folder (data.{field}); "
                                f"its subfolders: {present}")
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    if not classes:
        loose = any(_is_image(e.name) for e in os.scandir(folder) if e.is_file())
        raise ValueError(f"{folder!r} has no class subfolders" +
                         (" (its images must go into one subfolder per class)" if loose else "")
                         + f"; expected {_LAYOUT}")
    return classes


@functools.lru_cache(maxsize=8)
def validate(spec: DataSpec) -> tuple[str, ...]:
    """Checks the layout of both splits without decoding any image; returns the classes."""
    train = class_names(spec, spec.train_split)
    test = class_names(spec, spec.test_split)
    if train != test:
        only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
        raise ValueError(f"{spec.path!r}: the {spec.train_split!r} and {spec.test_split!r} "
                         f"folders must hold the same classes; only in {spec.train_split!r}: "
                         f"{only_train[:5]}{' ...' if len(only_train) > 5 else ''}, only in "
                         f"{spec.test_split!r}: {only_test[:5]}"
                         f"{' ...' if len(only_test) > 5 else ''}")
    for split in (spec.train_split, spec.test_split):
        for name in train:
            class_dir = os.path.join(split_dir(spec, split), name)
            if not _has_image(class_dir):
                raise ValueError(f"class folder {class_dir!r} holds no image "
                                 f"({', '.join(IMAGE_EXTENSIONS)}); every class needs at "
                                 "least one in each split")
    for split in (spec.train_split, spec.test_split):
        check_headers(spec.path, split, tuple(train))
    return tuple(train)


def load(spec: DataSpec):
    raise ValueError(f"source='imagefolder' is streamed, not held in memory; use "
                     f"relgraph_jax.data.open_stream(data_cfg) ({spec.path!r})")


def read_image(path: str) -> Image.Image:
    """The image at `path`, decoded, as a Pillow RGB image (the transforms crop and resize
    it in Pillow); ValueError naming the file if unreadable."""
    try:
        with Image.open(path) as image:
            image.load()
            return imagenet.as_rgb(image)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot decode image file {path!r} ({type(e).__name__}: {e}); "
                         "replace it with a readable copy and rerun to resume (removing it "
                         "changes the data, which a workdir refuses once it has trained: then "
                         "use a new --workdir)") from e


@functools.lru_cache(maxsize=8)
def check_headers(path: str, split: str, classes: tuple[str, ...]) -> None:
    """Every listed file of the split opens and starts with a JPEG or PNG signature, so
    that a fake JPEG, an empty PNG or a dangling link is refused before the run writes
    anything. Only each file's first bytes are read (decoding all of ImageNet up front
    would take too long); threads overlap the reads of a network disk, a batch of files
    at a time. Cached like `listing`."""
    folder = os.path.join(path, split)
    names = listing(path, split, classes)[0]
    problems = []
    with concurrent.futures.ThreadPoolExecutor(_HEADER_THREADS) as pool:
        for start in range(0, len(names), _HEADER_BATCH):
            batch = [os.path.join(folder, n.decode()) for n in names[start:start + _HEADER_BATCH]]
            problems += [p for p in pool.map(_header_problem, batch) if p]
    if problems:
        raise ValueError(f"{len(problems)} of the {len(names)} images in {folder!r} cannot be "
                         f"opened: {'; '.join(problems[:5])}{' ...' if len(problems) > 5 else ''}"
                         ". Remove or replace them (or mend the links) and rerun; nothing was "
                         "written")


def _header_problem(path: str) -> str | None:
    """Why the file at `path` is not an image, or None."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(_PNG_SIGNATURE))
    except OSError as e:
        return f"{path!r} ({type(e).__name__}: {e.strerror})"
    if start.startswith(_JPEG_SIGNATURE) or start == _PNG_SIGNATURE:
        return None
    return f"{path!r} (no JPEG or PNG header: starts with {start!r})"


@functools.lru_cache(maxsize=8)
def listing(path: str, split: str, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(files, labels) of split folder PATH/SPLIT: every image's path relative to it as
    bytes, in torchvision's order, and its class index. Listed once per process (cached;
    the arrays are read-only): for ImageNet's train folder, 1.28 million files."""
    folder = os.path.join(path, split)
    files, labels = [], []
    for label, name in enumerate(classes):
        for image in _images(os.path.join(folder, name)):
            files.append(os.path.relpath(image, folder).encode())
            labels.append(label)
    files, labels = np.asarray(files, dtype=bytes), np.asarray(labels, np.int32)
    files.flags.writeable = labels.flags.writeable = False
    return files, labels


class FolderSplit:
    """One split as a random-access source: `split[i]` = {"image", "label"}, like a tfds
    data source. Paths are kept relative to the split folder in one bytes array, compact
    enough to be copied into every worker process."""

    def __init__(self, spec: DataSpec, split: str, classes: tuple[str, ...]):
        self.folder = split_dir(spec, split)
        self.files, self.labels = listing(spec.path, split, tuple(classes))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        path = os.path.join(self.folder, self.files[index].decode())
        return {"image": read_image(path), "label": self.labels[index]}
