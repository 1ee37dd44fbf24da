"""What identifies a data set's contents, cheaply, so a workdir can refuse other data.

A workdir's epochs must all come from one data set: an `.npz` replaced at the same path,
or another version of a tfds data set, would otherwise resume silently. `fingerprint`
gives a small JSON-able dict per source, taken before a run writes anything:

- cifar: the official release's MD5 (every accepted file has it);
- arrays: the file's size and BLAKE2b hash (one read of a file the run loads whole anyway);
- digits: the hash of scikit-learn's bundled digits file;
- tfds: name, version and the sizes of the two splits (from the metadata, no example read);
- imagefolder: the class names (label i is classes[i]) and per split, the number of
  images and a hash of their paths and labels (`imagefolder.listing`, cached: the stream
  reuses it; image contents are not read).
"""
from __future__ import annotations

import hashlib
import os

from relgraph_jax.data.spec import DataSpec

_CHUNK = 1 << 20


def _file_hash(path: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _arrays(spec: DataSpec) -> dict:
    return {"bytes": os.path.getsize(spec.path), "blake2b": _file_hash(spec.path)}


def _digits(spec: DataSpec) -> dict:
    from importlib import resources
    bundled = resources.files("sklearn.datasets.data") / "digits.csv.gz"
    return {"blake2b": _file_hash(str(bundled))}


def _tfds(spec: DataSpec) -> dict:
    from relgraph_jax.data import tfds_source
    train = tfds_source.open_split(spec, spec.train_split)
    test = tfds_source.open_split(spec, spec.test_split)
    return {"version": str(train.dataset_info.version), spec.train_split: len(train),
            spec.test_split: len(test)}


def _imagefolder(spec: DataSpec) -> dict:
    from relgraph_jax.data import imagefolder
    classes = imagefolder.validate(spec)
    out = {"classes": list(classes)}
    for split in (spec.train_split, spec.test_split):
        files, labels = imagefolder.listing(spec.path, split, classes)
        digest = hashlib.blake2b(digest_size=16)
        for name, label in zip(files.tolist(), labels.tolist()):
            digest.update(b"%s\t%d\n" % (name, label))
        out[split] = {"images": len(labels), "blake2b": digest.hexdigest()}
    return out


def _cifar(spec: DataSpec) -> dict:
    from relgraph_jax.data import cifar
    return {"md5": cifar.RELEASES[spec.name].md5}  # every accepted file has it


_BY_SOURCE = {"cifar": _cifar, "arrays": _arrays, "digits": _digits, "tfds": _tfds, "imagefolder": _imagefolder}


def fingerprint(spec: DataSpec) -> dict:
    """{"source", "name", and what identifies the contents} of a validated data spec."""
    return {"source": spec.source, "name": spec.name, **_BY_SOURCE[spec.source](spec)}
