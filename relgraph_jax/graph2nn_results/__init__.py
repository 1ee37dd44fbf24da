"""The authors' recorded runs (graph2nn's `analysis/final_results`), read as records.

Source: the `final_results` folder or a `final_results.tar.xz`; the package ships the
authors' file (MIT, `LICENSE` and `README.md` beside it) as `DEFAULT_SRC`. Each task
folder holds, per epoch, `names_<task>[_seedS]_epoch<E>.npy` (15 string columns that
name the run) and `results_<task>[_seedS]_epoch<E>.npy` (rows x seeds x 8 numbers:
params in millions, GFLOPs, seconds per iteration, top-1 and top-5 error in %, nodes,
width, training seed). Rows of the two files belong together. A run's graph is found
from the names columns sparsity (k/n), p and graph seed, which equal the paper set's
csv row rounded to 6 decimals; the plain-layer baseline is the complete graph.
"""
from __future__ import annotations

import dataclasses
import io
import lzma
import os
import re
import tarfile
import zlib
from typing import Callable, Iterator

import numpy as np

from relgraph_jax.graphs import catalog

# The authors' final_results, shipped as package data: a clone and a wheel both have it.
DEFAULT_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "final_results.tar.xz")


@dataclasses.dataclass(frozen=True)
class Task:
    """One family of recorded runs: its model family, graph set and input size."""
    model: str
    graph_set: str
    input_shape: tuple
    baseline: str  # the names file's layer type of the complete-graph run


TASKS = {
    "mlp_cifar10": Task("mlp", "n64_3942", (32, 32, 3), "linear"),
    "cnn6_imagenet": Task("cnn8", "n64_52", (224, 224, 3), "convbasic"),
    "resnet34_imagenet": Task("resnet34", "n64_52", (224, 224, 3), "channelbasic"),
    "resnet34_sep_imagenet": Task("resnet34sep", "n64_52", (224, 224, 3), "channelsep"),
    "resnet50_imagenet": Task("resnet50", "n64_52", (224, 224, 3), "bottleneck"),
    "efficientnet_imagenet": Task("efficientnet_b0", "n16_48", (224, 224, 3), "mbconv"),
}

RESULT_FIELDS = ("params_m", "gflops", "time_per_iter", "top1_error", "top5_error", "nodes",
                 "width", "train_seed")
_FILE = re.compile(r"(?:^|/)(?P<folder>[a-z0-9_]+)/(?P<kind>names|results)_(?P<task>[a-z0-9_]+?)"
                   r"(?:_seed(?P<seed>\d+))?_epoch(?P<epoch>\d+)\.npy$")


@dataclasses.dataclass(frozen=True)
class Run:
    """One recorded run at one epoch: graph spec, training seed and the logged numbers."""
    task: str
    graph: str
    seed: int
    epoch: int
    params_m: float
    gflops: float
    time_per_iter: float
    top1_error: float
    top5_error: float
    nodes: int
    width: int


def _task_of(folder: str) -> str | None:
    return next((t for t in TASKS if folder == t or re.fullmatch(rf"{t}_seed\d+", folder)), None)


