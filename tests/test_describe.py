"""experiments.describe on every experiment config, and the configs themselves."""
import importlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from experiments import configs, describe
from relgraph_jax import data, graphs, models
from relgraph_jax.train.validate import validate_config

# Every config file (the README promises `FILE.py:runlocal` for each).
ALL_CONFIGS = sorted(p.stem for p in pathlib.Path(configs.__file__).parent.glob("*.py")
                     if p.stem not in ("__init__", "common"))
CONFIGS = ["mlp_cifar10", "mlp_cifar10_52", "cnn8_imagenet", "resnet34_imagenet",
           "resnet34sep_imagenet", "resnet50_imagenet", "efficientnet_b0_imagenet",
           "cnn_cifar10", "resnet20_cifar10", "resnet56_cifar10"]
# Paper values: model family, graph set, seeds, batch size, lr, weight decay, epochs.
PAPER = {
    "mlp_cifar10": ("mlp", "paper:n64_3942;complete:n=64", 5, 128, 0.1, 5e-4, 200),
    "mlp_cifar10_52": ("mlp", "paper:n64_52;complete:n=64", 5, 128, 0.1, 5e-4, 200),
    "cnn8_imagenet": ("cnn8", "paper:n64_52;complete:n=64", 3, 256, 0.1, 1e-4, 100),
    "resnet34_imagenet": ("resnet34", "paper:n64_52;complete:n=64", 3, 256, 0.1, 1e-4, 100),
    "resnet34sep_imagenet": ("resnet34sep", "paper:n64_52;complete:n=64", 3, 256, 0.1, 1e-4, 100),
    "resnet50_imagenet": ("resnet50", "paper:n64_52;complete:n=64", 3, 256, 0.1, 1e-4, 100),
    "efficientnet_b0_imagenet": ("efficientnet_b0", "paper:n16_48;complete:n=16", 3, 512, 0.2,
                                 5e-5, 100),
    # graph2nn's CIFAR conv configs (cnn_bs128_1gpu_layer3.yaml, resnet20_bs128_1gpu.yaml);
    # it ran no CIFAR conv sweep: the 52-graph set and the 5 seeds of its CIFAR MLP study.
    "cnn_cifar10": ("cnn_cifar", "paper:n64_52;complete:n=64", 5, 128, 0.1, 5e-4, 100),
    "resnet20_cifar10": ("resnet20", "paper:n64_52;complete:n=64", 5, 128, 0.1, 5e-4, 100),
    "resnet56_cifar10": ("resnet56", "paper:n64_52;complete:n=64", 5, 128, 0.1, 5e-4, 100),
}
# The paper's best graph of each model, with its reported C and L (mlp_cifar10_52: the
# 8-layer CNN's best graph, from the same 52-graph set).
BEST = {"mlp_cifar10": ("paper:n64_3942/3552", 0.448, 2.479),
        "mlp_cifar10_52": ("paper:n64_52/27", 0.501, 2.279),
        "cnn8_imagenet": ("paper:n64_52/27", 0.501, 2.279),
        "resnet34_imagenet": ("paper:n64_52/37", 0.367, 2.287),
        "resnet34sep_imagenet": ("paper:n64_52/36", 0.303, 2.048),
        "resnet50_imagenet": ("paper:n64_52/22", 0.636, 1.814),
        "efficientnet_b0_imagenet": ("paper:n16_48/42", 0.613, 1.892),
        # No reported best on CIFAR conv nets: the 8-layer CNN's and ResNet-34's ImageNet ones.
        "cnn_cifar10": ("paper:n64_52/27", 0.501, 2.279),
        "resnet20_cifar10": ("paper:n64_52/37", 0.367, 2.287),
        "resnet56_cifar10": ("paper:n64_52/37", 0.367, 2.287)}


def load(name, arg=None):
    module = importlib.import_module(f"experiments.configs.{name}")
    return module.get_config(arg) if arg else module.get_config()


