"""Bad input a careless user gives (issue 14, part A): one clear line naming the value and
what is allowed, before data loading, compiling or any write to the workdir.

Covered: labels against model.num_classes, a graph listed twice, non-finite and mistyped
numbers, late data checks that used to leave a workdir behind, layer channel counts, graph
specs without parameters, memory estimates (graphs and sweeps), the analysis's
completeness and duplicate runs, a single-graph impl='blocks' sweep, and the command
lines' one-line errors.
"""
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from relgraph_jax import analysis, graphs, layers, machine, models, results
from relgraph_jax import nnx as graph_nnx
from relgraph_jax.analysis import loading
from relgraph_jax.data.summary import DataSummary
from relgraph_jax.train import memory, trainer, validate, variants as variants_lib

sys.path.insert(0, os.path.dirname(__file__))
from helpers import fast_trainer_compiles, init_shapes  # noqa: E402
from test_train import REPO, tiny_config  # noqa: E402


@pytest.fixture
def no_data_loading(monkeypatch):
    """Fails the test if the trainer starts loading data: the error must come first."""
    monkeypatch.setattr(trainer, "_open_data",
                        lambda *a: pytest.fail("data loading started before the error"))


def _refused(config, tmp_path, message):
    """The trainer refuses `config` with `message`; the (fresh) workdir is never created."""
    workdir = tmp_path / "new" / "run"
    with pytest.raises(ValueError, match=message):
        trainer.train_and_evaluate(config, str(workdir))
    assert not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------- labels
def _npz(path, y_train, y_test, dtype=np.int64):
    np.savez(path, x_train=np.zeros((len(y_train), 8, 8, 1), np.uint8),
             y_train=np.asarray(y_train, dtype), x_test=np.zeros((len(y_test), 8, 8, 1), np.uint8),
             y_test=np.asarray(y_test, dtype))


TEN = list(range(10)) * 13  # 130 training labels 0..9: one batch of 128
LABELS = [
    ("label of 10 with 10 classes", TEN + [10], list(range(10)), np.int64,
     r"y_train holds label 10, outside 0\.\.9 \(model\.num_classes=10\)"),
    ("test label out of range", TEN, [0, 1, 12], np.int64,
     r"y_test holds label 12, outside 0\.\.9 \(model\.num_classes=10\)"),
    ("uint64 label that int32 would wrap to 3", TEN + [2**32 + 3], list(range(10)), np.uint64,
     r"y_train holds label 4294967299, outside 0\.\.9"),
    ("negative label", [-1] + TEN, list(range(10)), np.int64, r"y_train holds label -1"),
]


@pytest.mark.parametrize("what,y_train,y_test,dtype,message", LABELS, ids=[x[0] for x in LABELS])
def test_labels_outside_the_models_classes_are_refused(what, y_train, y_test, dtype, message,
                                                       tmp_path, no_data_loading):
    path = tmp_path / "labels.npz"
    _npz(path, y_train, y_test, dtype)
    config = tiny_config()
    config.data = dict(source="arrays", name="labels", path=str(path), augment=False)
    _refused(config, tmp_path, message)


def test_fewer_model_classes_than_digits_is_refused(tmp_path, no_data_loading):
    config = tiny_config()
    config.model.num_classes = 5
    _refused(config, tmp_path, r"digits: y_train holds label 9, outside 0\.\.4 "
                               r"\(model\.num_classes=5\)")


def test_summaries_read_only_what_is_cheap(tmp_path):
    """Labels where they are small (an .npz), declared classes elsewhere, no image read."""
    from relgraph_jax import data
    from relgraph_jax.data import testing
    from relgraph_jax.data.summary import summarize
    npz = testing.write_arrays_npz(tmp_path / "a.npz", num_train=32, num_test=16,
                                   image_shape=(8, 8, 1), num_classes=10)
    assert summarize(data.validate(dict(source="arrays", path=npz, augment=False))) == \
        DataSummary(repr(npz), (8, 8, 1), 32, 16, {"y_train": (0, 9), "y_test": (0, 9)}, 10)
    folder = testing.write_image_folder(tmp_path / "folder", per_class=(1, 1), shape=(4, 4))
    assert summarize(data.validate(dict(source="imagefolder", path=folder))) == \
        DataSummary(repr(folder), None, 3, 3, {}, 3, streamed=True)  # counts: the listing
    with testing.mock_tfds(num_examples=8):
        assert summarize(data.validate(dict(source="tfds", name="cifar10"))) == \
            DataSummary("tfds 'cifar10'", (32, 32, 3), 8, 8, {}, 10)


