"""Weight and mask dumps (`train.dump_epochs`, graph2nn's SAVE_GRAPH) on a tiny sweep: which
files, what they hold (against the final checkpoint, the graph's own mask and the results
file), a stop and resume that evaluates an epoch again, the loader, and bad options."""
import json
import os

import numpy as np
import pytest

from relgraph_jax import analysis, relational, results
from relgraph_jax.train import checkpoint as checkpoint_lib
from relgraph_jax.train import dumps as dumps_lib
from relgraph_jax.train import trainer
from relgraph_jax.train.validate import validate_config
from helpers import shared_trainer_compiles
from test_train import tiny_config

SPARSE, COMPLETE = "paper:n16_48/0", "complete:n=16"
STEPS_PER_EPOCH = 11
STEM = 32


def dump_config(**train):
    """A sparse graph and the complete one (narrower, so zero-padded into the sparse
    graph's width in the one bucket), 1 seed, 2 graph layers, 3 epochs, dumps after
    epochs 1 and 3."""
    config = tiny_config(epochs=3, dump_epochs=(1, 3), **train)
    config.model.depth = 2
    config.graphs = f"{SPARSE};{COMPLETE}"
    config.seeds = 1
    config.mesh.devices = 2
    return config


def _dumps_dir(workdir):
    return os.path.join(workdir, dumps_lib.DUMPS_DIR)


def _lines(workdir):
    """{(variant, epoch): the results.jsonl line}."""
    with open(os.path.join(workdir, results.RESULTS_FILE)) as f:
        return {(r["variant"], r["epoch"]): line.rstrip("\n")
                for line in f for r in [json.loads(line)]}


@pytest.fixture(scope="module")
def compiles():
    with shared_trainer_compiles():
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory, compiles):
    workdir = str(tmp_path_factory.mktemp("dumps"))
    assert trainer.train_and_evaluate(dump_config(), workdir)["finished"]
    return workdir


def test_files_exist_for_exactly_the_chosen_variants_and_epochs(reference):
    assert sorted(os.listdir(_dumps_dir(reference))) == [
        dumps_lib.file_name(v, e) for v in (0, 1) for e in (1, 3)]


def test_a_dump_holds_the_variants_own_weights_its_graphs_mask_and_its_record(reference):
    lines = _lines(reference)
    saved = checkpoint_lib.Checkpoints(reference)
    try:
        final = saved.read(3 * STEPS_PER_EPOCH)
    finally:
        saved.close()
    group = final["group0"]
    widths = {}
    for d in analysis.load_dumps(reference):
        assert dumps_lib.file_name(d.variant, d.epoch) == os.path.basename(d.path)
        with np.load(d.path) as data:
            assert data[dumps_lib.RECORD].item() == lines[(d.variant, d.epoch)]
            kept = {p: data[dumps_lib.WEIGHTS + p].shape for p in d.layers}
        assert d.record == json.loads(lines[(d.variant, d.epoch)])
        width = d.record["width"]
        widths[d.record["graph"]] = width
        assert sorted(d.layers) == ["graph0", "graph1"]
        for path, (weights, mask) in d.layers.items():
            cin = STEM if path == "graph0" else width
            assert weights.shape == mask.shape == (cin, width) and mask.dtype == bool
            expected = relational.layer_mask(d.record["graph"], cin, width)
            np.testing.assert_array_equal(mask, expected.astype(bool))
            assert kept[path] == (mask.sum(),) and weights[mask].std() > 0  # on the edges only
            if d.epoch == 3:  # the last: the final checkpoint holds the same state
                row = list(group["ids"]).index(d.variant)
                kernel = group["leaves"][f"params.{path}.kernel"][row]
                np.testing.assert_array_equal(weights, kernel[:cin, :width])
                assert not kernel[cin:].any() and not kernel[:, width:].any()  # padding only
    # The complete graph is the narrower: its dump is cut from the padded bucket.
    assert widths[COMPLETE] == 32 < widths[SPARSE]


