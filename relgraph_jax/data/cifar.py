"""The official CIFAR-10 release, `cifar-10-python.tar.gz`, read without TensorFlow.

Where the tarball comes from: `data.path`, when the user already has it; otherwise
`data.cache_dir` (default `default_cache_dir()`), where it is downloaded on first use.
Either way the file must have the published MD5, checked on every run (about 0.3 s), so
every workdir's CIFAR-10 is the same bytes. A download goes to a temporary file in the
cache folder, is checked, then renamed: an interrupted or damaged download never becomes
the cached file.

The batches are Python pickles. Since the file comes from the network, they are read with
an unpickler that admits only what the format holds (dicts, lists, bytes, ints and uint8
numpy arrays) and refuses every other global, so a tampered file cannot run code.
"""
from __future__ import annotations

import codecs
import dataclasses
import errno
import functools
import hashlib
import http.client
import io
import os
import pickle
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from typing import Callable

import numpy as np

from relgraph_jax import machine
from relgraph_jax.data import dataset as dataset_lib
from relgraph_jax.data.spec import DataNotFoundError, DataSpec

_CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 60  # per network read: a stalled connection fails instead of hanging
# Errors of writing the download (not of the network): the remedy is another folder.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES)


@dataclasses.dataclass(frozen=True)
class Release:
    """One official release: where it is published, its checksum and what it holds."""
    url: str
    md5: str
    size: int  # bytes; only to word the message for a truncated file
    folder: str  # the tarball's top folder
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    meta_member: str
    labels_key: str
    names_key: str
    image_shape: tuple[int, int, int]
    num_train: int
    num_test: int
    num_classes: int

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def member(self, name: str) -> str:
        return f"{self.folder}/{name}"


# The one place the official URL and checksum live (published with the data set).
RELEASES = {
    "cifar10": Release(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a", size=170_498_071,
        folder="cifar-10-batches-py",
        train_members=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_members=("test_batch",), meta_member="batches.meta",
        labels_key="labels", names_key="label_names", image_shape=(32, 32, 3),
        num_train=50_000, num_test=10_000, num_classes=10),
}

# A fetch copies the bytes at a URL into an open binary file (tests pass their own).
Fetch = Callable[[str, "io.BufferedWriter"], None]


def default_cache_dir() -> str:
    """$XDG_CACHE_HOME/relgraph_jax, else ~/.cache/relgraph_jax."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "relgraph_jax")


def release(spec: DataSpec) -> Release:
    return RELEASES[spec.name]


def tarball_path(spec: DataSpec) -> str:
    """data.path if given, else the file's place in the cache folder."""
    return spec.path or os.path.join(spec.cache_dir or default_cache_dir(),
                                     release(spec).filename)


def fetch_url(url: str, out) -> None:
    """Streams `url` (http(s) or file://) into `out`, with a progress bar on a terminal."""
    from tqdm import tqdm
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="download", disable=None,
                  file=sys.stderr) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))


def file_md5(path: str) -> str:
    """The file's MD5, hashed once per process while its size and mtime stay the same
    (a run checks the tarball when it validates the data and again when it loads it)."""
    stat = os.stat(path)
    return _md5_of(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _md5_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(path: str, rel: Release, what: str, remedy: str) -> None:
    found = file_md5(path)
    if found != rel.md5:
        size = os.path.getsize(path)
        short = (f"; it has {size:,} bytes, the official file {rel.size:,} (truncated?)"
                 if size < rel.size else "")
        raise ValueError(f"{what} {path!r} has MD5 {found}, not the published {rel.md5} of "
                         f"{rel.filename}{short}: {remedy}")


def download(rel: Release, dest: str, fetch: Fetch = fetch_url) -> None:
    """Downloads `rel` to `dest` through a checked temporary file in the same folder,
    named after this process (a killed run's is deleted by the next download)."""
    folder = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(folder, exist_ok=True)
        for part in machine.leftovers(folder, f".{rel.filename}."):  # of killed runs
            os.remove(part)
        tmp = tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False,
                                          prefix=machine.owned_prefix(f".{rel.filename}."))
    except OSError as e:
        raise ValueError(f"data.cache_dir {folder!r} is not writable ({e.strerror}); set "
                         "data.cache_dir to a folder you can write to, or data.path to a "
                         f"downloaded {rel.filename}") from e
    print(f"downloading {rel.url} into {folder}", file=sys.stderr)
    try:
        with tmp:
            try:
                fetch(rel.url, tmp)
            except OSError as e:
                if e.errno in _DISK_ERRORS:
                    raise ValueError(f"could not write the download into data.cache_dir "
                                     f"{folder!r} ({e.strerror}): free space there or set "
                                     "data.cache_dir to another folder, and rerun") from e
                raise
        _check_md5(tmp.name, rel, "the downloaded file", "the download was damaged; rerun to "
                   "download it again")
        machine.chmod_as_created(tmp.name, 0o666)  # as a plain download's, not 0600
        os.replace(tmp.name, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise DataNotFoundError(
            f"could not download {rel.url} ({type(e).__name__}: {reason}); rerun to retry, or "
            f"download it yourself and set data.path to the file") from e
    finally:
        if os.path.exists(tmp.name):
            os.remove(tmp.name)


def ensure_tarball(spec: DataSpec, fetch: Fetch = fetch_url) -> str:
    """The verified tarball's path, downloading it into the cache first if it is missing."""
    rel, path = release(spec), tarball_path(spec)
    if spec.path:
        if not os.path.isfile(path):
            raise DataNotFoundError(
                f"data.path={path!r} not found (working directory {os.getcwd()!r}); give the "
                f"downloaded {rel.filename}, or leave data.path unset to download it into "
                f"data.cache_dir")
        _check_md5(path, rel, "data.path", f"give the official {rel.filename} ({rel.url})")
    elif os.path.isfile(path):
        _check_md5(path, rel, "the cached file", "delete it and rerun to download it again")
    else:
        download(rel, path, fetch)
    return path


def _read_members(path: str, rel: Release) -> dict[str, bytes]:
    """The bytes of every batch and of the metadata, in one pass through the tarball."""
    wanted = {rel.member(m) for m in (*rel.train_members, *rel.test_members, rel.meta_member)}
    found = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            names = []
            for member in archive:
                names.append(member.name)
                if member.name in wanted and member.isfile():
                    found[member.name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ValueError(f"{path!r} is not a readable tar.gz ({type(e).__name__}: {e}); is it "
                         f"truncated? Expected the official {rel.filename}") from e
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"{path!r} is not {rel.filename}: it lacks {missing}; it holds "
                         f"{sorted(names)[:5]}{' ...' if len(names) > 5 else ''}")
    return found


_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array-unpickling helper, any version
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
            # Python 3's protocol-2 pickles write bytes as _codecs.encode(text, 'latin1').
            ("_codecs", "encode"): codecs.encode}