def stage_count(model_cfg):
    """Stages counted from the model's own layer paths (`stageS_...`; none: one stage)."""
    model = models.build(model_cfg, f"complete:n={model_cfg.nodes}")
    return len({layer.path.split("_")[0] for layer in model.layer_list((32, 32, 3))
                if layer.path.startswith("stage")}) or 1


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_hold_the_papers_settings(name):
    config = load(name)
    family, graph_set, seeds, batch, lr, wd, epochs = PAPER[name]
    assert config.model.to_dict() == models.default_config(family).to_dict()
    assert (config.graphs, config.seeds, config.budget_match) == (graph_set, seeds, True)
    tc = config.train
    assert (tc.batch_size, tc.lr, tc.weight_decay, tc.epochs) == (batch, lr, wd, epochs)
    assert (tc.momentum, tc.nesterov) == (0.9, True)
    # ImageNet's input shape follows data.image_size: stated once, derived by validation.
    cifar = config.data.name == "cifar10"
    assert config.input_shape == ((32, 32, 3) if cifar else None)
    assert validate_config(config).input_shape == ((32, 32, 3) if cifar else (224, 224, 3))
    # The CNNs and ResNets state their stem: CIFAR's keeps the 32x32 resolution (docs/models.md).
    stemless = family in ("mlp", "efficientnet_b0")
    assert config.model.get("stem") == (None if stemless else "cifar" if cifar else "imagenet")
    data.parse(config.data)
    assert f"experiments/configs/{name}.py" in sys.modules[f"experiments.configs.{name}"].__doc__


@pytest.mark.parametrize("name", CONFIGS)
def test_describe_lists_every_variant_with_its_budget(name):
    config = load(name)
    if config.graphs.startswith("paper:n64_3942"):  # 3942 graphs: keep the test short
        config.graphs = f"{BEST[name][0]};complete:n=64"
    records = describe.describe(config)
    n_graphs = len(graphs.resolve(config.graphs))
    assert [r["variant"] for r in records] == list(range(n_graphs * config.seeds))
    assert {r["seed"] for r in records} == set(range(config.seeds))
    complete = f"complete:n={config.model.nodes}"
    defaults = list(models.default_widths(config.model))
    stages = stage_count(config.model)
    for r in records:
        assert r["model"] == config.model.name and r["nodes"] == config.model.nodes
        assert r["flops"] >= r["target_flops"]  # graph2nn's search ends at or above the budget
        assert r["gflops"] == round(r["flops"] / 1e9, 3) and r["graph2nn_width"] == r["widths"][0]
        if r["graph"] == complete:
            assert (r["widths"], r["macs"], r["params"], r["flops"]) == (
                defaults, r["complete_macs"], r["complete_params"], r["target_flops"])
        assert len(r["widths"]) == len(defaults) == stages
    spec, c, l = BEST[name]
    best = next(r for r in records if r["graph"] == spec)
    assert (round(best["C"], 3), round(best["L"], 3)) == (c, l)


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_runlocal_variant_is_small_and_offline(name):
    config = load(name, "runlocal")
    assert (config.seeds, config.input_shape, config.data.source) == (1, (8, 8, 1), "digits")
    assert config.train.epochs == 1
    validate_config(config)
    records = describe.describe(config)
    assert len(records) == 2 and records[-1]["graph"] == f"complete:n={config.model.nodes}"
    # A conv family's tiny model, well under a million MACs a digit; the MLP configs keep
    # their model (small on digits) and the paper's 64-node graphs.
    tiny = models.FAMILIES[config.model.name].tiny
    assert all(config.model[k] == v for k, v in tiny.items()) == (config.model.name != "mlp")
    assert all(r["macs"] < 1_000_000 for r in records) or config.model.name == "mlp"
    assert f"experiments/configs/{name}.py:" in sys.modules[f"experiments.configs.{name}"].__doc__
    with pytest.raises(ValueError, match="unknown config argument 'fast'"):
        load(name, "fast")