def test_a_data_sets_declared_classes_are_checked_where_labels_are_not_read():
    """tfds and image folders: the class count the data set declares."""
    config = tiny_config()
    config.model.num_classes = 5
    tfds = DataSummary("tfds 'cifar10'", None, 50000, 10000, {}, 10)
    with pytest.raises(ValueError, match=r"tfds 'cifar10' declares 10 classes but "
                                         r"model\.num_classes=5: .* set model\.num_classes=10"):
        validate.check_data(config, tfds)
    config.model.num_classes = 10
    validate.check_data(config, tfds)  # equal: fine


def test_a_non_finite_evaluation_is_recorded_as_failed_never_as_nan():
    graph = graphs.RelationalGraph.from_spec("complete:n=16")
    variant = variants_lib.Variant(0, graph, 0, 0.1, 0.0, (32,), 1, 1)
    metrics = {"failed": np.array([False]), "failed_step": np.array([-1]),
               "loss_sum": np.array([2.0]), "loss_count": np.array([2.0]),
               "test_loss": np.array([np.nan]), "correct": np.array([3.0])}
    [record] = trainer._records([variant], (), "mlp", 1, 11, metrics, 10)
    assert record["status"] == "failed" and "non-finite test_loss" in record["failure"]
    assert record["train_loss"] is record["test_loss"] is record["test_error"] is None
    json.loads(results.encode([record]))  # valid JSON
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        results.encode([{"variant": 0, "epoch": 1, "test_loss": float("nan")}])


# ----------------------------------------------------------------------------- graphs listed twice
def test_a_graph_listed_twice_is_refused(tmp_path, no_data_loading):
    config = tiny_config()
    config.graphs = "paper:n16_48/1;complete:n=16;paper:n16_48/1"
    _refused(config, tmp_path, r"config\.graphs lists 'paper:n16_48/1' twice \(graphs 0 and "
                               r"2 of 3\).*list each graph once")
    row = graphs.paper_graph("n16_48", 1)
    same = graphs.ws_spec(row.n, row.k, row.p, row.seed)
    config.graphs = f"paper:n16_48/1;{same}"
    _refused(config, tmp_path, rf"lists the same graph as 'paper:n16_48/1' and '{same}'")


def _record(variant, graph, seed, error, epoch=1, hparams=None, model="mlp"):
    return {"variant": variant, "epoch": epoch, "graph": graph, "seed": seed, "C": 0.5,
            "L": 2.0, "test_error": error, "status": "ok", "model": model,
            "hparams": hparams or {}}


def _workdir(tmp_path, records, config=None):
    (tmp_path / results.RESULTS_FILE).write_bytes(results.encode(records))
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config.to_dict(), default=list))
    return str(tmp_path)


def test_the_analysis_counts_a_repeated_run_once(tmp_path):
    """Variants 0 and 2 are the same graph, seed and hyper-parameters: one replicate."""
    workdir = _workdir(tmp_path, [_record(0, "ws:a", 0, 30.0), _record(1, "ws:a", 1, 32.0),
                                  _record(2, "ws:a", 0, 30.5)])
    runs = analysis.load(workdir)
    assert runs.variant.tolist() == [0, 1] and runs.seed.tolist() == [0, 1]
    assert ("1 variant(s) repeat the graph, seed and hyper-parameters of another and are not "
            "counted as more seeds: variant 2 (as variant 0)") in runs.notes


# ----------------------------------------------------------------------------- numbers
NUMBERS = [
    ("train.lr", math.inf, r"train\.lr=inf: must be > 0 and finite"),
    ("train.lr", math.nan, r"train\.lr=nan: must be > 0 and finite"),
    ("train.weight_decay", math.inf, r"train\.weight_decay=inf: must be >= 0 and finite"),
    ("train.momentum", math.nan, r"train\.momentum=nan: must be in \[0, 1\)"),
    ("train.lr", "0.1", r"train\.lr='0\.1': must be a number > 0, got str"),
    ("train.nesterov", "yes", r"train\.nesterov='yes': must be True or False"),
    ("grid.lr", (0.1, 0.0), r"grid\.lr\[1\]=0\.0: must be > 0 and finite"),
    ("grid.lr", "0.1,0.05", r"grid\.lr='0\.1,0\.05': must be a list of numbers"),
    ("grid.weight_decay", (1e-4, "5e-4"), r"grid\.weight_decay\[1\]='5e-4': must be a number >= 0"),
    ("grid.lr", (0.1, 0.1), r"grid\.lr=\(0\.1, 0\.1\) lists 0\.1 twice"),
]


@pytest.mark.parametrize("field,value,message", NUMBERS, ids=[f"{f}={v!r}" for f, v, _ in NUMBERS])
def test_non_finite_and_mistyped_numbers_name_their_field(field, value, message):
    config = tiny_config()
    section, name = field.split(".")
    # A new block, as a config file may write it: ConfigDict would refuse to retype a field.
    config[section] = ml_collections.ConfigDict({**config[section].to_dict(), name: value})
    with pytest.raises(ValueError, match=message):
        validate.validate_config(config)


