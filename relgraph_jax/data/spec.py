"""A config's `data` block, checked and normalised into one frozen `DataSpec`.

Every check here is on the config alone (no file is opened), so a typo in a source,
name or field fails at once with the allowed values spelled out.
"""
from __future__ import annotations

import dataclasses
import numbers
import os
from typing import Any, Mapping

from relgraph_jax.config_fields import REQUIRED, ConfigField, fields_of, register_config_fields
from relgraph_jax.data.augment import CROP_STYLES

SOURCES = ("cifar", "arrays", "tfds", "digits", "imagefolder")
TFDS_NAMES = ("cifar10", "imagenet2012", "fashion_mnist", "mnist")
STREAMING_NAMES = ("imagenet2012",)
# The default data.workers: the usable cores, at most this many. Each worker is a spawned
# process that imports jax and holds a copy of the file list, and every evaluation starts
# a second pool: one per core of a 240-vCPU TPU v4 host would be hundreds of processes.
# A host that needs more decoders sets data.workers (benchmarks/input.py measures the rate
# per worker).
DEFAULT_WORKERS_CAP = 16
# The data block's rows of the config-field table. Their values are checked together, per
# source, by `parse`; where the CIFAR release is cached, the decoding workers and their
# prefetch depth change no byte or batch (data/stream.py), so a resume may change them.
register_config_fields(*(ConfigField(f"data.{key}", default, summary, identity=identity)
                         for key, default, summary, identity in (
    ("source", REQUIRED, f"where the data come from: one of {list(SOURCES)}", True),
    ("name", None, "the data set (source's default when unset)", True),
    ("path", None, "the file or folder to read (arrays, imagefolder, cifar)", True),
    ("cache_dir", None, "source='cifar': where the release is downloaded to", False),
    ("augment", True, "random crops and flips in training", True),
    ("crop_pad", 4, "padding of the random crops", True),
    ("crop_style", "graph2nn", f"one of {list(CROP_STYLES)}", True),
    ("flip", True, "random horizontal flips", True),
    ("image_size", None, "streams: the size images are resized and cropped to", True),
    ("tfds_data_dir", None, "source='tfds': where the prepared data live", True),
    ("train_split", None, "the training split (source's default when unset)", True),
    ("test_split", None, "the test split (source's default when unset)", True),
    ("validation_size", 0, "training examples held out for validation", True),
    ("workers", None, "streams: decoding processes (unset: the usable cores, at most 16)", False),
    ("prefetch", None, "streams: chunks each worker keeps ready (unset: 2)", False))))
# Sources whose data.path names what to read: an .npz, a folder, a downloaded tarball.
PATH_SOURCES = ("arrays", "imagefolder", "cifar")
PREPARE_CIFAR10 = ("python -m relgraph_jax.data.prepare_cifar10 --src cifar10_jpeg.npz "
                   "--out data_cache/cifar10_jpeg.npz")


