"""Read back the weight and mask dumps a sweep wrote with `train.dump_epochs` (the file
format is `relgraph_jax.train.dumps`'s), selected by graph, seed and epoch.

Only the files that match are read whole: the epoch is in the file name, and the graph
and seed come from the small record member, so picking a few graphs out of a study's
tens of thousands of files stays cheap.
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
import zlib

import numpy as np

from relgraph_jax.train.dumps import DUMPS_DIR, MASK, RECORD, WEIGHTS, parse_name


@dataclasses.dataclass(frozen=True, eq=False)
class Dump:
    """One variant at one evaluated epoch. record: its results.jsonl record (graph, seed,
    test_error, ...); layers: {layer path: (weights, mask)}, weights (cin, cout) or (kh,
    kw, cin, cout) at the variant's own channels, mask a (cin, cout) bool array."""
    variant: int
    epoch: int
    record: dict
    layers: dict
    path: str


def load_dumps(workdir: str, graph: str | None = None, seed: int | None = None,
               epoch: int | None = None) -> list[Dump]:
    """The dumps of WORKDIR/dumps whose record has this graph spec, seed and epoch (None:
    any), sorted by (variant, epoch). Raises FileNotFoundError when the workdir has no
    dumps folder and ValueError naming a damaged file, each in one line."""
    folder = os.path.join(workdir, DUMPS_DIR)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder; dumps are written by a sweep "
                                "trained with train.dump_epochs set (docs/analysis.md)")
    found = sorted((key, name) for name in os.listdir(folder)
                   if (key := parse_name(name)) and (epoch is None or key[1] == epoch))
    out = []
    for (variant, at), name in found:
        path = os.path.join(folder, name)
        try:
            with np.load(path) as data:
                record = json.loads(data[RECORD].item())
                if not isinstance(record, dict):
                    raise ValueError(f"its record is {record!r}, not a JSON object")
                if (graph is not None and record.get("graph") != graph) or \
                        (seed is not None and record.get("seed") != seed):
                    continue
                layers = {key[len(MASK):]: _layer(data[WEIGHTS + key[len(MASK):]], data[key])
                          for key in data.files if key.startswith(MASK)}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            why = " ".join(f"{type(e).__name__}: {e}".split())[:150]
            raise ValueError(f"{path}: damaged dump ({why}); move it out of the folder to "
                             "read the others") from None
        out.append(Dump(variant, at, record, layers, path))
    return out


def _layer(kept: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dense kernel, mask) of a layer from its weights on the mask's 1s."""
    kernel = np.zeros(kept.shape[:-1] + mask.shape, kept.dtype)
    kernel[..., mask] = kept
    return kernel, mask