# ----------------------------------------------------------------------------- nothing written
LATE = [
    ("input_shape", (8, 8, 3), r"digits: images have shape \(8, 8, 1\) but config\.input_shape "
                               r"is \(8, 8, 3\)"),
    ("train.batch_size", 4096, r"config\.train\.batch_size=4096 exceeds the 1437 training "
                               "examples of digits"),
    ("mesh.devices", 9, r"config\.mesh\.devices=9: allowed 0 \(all\) or 1\.\.8"),
    ("mesh.data", 3, r"config\.mesh\.data=3 must be a positive divisor of the 8 devices"),
]


@pytest.mark.parametrize("field,value,message", LATE, ids=[f for f, _, _ in LATE])
def test_checks_that_used_to_come_late_leave_no_workdir(field, value, message, tmp_path,
                                                        no_data_loading):
    config = tiny_config()
    *sections, name = field.split(".")
    node = config
    for s in sections:
        node = node[s]
    node[name] = value
    _refused(config, tmp_path, message)


# ----------------------------------------------------------------------------- memory
def test_the_sweep_estimate_counts_each_slots_state_exactly():
    """The state part against the model's own variables: params and the momentum, the
    batch statistics and the masks of one complete-graph slot."""
    config = tiny_config(variant_batch=1)
    config.graphs, config.seeds = "complete:n=16", 1
    [variant] = variants_lib.build_variants(config)
    model = models.build(config.model, variant.graph, width=variant.widths)
    shapes = init_shapes(model, jnp.zeros((1, 8, 8, 1)))
    size = {k: sum(math.prod(x.shape) for x in jax.tree.leaves(shapes[k]))
            for k in ("params", "batch_stats", "masks")}
    expected = 4 * (2 * size["params"] + size["batch_stats"] + size["masks"])
    est = memory.estimate(config, [variant], num_train=1437, num_test=360, devices=1)
    assert est.state == expected
    assert est.data == (1437 + 360) * (64 + 4) + 1437 * 4  # uint8 images, labels, one order


def test_a_sweep_that_does_not_fit_is_refused_with_the_figures(tmp_path, monkeypatch,
                                                                no_data_loading):
    monkeypatch.setattr(machine, "available_host_bytes", lambda: 2**20)
    _refused(tiny_config(), tmp_path, r"this sweep \(6 variants; per device: state .* needs "
                                      r"about .* GiB of memory, more than the 0\.0 GiB available")


def test_a_graph_too_big_for_memory_is_refused_before_it_is_built():
    with pytest.raises(ValueError, match=r"graph spec 'complete:n=100000': building this "
                                         r"100,000-node graph \(~4,999,950,000 edges\) needs "
                                         r"about [\d,.]+ GiB of memory, more than the"):
        graphs.resolve("complete:n=100000")


# ----------------------------------------------------------------------------- noise
def test_a_kind_without_its_parameters_says_how_it_is_written():
    with pytest.raises(ValueError, match=r"graph spec 'ws': 'ws' needs its parameters after a "
                                         r"colon: ws:n=\.\.,k=\.\.,p=\.\.,seed=\.\.$"):
        graphs.resolve("ws")


@pytest.mark.parametrize("make,field", [
    (lambda: layers.MaskedDense(32.0, "complete:n=4").init(jax.random.key(0), jnp.zeros((1, 8))),
     "features"),
    (lambda: layers.MaskedConv(32.0, (3, 3), "complete:n=4").init(jax.random.key(0),
                                                                jnp.zeros((1, 4, 4, 8))),
     "features"),
    (lambda: graph_nnx.MaskedDense(8, 32.0, "complete:n=4", rngs=nnx.Rngs(0)), "out_features"),
    (lambda: graph_nnx.MaskedConv(8.0, 32, 3, "complete:n=4", rngs=nnx.Rngs(0)), "in_features"),
    (lambda: graph_nnx.DepthwiseConv(8.5, 3, rngs=nnx.Rngs(0)), "features"),
], ids=["linen dense", "linen conv", "nnx dense", "nnx conv", "nnx depthwise"])
def test_a_float_channel_count_is_named(make, field):
    with pytest.raises(ValueError, match=rf"{field} must be a positive int, got \d+\.\d"):
        make()


def test_mixed_models_get_a_hint_that_helps(tmp_path):
    workdir = _workdir(tmp_path, [_record(0, "ws:a", 0, 30.0), _record(1, "ws:b", 0, 31.0,
                                                                      model="cnn8")])
    with pytest.raises(ValueError, match="no option selects a model") as error:
        analysis.load(workdir)
    assert "--hparams" not in str(error.value)


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    workdir = _workdir(tmp_path, [_record(0, "ws:a", 0, 30.0)])
    (tmp_path / "taken").write_text("")
    with pytest.raises(ValueError, match=r"is a file, not a folder; give --out a folder"):
        analysis.write_report(workdir, out=str(tmp_path / "taken"))


