"""Weight and mask dumps (graph2nn's RGRAPH.SAVE_GRAPH): at the evaluated epochs that
`train.dump_epochs` chooses, one compressed file per variant holding each graph layer's
weights and mask and the variant's record of that epoch, so that how training shapes
the weights of each graph can be studied after the run.

`WORKDIR/dumps/variant{V:05d}_epoch{E:04d}.npz` (np.savez_compressed) holds:
  record        the variant's results.jsonl line of epoch E (JSON text, a 0-d str array)
  mask/PATH     the graph layer's (cin, cout) channel mask at the variant's own channels,
                without the zero padding of its bucket, bool
  weights/PATH  the layer's weights where the mask is 1, `kernel[..., mask]`: (kept,), or
                (kh, kw, kept) for a conv. The kernel is zero elsewhere (the mask's
                gradient and weight decay keep it there), and those zeros would make a
                sparse graph's file half as large again and five times slower to write.
PATH is the layer's path in the parameter tree ("graph0", "stage1/block0/conv1");
`relgraph_jax.analysis.dumps` gives the (cin, cout) or (kh, kw, cin, cout) kernel back.

Files are written by process 0 only, after the epoch's records and before its
checkpoint, each whole or not at all (a temporary file renamed). A file that exists is
never written again: a resume that evaluates an epoch again leaves it as it is.
This module imports no jax (the analysis reads its format); the model family is imported
where a layer list is needed.
"""
from __future__ import annotations

import io
import os
import re
from typing import Sequence

import numpy as np

from relgraph_jax import results
from relgraph_jax.config_fields import ConfigField, register_config_fields
from relgraph_jax.search import live as search_live
from relgraph_jax.train import periodic

DUMPS_DIR = "dumps"
ALL = "all"
RECORD, WEIGHTS, MASK = "record", "weights/", "mask/"
_NAME = re.compile(r"variant(\d+)_epoch(\d+)\.npz")


def file_name(variant: int, epoch: int) -> str:
    return f"variant{variant:05d}_epoch{epoch:04d}.npz"


def parse_name(name: str) -> tuple[int, int] | None:
    """(variant, epoch) of a dump's file name; None for any other file (a .tmp left by a
    kill)."""
    m = _NAME.fullmatch(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _is_epoch(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _check(name: str, value) -> None:
    """(): off; positive epochs; ("all",): every evaluated epoch (on the command line
    `--config.train.dump_epochs=all`, which config_flags reads as that tuple)."""
    if not (isinstance(value, Sequence) and not isinstance(value, (str, bytes))
            and (list(value) == [ALL] or all(_is_epoch(v) for v in value))):
        raise ValueError(f"{name}={value!r}: must be () (no dumps), a tuple of epochs >= 1 "
                         f"such as (10, 100, 200), or ({ALL!r},) for every evaluated epoch")


register_config_fields(
    ConfigField("train.dump_epochs", (), "evaluated epochs whose graph-layer weights, masks "
                f"and records are dumped to WORKDIR/{DUMPS_DIR} (`('all',)`: every one; "
                "docs/analysis.md)", _check, identity=False),
)


def chosen_epochs(config) -> set[int]:
    """The epochs `config.train.dump_epochs` dumps, checked against the epochs the run
    evaluates (every `train.eval_every`, the last, a live search's rungs) and the model:
    one line naming the field for an epoch never evaluated or a layer implementation
    without dense kernels."""
    train = config.train
    asked = tuple(train.dump_epochs)
    if not asked:
        return set()
    impl = config.model.get("impl", "mask")
    if impl != "mask":
        raise ValueError(f"train.dump_epochs={asked!r} needs model.impl='mask' (dense kernels "
                         f"beside their masks); got model.impl={impl!r}")
    rungs = (search_live.policy_of(config.search).rungs(train.epochs)
             if config.search.policy != "none" else ())
    evaluation = periodic.Evaluation(train.eval_every, train.epochs, lambda e: e in rungs)
    evaluated = [e for e in range(1, train.epochs + 1) if evaluation.after(e)]
    if asked == (ALL,):
        return set(evaluated)
    never = sorted(set(asked) - set(evaluated))
    if never:
        raise ValueError(f"train.dump_epochs={asked!r}: epoch {never[0]} is never evaluated "
                         f"(train.eval_every={train.eval_every}, train.epochs={train.epochs}); "
                         f"evaluated epochs: {results.name_some(evaluated)}")
    return set(asked)


class Dumps:
    """Writes a sweep's dumps. Every process asks `due` and gathers the states (a
    collective in a multi-host run); only the `writer` (process 0) writes."""

    def __init__(self, config, workdir: str, writer: bool):
        self.epochs = chosen_epochs(config)
        self.model_cfg, self.input_shape = config.model, tuple(config.input_shape)
        self.directory = os.path.join(workdir, DUMPS_DIR)
        self.writer = writer
        self._layers = {}

    def due(self, epoch: int) -> bool:
        return epoch in self.epochs

    def write(self, records: Sequence[dict], variants: Sequence, states: list) -> int:
        """Writes the dump of every record's variant not dumped yet; returns how many.
        variants: the sweep's (`Variant`s with these ids); states: [(variant ids, host
        state stacked over them)] (`trainer._host_states`)."""
        if not self.writer:
            return 0
        os.makedirs(self.directory, exist_ok=True)
        by_id = {v.id: v for v in variants}
        where = {i: (state, row) for ids, state in states for row, i in enumerate(ids)}
        written = 0
        for rec in records:
            path = os.path.join(self.directory, file_name(rec["variant"], rec["epoch"]))
            if os.path.exists(path):
                continue
            state, row = where[rec["variant"]]
            arrays = {RECORD: np.array(results.encode([rec]).decode().rstrip("\n"))}
            for layer, cin, cout in self._graph_layers(by_id[rec["variant"]]):
                mask = _at(state.masks, layer)["mask"][row][:cin, :cout] > 0
                kernel = _at(state.params, layer)["kernel"][row][..., :cin, :cout]
                arrays[MASK + layer], arrays[WEIGHTS + layer] = mask, kernel[..., mask]
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            results.write_atomically(path, buffer.getvalue())
            written += 1
        return written

    def _graph_layers(self, variant) -> list[tuple[str, int, int]]:
        """(path, cin, cout) of each graph layer of the variant's own (unpadded) model."""
        key = (variant.graph, variant.widths)
        if key not in self._layers:
            from relgraph_jax import models  # flax: not at import, the analysis reads this module
            module = models.build(self.model_cfg, variant.graph, width=variant.widths)
            self._layers[key] = [(layer.path, layer.cin, layer.cout)
                                 for layer in module.layer_list(self.input_shape)
                                 if layer.kind == "graph"]
        return self._layers[key]


def _at(tree, path: str):
    for key in path.split("/"):
        tree = tree[key]
    return tree