class DataNotFoundError(FileNotFoundError, ValueError):
    """A data set that is not on disk: catchable as FileNotFoundError or as ValueError."""


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The validated data block: which data set, where it lives, how it is augmented."""
    source: str
    name: str
    path: str | None
    augment: bool
    crop_pad: int
    flip: bool
    image_size: int | None
    tfds_data_dir: str | None
    train_split: str
    test_split: str
    crop_style: str = "graph2nn"  # see augment.CROP_STYLES
    validation_size: int = 0  # training examples held out for validation (data/validation.py)
    # Streams: decoding worker processes (0: a thread of the trainer; `parse` fills in
    # `default_workers()` when the config leaves it unset) and chunks each keeps ready.
    workers: int = 0
    prefetch: int = 2
    cache_dir: str | None = None  # source='cifar': where the release is downloaded to
    workers_capped_from: int | None = None  # data.workers asked for, when above the cores

    @property
    def streaming(self) -> bool:
        """True for data sets read batch by batch from disk rather than held in memory."""
        return is_streamed(self.source, self.name)


def is_streamed(source: str, name: str) -> bool:
    """Whether the data set `name` of `source` is streamed: every image folder, and the
    tfds data sets too large to hold in memory (STREAMING_NAMES)."""
    return source == "imagefolder" or (source == "tfds" and name in STREAMING_NAMES)


def parse(data_cfg: Any) -> DataSpec:
    """Checks field names, types and source/name combinations of a data block."""
    if isinstance(data_cfg, DataSpec):
        return data_cfg
    if not (isinstance(data_cfg, Mapping) or hasattr(data_cfg, "keys")):
        raise TypeError(f"data config must be a mapping or ConfigDict, "
                        f"got {type(data_cfg).__name__}")
    defaults = {key: f.default for key, f in fields_of("data").items()}
    unknown = sorted(set(data_cfg.keys()) - set(defaults))
    if unknown:
        raise ValueError(f"unknown data config field(s) {unknown}; allowed: {list(defaults)}")

    def get(key: str) -> Any:
        return data_cfg.get(key, defaults[key])

    source = data_cfg.get("source")
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; allowed: {list(SOURCES)}"
                         + _source_hint(source))
    name, path, tfds_data_dir = get("name"), get("path"), get("tfds_data_dir")
    cache_dir = get("cache_dir")
    if source not in PATH_SOURCES and path:
        raise ValueError(f"data.path={path!r} is only used with source in {list(PATH_SOURCES)}, "
                         f"not source={source!r}")
    if source != "tfds" and tfds_data_dir:
        raise ValueError(f"data.tfds_data_dir={tfds_data_dir!r} is only used with "
                         f"source='tfds', not source={source!r}")
    if source != "cifar" and cache_dir:
        raise ValueError(f"data.cache_dir={cache_dir!r} is only used with source='cifar', "
                         f"not source={source!r}")

    if source == "cifar":
        from relgraph_jax.data.cifar import RELEASES
        if name not in RELEASES:
            raise ValueError(f"unknown source='cifar' data set name={name!r}; allowed: "
                             f"{list(RELEASES)}")
        for field, value in (("path", path), ("cache_dir", cache_dir)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"data.{field}={value!r}: must be a non-empty path, or unset")
    elif source == "digits":
        if name not in (None, "", "digits"):
            raise ValueError(f"source='digits' holds the single data set 'digits', "
                             f"got name={name!r}" + _source_hint(name))
        name = "digits"
    elif source == "tfds":
        if name not in TFDS_NAMES:
            hint = " (the bundled digits are source='digits')" if name == "digits" else ""
            raise ValueError(f"unknown tfds data set name={name!r}; "
                             f"allowed: {list(TFDS_NAMES)}{hint}")
    else:
        if not isinstance(path, str) or not path:
            raise ValueError(f"source='arrays' needs data.path to an .npz file, got "
                             f"path={path!r}; for the JPEG copy of CIFAR-10 run "
                             f"`{PREPARE_CIFAR10}`" if source == "arrays" else
                             f"source='imagefolder' needs data.path to a folder with train/ "
                             f"and val/ subfolders of class folders, got path={path!r}")
        if name in (None, ""):
            name = _stem(path)
        if not isinstance(name, str):
            raise TypeError(f"data.name must be a string, got {name!r}")

    image_size = get("image_size")
    if image_size is not None:
        image_size = _int(image_size, "image_size", minimum=1)
    default_test = ("val" if source == "imagefolder" else
                    "validation" if name == "imagenet2012" else "test")
    train_split = _text(get("train_split") or "train", "train_split")
    test_split = _text(get("test_split") or default_test, "test_split")
    if train_split == test_split:
        raise ValueError(f"data.train_split and data.test_split are both {train_split!r}: the "
                         "model would be tested on the images it trains on; give two splits")
    crop_style = get("crop_style")
    if crop_style not in CROP_STYLES:
        raise ValueError(f"data.crop_style={crop_style!r}: allowed {list(CROP_STYLES)}")
    if source not in ("tfds", "imagefolder") and (train_split, test_split) != ("train", "test"):
        raise ValueError(f"train_split/test_split are only used with source='tfds' or "
                         f"'imagefolder', got {train_split!r}/{test_split!r} for "
                         f"source={source!r}")
    workers, prefetch = get("workers"), get("prefetch")
    if not is_streamed(source, name) and (workers, prefetch) != (None, None):
        raise ValueError(f"data.workers/data.prefetch ({workers!r}/{prefetch!r}) are only used "
                         f"by streamed data sets (source='imagefolder', tfds imagenet2012), "
                         f"not {name!r}")
    workers = default_workers() if workers is None else _int(workers, "workers", minimum=0)
    # More decoding processes than cores only queue for the CPU (1000 on 2 cores made no
    # batch in 5 minutes); the caller says so (sources.validate).
    cores = usable_cores()
    capped_from, workers = (workers, cores) if workers > cores else (None, workers)
    prefetch = 2 if prefetch is None else _int(prefetch, "prefetch", minimum=1)
    return DataSpec(source=source, name=name,
                    path=path if source in PATH_SOURCES else None, cache_dir=cache_dir,
                    augment=_bool(get("augment"), "augment"),
                    crop_pad=_int(get("crop_pad"), "crop_pad", minimum=0),
                    crop_style=crop_style,
                    flip=_bool(get("flip"), "flip"), image_size=image_size,
                    tfds_data_dir=tfds_data_dir or None,
                    train_split=train_split, test_split=test_split,
                    validation_size=_validation_size(get("validation_size"), source, name),
                    workers=workers, prefetch=prefetch, workers_capped_from=capped_from)


def _validation_size(value: Any, source: str, name: str) -> int:
    """Held-out training examples: resident data sets only, for now."""
    size = _int(value, "validation_size", minimum=0)
    if size and is_streamed(source, name):
        raise ValueError(f"data.validation_size={size}: a validation split of the streamed "
                         f"{name} is not supported yet; set data.validation_size=0 (and "
                         "search.metric='test_error' for a search)")
    return size


def default_workers() -> int:
    """data.workers when the config leaves it unset: the usable cores, at most
    DEFAULT_WORKERS_CAP."""
    return min(usable_cores(), DEFAULT_WORKERS_CAP)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _source_hint(value: Any) -> str:
    """Suggests the right source for a data set name given in the wrong field."""
    if value == "cifar10":
        return " (did you mean source='cifar', name='cifar10', the official release?)"
    if value in TFDS_NAMES:
        return f" (did you mean source='tfds', name='{value}'?)"
    if value == "digits":
        return " (did you mean source='digits'?)"
    if isinstance(value, str) and value.endswith(".npz"):
        return f" (did you mean source='arrays', path='{value}'?)"
    return ""


def _stem(path: str) -> str:
    base = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return base[:-4] if base.endswith(".npz") else base


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"data.{field} must be True or False, got {value!r}")
    return value


def _int(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"data.{field} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"data.{field} must be a string, got {value!r}")
    return value