class _BatchUnpickler(pickle.Unpickler):
    """Admits the globals a batch needs to rebuild numpy arrays, and no other."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a "
                                         "CIFAR batch")
        return _ALLOWED[(module, name)]


def unpickle(blob: bytes, where: str) -> dict:
    """A batch as a dict with str keys (the release's Python 2 pickles have byte keys)."""
    try:
        batch = _BatchUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # any failure of a hostile or damaged pickle: one message
        raise ValueError(f"{where} is not a CIFAR batch ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict):
        raise ValueError(f"{where} is not a CIFAR batch (a {type(batch).__name__}, not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def _split(members: dict[str, bytes], names: tuple[str, ...], rel: Release,
           path: str) -> tuple[np.ndarray, np.ndarray]:
    """The batches `names` as (N, H, W, C) uint8 images and int64 labels."""
    height, width, channels = rel.image_shape
    images, labels = [], []
    for name in names:
        where = f"{path!r} member {rel.member(name)}"
        batch = unpickle(members[rel.member(name)], where)
        data, batch_labels = batch.get("data"), batch.get(rel.labels_key)
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == height * width * channels):
            raise ValueError(f"{where}: 'data' must be uint8 rows of {height * width * channels} "
                             f"pixels, got {getattr(data, 'dtype', type(data).__name__)} "
                             f"{getattr(data, 'shape', '')}")
        batch_labels = np.asarray(batch_labels if batch_labels is not None else [])
        if batch_labels.shape != (data.shape[0],) or not np.issubdtype(batch_labels.dtype,
                                                                       np.integer):
            raise ValueError(f"{where}: {rel.labels_key!r} must be {data.shape[0]} integer "
                             f"labels, got shape {batch_labels.shape}")
        # Rows are channel-major (1024 red, 1024 green, 1024 blue values, row by row).
        images.append(data.reshape(-1, channels, height, width).transpose(0, 2, 3, 1))
        labels.append(batch_labels.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def class_names(members: dict[str, bytes], rel: Release, path: str) -> tuple[str, ...]:
    meta = unpickle(members[rel.member(rel.meta_member)], f"{path!r} member "
                    f"{rel.member(rel.meta_member)}")
    return tuple(n.decode() if isinstance(n, bytes) else str(n)
                 for n in meta.get(rel.names_key, ()))


def validate(spec: DataSpec) -> None:
    """Finds (or downloads) the tarball and checks its MD5; no batch is read."""
    rel = release(spec)
    if spec.image_size not in (None, rel.image_shape[0]):
        raise ValueError(f"{spec.name} images are {rel.image_shape[0]}x{rel.image_shape[1]} but "
                         f"data.image_size={spec.image_size}; set it to match or leave it unset")
    ensure_tarball(spec)


def load(spec: DataSpec) -> dataset_lib.Dataset:
    """Reads every batch of the verified tarball into a Dataset."""
    rel, path = release(spec), ensure_tarball(spec)
    members = _read_members(path, rel)
    classes = class_names(members, rel, path)
    if len(classes) != rel.num_classes:
        raise ValueError(f"{path!r}: {rel.meta_member} names {len(classes)} classes, "
                         f"expected {rel.num_classes}")
    x_train, y_train = _split(members, rel.train_members, rel, path)
    x_test, y_test = _split(members, rel.test_members, rel, path)
    dataset_lib.check_labels(y_train, y_test, rel.num_classes, repr(path))
    return dataset_lib.make_dataset(spec.name, x_train, y_train, x_test, y_test, rel.num_classes)