def test_brain_config_trains_the_authors_directed_network_by_default():
    """graph2nn's brain MLPs used the directed `*raw` networks: `brain:NAME` (file entry
    [u, v] = message v -> u); the symmetrised network is the option `sym`."""
    full = load("mlp_cifar10_brain", "cat")
    assert (full.model.nodes, full.graphs) == (52, "brain:cat;complete:n=52")
    directed = graphs.RelationalGraph.from_spec("brain:cat")
    text = (pathlib.Path(graphs.__file__).parent / "data" / "brain" / "cat.txt").read_text()
    file_entries = np.array([[c == "1" for c in line] for line in text.split()])
    # adjacency[a, b] is the message a -> b, so file entry [u, v] (v -> u) sits at [v, u].
    np.testing.assert_array_equal(directed.adjacency & ~np.eye(52, dtype=bool),
                                  file_entries.T & ~np.eye(52, dtype=bool))
    assert load("mlp_cifar10_brain", "cat,sym").graphs == "brain:cat/sym;complete:n=52"
    smoke = load("mlp_cifar10_brain", "cat,runlocal")
    assert (smoke.model.nodes, smoke.graphs, smoke.data.source) == (
        52, "brain:cat;complete:n=52", "digits")
    assert load("mlp_cifar10_brain", "runlocal").graphs == "brain:mcwhole;complete:n=71"
    assert load("mlp_cifar10_brain", "sym,runlocal").graphs == "brain:mcwhole/sym;complete:n=71"
    with pytest.raises(ValueError, match="unknown config argument 'cat,fast'"):
        load("mlp_cifar10_brain", "cat,fast")
    with pytest.raises(ValueError, match="names 2 brain networks"):
        load("mlp_cifar10_brain", "cat,mcvisual")


@pytest.mark.parametrize("name", ["mlp_cifar10", "mlp_cifar10_52", "mlp_cifar10_brain",
                                  "cnn_cifar10", "resnet20_cifar10", "resnet56_cifar10"])
def test_cifar10_configs_read_the_official_release_and_the_jpeg_copy_only_by_name(name):
    config = load(name)
    assert (config.data.source, config.data.name, config.data.path) == ("cifar", "cifar10", None)
    spec = data.parse(config.data)
    assert (spec.source, spec.path, spec.cache_dir) == ("cifar", None, None)
    jpeg = load(name, "jpeg")
    assert (jpeg.data.source, jpeg.data.name) == ("arrays", "cifar10")
    with pytest.raises(ValueError, match="source='arrays' needs data.path"):
        data.parse(jpeg.data)  # the copy's path is always given explicitly
    jpeg.data.path = "copy.npz"
    assert data.parse(jpeg.data).path == "copy.npz"
    assert load(name, "jpeg,runlocal").data.source == "digits"


def test_describe_rejects_graphs_that_do_not_fit_the_model():
    config = load("resnet34_imagenet")
    config.graphs = "paper:n16_48/0"
    with pytest.raises(ValueError, match="16 nodes but config.model.nodes is 64"):
        describe.describe(config)


@pytest.mark.parametrize("command", [["experiments.describe"],
                                     ["experiments.main", "--dry_run"]])
def test_command_line_prints_one_json_line_per_variant(command):
    """Also through the trainer's --dry_run, which imports describe next to its own flags."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-m", *command, "--config=experiments/configs/cnn8_imagenet.py",
         "--config.seeds=2", "--config.graphs=paper:n64_52/27;complete:n=64"],
        cwd=root, env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True,
        check=True).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["graph"], r["seed"]) for r in records] == [
        ("paper:n64_52/27", 0), ("paper:n64_52/27", 1), ("complete:n=64", 0), ("complete:n=64", 1)]
    assert records[2]["macs"] == 166_438_912 and records[2]["widths"] == [64, 128, 256]