def iter_files(src: str, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every file under src (a folder or a tar archive) whose '/'-separated
    path `wanted` accepts; a damaged archive is a ValueError naming it."""
    if os.path.isdir(src):
        for root, _, files in os.walk(src):
            for name in sorted(files):
                path = os.path.join(root, name)
                if wanted(path.replace(os.sep, "/")):
                    try:
                        with open(path, "rb") as f:
                            blob = f.read()
                    except OSError as e:
                        raise ValueError(f"cannot read {path!r} ({e.strerror})") from e
                    yield path, blob
        return
    try:
        is_tar = tarfile.is_tarfile(src)
    except OSError as e:
        raise ValueError(f"cannot read --src {src!r} ({e.strerror})") from e
    if not is_tar:
        raise ValueError(f"--src {src!r} is neither a final_results folder nor a tar archive")
    try:
        with tarfile.open(src) as archive:
            for member in archive:
                if member.isfile() and wanted(member.name):
                    yield member.name, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as e:
        raise ValueError(f"--src {src!r} is not a readable tar archive ({type(e).__name__}: "
                         f"{e}); is it truncated? Give graph2nn's final_results.tar.xz") from e


def _arrays(src: str) -> Iterator[tuple[re.Match, str, np.ndarray]]:
    """(file-name match, path, array) of every names/results file under src."""
    for path, blob in iter_files(src, lambda name: bool(_FILE.search(name))):
        try:
            array = np.load(io.BytesIO(blob), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{path} in --src {src!r} is not a readable .npy "
                             f"({type(e).__name__}: {e})") from e
        yield _FILE.search(path.replace(os.sep, "/")), path, array


@dataclasses.dataclass
class _Pair:
    names: np.ndarray | None = None
    results: np.ndarray | None = None


def load_runs(src: str, tasks, epochs: str = "last") -> dict[str, list[Run]]:
    """Runs of each task in `tasks`, at the last recorded epoch ("last") or every epoch ("all").

    ValueError for an unknown task, a missing source, a row whose graph is not in the
    task's paper set, or a names file without its results file.
    """
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; allowed: {sorted(TASKS)}")
    if not os.path.exists(src):
        raise ValueError(f"--src {src!r} does not exist; give graph2nn's final_results folder "
                         "or final_results.tar.xz")
    pairs: dict[tuple, _Pair] = {}
    for found, path, array in _arrays(src):
        task = _task_of(found["folder"])
        if task not in tasks:
            continue
        key = (task, found["folder"], int(found["epoch"]))
        if found["kind"] == "results" and (array.ndim != 3 or array.shape[2] != len(RESULT_FIELDS)):
            raise ValueError(f"{path}: graph2nn's results have {len(RESULT_FIELDS)} numbers per "
                             f"run (rows x seeds x {len(RESULT_FIELDS)}), got shape {array.shape}")
        setattr(pairs.setdefault(key, _Pair()), found["kind"], array)
    runs = {task: [] for task in tasks}
    for task in tasks:
        keys = sorted(k for k in pairs if k[0] == task)
        if epochs == "last" and keys:
            last = max(k[2] for k in keys)
            keys = [k for k in keys if k[2] == last]
        for key in keys:
            pair = pairs[key]
            if pair.names is None or pair.results is None:
                raise ValueError(f"{key[1]} epoch {key[2]}: names and results files must come "
                                 "in pairs")
            runs[task] += _rows(task, key[2], pair.names, pair.results)
    return runs


def _rows(task: str, epoch: int, names: np.ndarray, results: np.ndarray) -> list[Run]:
    if len(names) != len(results):
        raise ValueError(f"{task} epoch {epoch}: {len(names)} names rows but {len(results)} "
                         "results rows")
    runs = []
    for name_row, seeds in zip(names, results):
        spec = graph_spec(task, name_row)
        for values in seeds:
            fields = dict(zip(RESULT_FIELDS, (float(v) for v in values)))
            runs.append(Run(task, spec, int(fields.pop("train_seed")), epoch,
                            nodes=int(fields.pop("nodes")), width=int(fields.pop("width")),
                            **fields))
    return runs


def graph_spec(task: str, name_row) -> str:
    """The project's spec of the graph a names row describes (ValueError if none fits)."""
    info = TASKS[task]
    nodes = int(float(name_row[2]))
    if name_row[0] == info.baseline:
        return f"complete:n={nodes}"
    key = (round(float(name_row[4]), 6), round(float(name_row[5]), 6), int(float(name_row[7])))
    index = catalog.index_by_config_key(info.graph_set).get(key)
    if index is None:
        raise ValueError(f"{task}: no graph of paper set {info.graph_set} has k/n={key[0]}, "
                         f"p={key[1]}, seed={key[2]} (names row {list(map(str, name_row))})")
    return f"paper:{info.graph_set}/{index}"