def test_stop_and_resume_write_each_file_once_with_the_same_contents(reference, tmp_path):
    workdir = str(tmp_path)
    trainer.train_and_evaluate(dump_config(), workdir, stop_after_steps=5)
    assert not os.path.exists(_dumps_dir(workdir))  # no evaluation yet
    trainer.train_and_evaluate(dump_config(), workdir, stop_after_steps=9)  # to step 14
    first = {n: os.stat(os.path.join(_dumps_dir(workdir), n)) for n in
             os.listdir(_dumps_dir(workdir))}
    assert sorted(first) == [dumps_lib.file_name(v, 1) for v in (0, 1)]
    # Losing the records makes the resume go back to step 11 and evaluate epoch 1 again.
    os.remove(os.path.join(workdir, results.RESULTS_FILE))
    assert trainer.train_and_evaluate(dump_config(), workdir)["finished"]
    assert _lines(workdir).keys() == _lines(reference).keys()  # epoch 1 was evaluated again
    for name, stat in first.items():
        again = os.stat(os.path.join(_dumps_dir(workdir), name))
        assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    got, want = analysis.load_dumps(workdir), analysis.load_dumps(reference)
    assert [(d.variant, d.epoch) for d in got] == [(d.variant, d.epoch) for d in want]
    for a, b in zip(got, want):
        assert a.record == b.record and a.layers.keys() == b.layers.keys()
        for path in a.layers:
            for x, y in zip(a.layers[path], b.layers[path]):
                np.testing.assert_array_equal(x, y)
    assert sorted(os.listdir(_dumps_dir(workdir))) == sorted(os.listdir(_dumps_dir(reference)))


def test_the_loader_selects_by_graph_seed_and_epoch(reference):
    assert [(d.variant, d.epoch) for d in analysis.load_dumps(reference, graph=COMPLETE)] == [
        (1, 1), (1, 3)]
    assert [(d.variant, d.epoch) for d in analysis.load_dumps(reference, epoch=3, seed=0)] == [
        (0, 3), (1, 3)]
    assert analysis.load_dumps(reference, seed=1) == []
    assert analysis.load_dumps(reference, epoch=2) == []  # evaluated, not chosen


def test_the_loader_refuses_a_missing_folder_and_a_damaged_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dumps: no such folder; .*train.dump_epochs"):
        analysis.load_dumps(str(tmp_path))
    folder = tmp_path / dumps_lib.DUMPS_DIR
    folder.mkdir()
    (folder / (dumps_lib.file_name(0, 1) + ".tmp")).write_bytes(b"left by a kill")
    assert analysis.load_dumps(str(tmp_path)) == []  # not a dump's name: ignored
    (folder / dumps_lib.file_name(0, 1)).write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match=r"variant00000_epoch0001.npz: damaged dump \(") as e:
        analysis.load_dumps(str(tmp_path))
    assert "\n" not in str(e.value)


def test_only_the_writer_writes(tmp_path):
    """In a multi-host run every process gathers the states; only process 0 writes."""
    dumps = dumps_lib.Dumps(validate_config(dump_config()), str(tmp_path), writer=False)
    assert dumps.due(1) and not dumps.due(2)
    assert dumps.write([{"variant": 0, "epoch": 1}], [], []) == 0
    assert os.listdir(tmp_path) == []


def _dumped(dump_epochs, search=None, **train):
    config = tiny_config(dump_epochs=dump_epochs, **train)
    config.search.update(search or {})
    return dumps_lib.chosen_epochs(validate_config(config))


def test_all_means_every_evaluated_epoch_and_off_is_the_default():
    assert _dumped(("all",), epochs=5, eval_every=2) == {2, 4, 5}
    rungs_1_3 = dict(policy="halving", first_rung=1, eta=3, metric="test_error")
    assert _dumped(("all",), rungs_1_3, epochs=5, eval_every=4) == {1, 3, 4, 5}
    assert _dumped((4, 2), epochs=5, eval_every=2) == {2, 4}
    assert _dumped(()) == set()
    assert validate_config(tiny_config()).train.dump_epochs == ()


@pytest.mark.parametrize("value, message", [
    ((0,), r"train.dump_epochs=\(0,\): must be \(\) \(no dumps\), a tuple of epochs >= 1"),
    (("all", 3), r"train.dump_epochs=\('all', 3\): must be"),
    ((2.0,), r"train.dump_epochs=\(2.0,\): must be"),
])
def test_a_bad_option_is_refused_in_one_line(value, message):
    with pytest.raises(ValueError, match=message) as e:
        validate_config(tiny_config(dump_epochs=value))
    assert "\n" not in str(e.value)


def test_an_epoch_never_evaluated_is_refused_before_the_run_starts(tmp_path):
    workdir = str(tmp_path / "run")
    with pytest.raises(ValueError, match=r"train.dump_epochs=\(3, 4\): epoch 3 is never "
                       r"evaluated \(train.eval_every=2, train.epochs=4\); evaluated "
                       r"epochs: 2, 4$"):
        trainer.train_and_evaluate(tiny_config(epochs=4, eval_every=2, dump_epochs=(3, 4)),
                                   workdir)
    assert not os.path.exists(workdir)
    config = tiny_config(dump_epochs=(2,))
    config.model.impl = "blocks"
    with pytest.raises(ValueError, match=r"needs model.impl='mask' .*got model.impl='blocks'"):
        trainer.train_and_evaluate(config, workdir)
