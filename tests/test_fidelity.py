"""The project's default models against the ones the authors trained (their recorded runs).

Every graph's width, GFLOPs and parameter count as graph2nn logged them must come out of
`budget.match` with the default config; benchmarks/fidelity.py checks all 4,207 graphs,
this test a sample of every family plus every complete graph.
"""
import pytest

from benchmarks import fidelity
from relgraph_jax import budget, graph2nn_results, models

SRC = graph2nn_results.DEFAULT_SRC

# Besides the complete graph: the paper's best graph, the first and last graphs of the
# set, and (EfficientNet) the graphs whose first stage is narrower than the 16 nodes.
SAMPLE = {
    "mlp_cifar10": ["paper:n64_3942/3552", "paper:n64_3942/0", "paper:n64_3942/1000",
                    "paper:n64_3942/3941"],
    "cnn6_imagenet": ["paper:n64_52/27", "paper:n64_52/0", "paper:n64_52/51"],
    "resnet34_imagenet": ["paper:n64_52/37", "paper:n64_52/0", "paper:n64_52/51"],
    "resnet34_sep_imagenet": ["paper:n64_52/36", "paper:n64_52/0", "paper:n64_52/51"],
    "resnet50_imagenet": ["paper:n64_52/22", "paper:n64_52/0", "paper:n64_52/51"],
    "efficientnet_imagenet": ["paper:n16_48/42", "paper:n16_48/0", "paper:n16_48/45",
                              "paper:n16_48/46", "paper:n16_48/47"],
}


@pytest.fixture(scope="module")
def recorded():
    runs = graph2nn_results.load_runs(SRC, list(graph2nn_results.TASKS))
    return {task: {r.graph: (r.width, r.gflops, r.params_m) for r in task_runs}
            for task, task_runs in runs.items()}


@pytest.mark.parametrize("task", list(SAMPLE))
def test_default_models_have_the_authors_width_gflops_and_params(task, recorded):
    info = graph2nn_results.TASKS[task]
    config = models.default_config(info.model)
    complete = f"complete:n={config.nodes}"
    for spec in SAMPLE[task] + [complete]:
        b = budget.match(config, spec, info.input_shape)
        assert (b.width, b.gflops, round(b.params / 1e6, 3)) == recorded[task][spec], spec
    assert recorded[task][complete][0] == models.default_widths(config)[0]


def test_best_graph_width_lists_equal_the_original_search():
    """The issue's examples: the whole width list, not only its first entry."""
    resnet34 = budget.match(models.default_config("resnet34"), "paper:n64_52/37", (224, 224, 3))
    assert resnet34.widths == (165, 328, 659, 1318)
    b0 = budget.match(models.default_config("efficientnet_b0"), "paper:n16_48/42", (224, 224, 3))
    assert b0.widths == (30, 42, 74, 145, 203, 348, 580)
    assert budget.match(models.default_config("mlp"), "paper:n64_3942/3552", (32, 32, 3)).width == 1522


def test_contiguous_split_is_the_named_alternative_and_changes_the_width():
    """The issue's example: with the old contiguous split graph 3552 gets 1521 channels."""
    config = models.default_config("mlp")
    config.partition = "contiguous"
    assert budget.match(config, "paper:n64_3942/3552", (32, 32, 3)).width == 1521


def test_fidelity_benchmark_reports_full_agreement(capsys):
    assert fidelity.main(["--src", SRC, "--tasks", "cnn6_imagenet,efficientnet_imagenet"]) == 0
    table = capsys.readouterr().out
    assert "| cnn6_imagenet (cnn8) | 53 | 159 | 53 (100.0 %) | 53 (100.0 %) | 53 (100.0 %) |" in table
    assert ("| efficientnet_imagenet (efficientnet_b0) | 49 | 146 | 49 (100.0 %) | 49 (100.0 %) "
            "| 49 (100.0 %) |") in table


def test_bad_sources_and_tasks_get_one_clear_line(tmp_path, capsys):
    assert fidelity.main(["--src", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert fidelity.main(["--src", SRC, "--tasks", "vgg_cifar10"]) == 2
    assert "unknown task(s) ['vgg_cifar10']" in capsys.readouterr().err
