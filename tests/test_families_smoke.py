"""One training step and one evaluation of every model family.

CIFAR-10 (the MLP) goes through the resident path on tfds mock data; the ImageNet families
stream from an image folder (source="imagefolder", small generated JPEG and PNG files;
the tfds ImageNet stream is checked in test_data.py); models are shrunk to their family's
`tiny` setting (few nodes, narrow, one block per stage; 32x32 crops) so each compiles in
seconds. Uses the experiment configs themselves, so their recipe blocks are exercised too.
"""
import importlib

import numpy as np
import pytest

from relgraph_jax import budget, models, results
from relgraph_jax.data import testing as data_testing
from relgraph_jax.data.testing import write_image_folder
from relgraph_jax.train import trainer
from helpers import fast_trainer_compiles

# One config module per paper family (tests/test_models.py runs every registered family at
# its tiny setting, one forward pass; the CIFAR conv families, which share these modules,
# train a runlocal in tests/test_cifar_families.py, to keep the suite short).
CONFIGS = ["mlp_cifar10", "cnn8_imagenet", "resnet34_imagenet", "resnet34sep_imagenet",
           "resnet50_imagenet", "efficientnet_b0_imagenet"]


NUM_EXAMPLES = 8  # in each split of the mock data sets and of the image folder


@pytest.fixture(scope="module")
def data_sets(tmp_path_factory):
    """Mock tfds, and an image folder of 4 classes x 2 images per split (36x44, JPEG and
    PNG); the ImageNet families read it in this process (workers=0)."""
    folder = write_image_folder(tmp_path_factory.mktemp("imagenet") / "folder",
                                classes=("a", "b", "c", "d"), per_class=(2, 2), shape=(36, 44))
    # The trainer's programs compile with fast options: what is checked here (one step and
    # evaluation of each family, the recorded widths and errors) does not depend on them.
    with data_testing.mock_tfds(num_examples=NUM_EXAMPLES), fast_trainer_compiles():
        yield folder


@pytest.mark.parametrize("name", CONFIGS)
def test_one_step_of_every_family(name, data_sets, tmp_path):
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    config.model.update(models.FAMILIES[config.model.name].tiny)
    nodes = config.model.nodes
    # A 6-node graph has degree 4, so a matched stage narrower than 6 channels would still
    # have a WS recipe (k/n = 2/3 keeps k >= 2 down to 3).
    config.graphs = f"ws:n={nodes},k={4 if nodes == 6 else 2},p=0.3,seed=1;complete:n={nodes}"
    config.seeds = 1
    if config.data.name == "imagenet2012":
        config.data.update(dict(source="imagefolder", path=data_sets, image_size=32, workers=0))
    else:
        config.data.source = "tfds"
        config.data.path = None
    config.input_shape = (32, 32, 3)
    # One device: each bucket holds one variant, and on the suite's 8 fake devices it would
    # run 8 copies of the model. Layouts are checked elsewhere (test_train: the same
    # records on 1 and 8 devices; test_imagenet_input: the streamed sweep on 4).
    config.mesh.devices = 1
    # BatchNorm over 2 groups of 4 and precise BN from the one batch: both run in each path.
    config.train.update(dict(batch_size=8, epochs=1, eval_batch_size=8, steps_per_call=1,
                             width_buckets=1, bn_group_size=4, precise_bn_samples=8))
    summary = trainer.train_and_evaluate(config, str(tmp_path))
    assert summary["finished"] and summary["steps_run"] == 1
    recs = results.read_records(str(tmp_path / results.RESULTS_FILE))
    assert [r["graph"] for r in recs] == config.graphs.split(";")
    assert all(r["status"] == "ok" and np.isfinite(r["train_loss"]) for r in recs)
    # The error counts whole examples of the 8-example test split: a multiple of 12.5 %
    # (after one step these models get some right, e.g. 75 %, so a wrong denominator or a
    # fractional count shows).
    for r in recs:
        wrong = r["test_error"] / 100.0 * NUM_EXAMPLES
        assert wrong == pytest.approx(round(wrong), abs=1e-9) and 0 <= round(wrong) <= NUM_EXAMPLES
    # Each variant trains at its budget-matched widths; the complete graph at the defaults.
    graph = config.graphs.split(";")[0]
    assert recs[0]["widths"] == list(budget.match(config.model, graph, config.input_shape).widths)
    assert recs[1]["widths"] == list(models.default_widths(config.model))
    assert recs[0]["widths"] != recs[1]["widths"]