# ----------------------------------------------------------------------------- completeness
def test_the_analysis_says_incomplete_against_config_json(tmp_path):
    """tiny_config declares 3 graphs x 2 seeds = 6 variants and 2 epochs."""
    records = [_record(v, f"ws:{v // 2}", v % 2, 30.0 + v) for v in range(4)]
    workdir = _workdir(tmp_path, records, tiny_config())
    notes = analysis.load(workdir).notes
    assert ("incomplete: 4 of the 6 variants config.json declares (3 graphs x 1 settings x 2 "
            "seeds) have records; none yet for variant 4, 5") in notes
    assert "incomplete: the records reach epoch 1 of the 2 config.json declares (train.epochs)" \
        in notes
    report = open(analysis.write_report(workdir)).read()
    assert "Complete:" not in report and "- incomplete: 4 of the 6 variants" in report


def test_the_analysis_says_complete_when_every_declared_record_is_there(tmp_path):
    records = [_record(v, f"ws:{v // 2}", v % 2, 30.0 + v, epoch=2) for v in range(6)]
    workdir = _workdir(tmp_path, records, tiny_config())
    assert analysis.load(workdir).notes == ()
    assert loading.declared(workdir).variants == 6


# ----------------------------------------------------------------------------- impl=blocks
def test_blocks_with_one_graph_trains_as_the_mask_path(tmp_path):
    """The case check_graphs allows; it used to fail with KeyError: 'masks'."""
    out = {}
    with fast_trainer_compiles():
        for impl in ("blocks", "mask"):
            config = tiny_config(epochs=1)
            config.graphs, config.seeds, config.model.impl = "paper:n16_48/42", 1, impl
            config.mesh.devices = 1  # one slot, not one per fake device
            workdir = tmp_path / impl
            assert trainer.train_and_evaluate(config, str(workdir))["finished"]
            [out[impl]] = results.read_records(str(workdir / results.RESULTS_FILE))
    assert out["blocks"]["status"] == "ok"
    for key in ("train_loss", "test_loss"):
        assert out["blocks"][key] == pytest.approx(out["mask"][key], rel=1e-5)
    assert out["blocks"]["test_error"] == out["mask"]["test_error"]


# ----------------------------------------------------------------------------- command lines
COMMANDS = [
    (["experiments.main", "--config=experiments/configs/quickstart.py", "--workdir=WORKDIR",
      "--config.epochz=3"], "experiments.main: unknown config key(s) epochz; allowed in config: ["),
    (["experiments.describe", "--config=experiments/configs/quickstart.py",
      "--config.train.lr=inf"], "experiments.describe: train.lr=inf: must be > 0 and finite"),
    (["experiments.main", "--config=experiments/configs/quickstart.py", "--workdir="],
     "experiments.main: --workdir='': give the folder where results and checkpoints go"),
]


@pytest.mark.parametrize("args,line", COMMANDS, ids=["main", "describe", "empty_workdir"])
def test_command_lines_print_one_line_and_write_nothing(args, line, tmp_path):
    workdir = tmp_path / "run"
    command = [sys.executable, "-m"] + [a.replace("WORKDIR", str(workdir)) for a in args]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(line), done.stderr
    assert not workdir.exists()
    if args[0] == "experiments.main":  # --verbose shows where it came from
        verbose = subprocess.run(command + ["--verbose"], cwd=REPO, env=env,
                                 capture_output=True, text=True)
        assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr


_SIZED_CONFIG = """
import ml_collections

def get_config(arg=None):
    sizes = {"small": 16}
    return ml_collections.ConfigDict(dict(nodes=sizes[arg] if arg else 8, train=dict(lr=0.1)))
"""
CONFIG_ERRORS = [
    (":large", [], "KeyError: 'large'"),  # get_config's own lookup, no override involved
    ("", ["--config.foo.bar=1"],
     "unknown config key 'foo' in --config.foo.bar; check the name against the config file"),
    ("", ["--config.trian.lr=1"],  # ml_collections adds 'Did you mean "train"' to its error
     "unknown config key 'trian' in --config.trian.lr; check the name against the config file"),
]


@pytest.mark.parametrize("arg,overrides,message", CONFIG_ERRORS,
                         ids=["get_config", "override", "near_miss"])
def test_only_an_override_naming_the_key_is_called_an_unknown_config_key(arg, overrides,
                                                                        message, tmp_path):
    path = tmp_path / "sized.py"
    path.write_text(_SIZED_CONFIG)
    done = subprocess.run([sys.executable, "-m", "experiments.describe", f"--config={path}{arg}",
                           *overrides], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"experiments.describe: {message}\n"
