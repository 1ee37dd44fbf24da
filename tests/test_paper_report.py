"""The paper's choices (analysis.paper, per_graph ddof, complete_vs_best best=, right-closed C)
against hand-computed values, and the paper's printed numbers recomputed from the authors'
recorded runs (the package's copy, graph2nn_results.DEFAULT_SRC)."""
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile

import numpy as np
import pytest
import scipy.stats

from experiments import import_graph2nn, outdir, paper_report
from relgraph_jax import graph2nn_results, results
from relgraph_jax.analysis import loading, paper, stats, write_report
from relgraph_jax.graphs import catalog

SRC = graph2nn_results.DEFAULT_SRC
FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "graph2nn_final_results")
IMAGENET = ["cnn6_imagenet", "resnet34_imagenet", "resnet34_sep_imagenet", "resnet50_imagenet",
            "efficientnet_imagenet"]
# The paper's table (mean +- population std over seeds), complete graph -> best graph.
PAPER = {"mlp_cifar10": ("33.34 0.36", "32.05 0.14"), "cnn6_imagenet": ("48.27 0.14", "46.73 0.16"),
         "resnet34_imagenet": ("25.73 0.07", "24.57 0.10"),
         "resnet34_sep_imagenet": ("28.39 0.05", "27.17 0.18"),
         "resnet50_imagenet": ("23.09 0.05", "22.42 0.09"),
         "efficientnet_imagenet": ("25.59 0.05", "25.07 0.17")}


def _runs(graph, error, C=None, L=None, model="mlp", epoch=None):
    n = len(graph)
    C = np.zeros(n) if C is None else np.asarray(C, float)
    L = np.ones(n) if L is None else np.asarray(L, float)
    return loading.Runs(workdir="-", epoch=epoch, variant=np.arange(n),
                        graph=np.asarray(graph, dtype=str), seed=np.arange(n), C=C, L=L,
                        test_error=np.asarray(error, float), reached=np.ones(n, int),
                        width=np.ones(n, int), params=np.ones(n, int), macs=np.ones(n, int),
                        model=model, hparams={}, epochs=(1,), notes=())


# ----------------------------------------------------------------------------- the options
def test_per_graph_population_std_is_numpys():
    errors = {"a": [30.1, 30.9, 31.4], "b": [29.0, 29.5], "complete:n=64": [33.0]}
    runs = _runs([g for g, e in errors.items() for _ in e], [x for e in errors.values() for x in e])
    for ddof in (0, 1):
        table = stats.per_graph(runs, ddof)
        for g, e in errors.items():
            row = list(table.graph).index(g)
            want = np.std(e, ddof=ddof) if len(e) > ddof else np.nan
            np.testing.assert_allclose(table.std[row], want, rtol=1e-12)
    np.testing.assert_array_equal(stats.per_graph(runs).std, stats.per_graph(runs, 1).std)
    with pytest.raises(ValueError, match="ddof"):
        stats.per_graph(runs, 2)


def test_right_closed_c_bins_match_numpy_digitize_at_the_edges():
    edges = np.linspace(0, 1, 16)
    C = np.array([0.0, edges[1], edges[3], 0.5, edges[14], 1.0, 0.03])
    L = np.full(len(C), 2.0)
    right = stats.Grid("r", edges, np.linspace(1, 4.5, 16), c_right_closed=True)
    left = stats.Grid("l", edges, np.linspace(1, 4.5, 16))
    ci, _ = right.locate(C, L)
    want = np.digitize(C, edges, right=True) - 1   # C = 0 falls before the first bin: -1
    np.testing.assert_array_equal(ci, want)
    assert ci[1] == 0 and ci[2] == 2 and ci[5] == 14 and ci[0] == -1
    li = left.locate(C, L)[0]
    assert li[1] == 1 and li[2] == 3 and li[5] == 14 and li[0] == 0   # [lo, hi), last closed


def test_best_spec_picks_the_named_graph_not_the_lowest_mean():
    runs = _runs(["g1", "g1", "g2", "g2", "complete:n=64", "complete:n=64"],
                 [31.0, 33.4, 32.0, 32.2, 34.0, 34.4])
    table = stats.per_graph(runs, ddof=0)
    assert stats.complete_vs_best(table).best["graph"] == "g2"          # lowest mean, 32.1
    named = stats.complete_vs_best(table, best="g1")
    assert named.best["graph"] == "g1"
    assert (named.best["mean"], named.best["std"]) == pytest.approx((32.2, 1.2))
    assert named.complete["std"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="not a graph"):
        stats.complete_vs_best(table, best="g3")


def test_graph_sweet_spot_is_a_pooled_one_sided_t_test_per_graph():
    best, close, worse = [24.5, 24.6, 24.7], [24.6, 24.7, 24.9], [25.6, 25.7, 25.8]
    runs = _runs(["b"] * 3 + ["c"] * 3 + ["w"] * 3, best + close + worse,
                 C=[0.3] * 3 + [0.5] * 3 + [0.9] * 3, L=[2.0] * 3 + [2.4] * 3 + [1.2] * 3)
    spot = paper.graph_sweet_spot(runs, "b")
    t, p = scipy.stats.ttest_ind(best, close)
    assert t < 0 and p / 2 >= 0.05           # not significantly worse: kept
    assert spot.kept == ("b", "c") and spot.c_range == (0.3, 0.5) and spot.l_range == (2.0, 2.4)


def test_notebook_grids():
    g16 = paper.notebook_grid(16)
    np.testing.assert_array_equal(g16.c_edges, np.linspace(0, 1, 13))
    np.testing.assert_array_equal(g16.l_edges, np.linspace(1, 2.5, 13))
    assert g16.c_right_closed and paper.notebook_grid(64, 3).shape == (45, 45)


# ----------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The five ImageNet tasks as workdirs (about 3 s)."""
    out = str(tmp_path_factory.mktemp("graph2nn"))
    import_graph2nn.import_tasks(SRC, IMAGENET, out)
    return {task: os.path.join(out, task) for task in IMAGENET}


@pytest.fixture(scope="module")
def mlp():
    """The MLP's 3943 x 5 runs at epoch 200, read with the importer's reader. A full import
    would spend 12 s regenerating 3942 graphs for C and L; the catalog holds the authors'
    C and L, which the project's equal to 1e-9 (tests/test_graphs_wsflex.py)."""
    runs = graph2nn_results.load_runs(SRC, ["mlp_cifar10"])["mlp_cifar10"]
    where = {g: (1.0, 1.0) if g.startswith("complete") else
             (lambda pg: (pg.C, pg.L))(catalog.paper_graph("n64_3942", int(g.split("/")[1])))
             for g in {r.graph for r in runs}}
    graph = [r.graph for r in runs]
    return _runs(graph, [r.top1_error for r in runs], C=[where[g][0] for g in graph],
                 L=[where[g][1] for g in graph], epoch=200)


@pytest.fixture(scope="module")
def authors_npys():
    with tarfile.open(SRC) as archive:
        return {os.path.basename(m.name).replace("_resolution52.npy", ""):
                np.load(io.BytesIO(archive.extractfile(m).read()))
                for m in archive if m.isfile() and "/npys/" in m.name}


def _paper_pair(runs, model):
    table = stats.per_graph(runs, ddof=0)
    base = stats.complete_vs_best(table, best=paper.paper_best(model))
    return (f"{base.complete['mean']:.2f} {base.complete['std']:.2f}",
            f"{base.best['mean']:.2f} {base.best['std']:.2f}")


def test_complete_vs_best_reproduces_the_paper_for_all_six_families(imported, mlp):
    assert _paper_pair(mlp, "mlp") == PAPER["mlp_cifar10"]
    for task, workdir in imported.items():
        runs = loading.load(workdir, 100)
        assert _paper_pair(runs, runs.model) == PAPER[task], task


def test_default_rule_differs_where_the_paper_picks_another_graph(imported, mlp):
    assert stats.complete_vs_best(stats.per_graph(mlp)).best["graph"] == "paper:n64_3942/1943"
    cnn = stats.per_graph(loading.load(imported["cnn6_imagenet"], 100))
    tie = cnn.mean[list(cnn.graph).index("paper:n64_52/23")]
    assert tie == cnn.mean[list(cnn.graph).index("paper:n64_52/27")]   # an exact tie
    assert stats.complete_vs_best(cnn).best["graph"] == "paper:n64_52/23"


def test_resnet34_early_epochs_predict_the_final_ranking(imported):
    index = results.index_results(imported["resnet34_imagenet"])
    epochs, r = paper.epoch_correlations(index, 100)
    assert abs(r[epochs == 3][0] - 0.93) <= 0.02


def test_mlp_sweet_spot_and_set_size_correlation(mlp):
    _, c_range, l_range = paper.bin_sweet_spot(mlp, paper.notebook_grid(64))
    assert f"{c_range[0]:.2f}-{c_range[1]:.2f} {l_range[0]:.2f}-{l_range[1]:.2f}" == \
        "0.10-0.50 1.82-2.75"
    assert f"{paper.set_size_correlation(mlp).r:.2f}" == "0.90"


def test_heatmap_vectors_are_the_authors_npys(imported, mlp, authors_npys):
    r34 = paper.heatmap_vector(loading.load(imported["resnet34_imagenet"], 100))
    np.testing.assert_array_equal(r34, authors_npys["resnet34_imagenet"])
    np.testing.assert_allclose(paper.heatmap_vector(mlp), authors_npys["mlp_cifar10"], atol=1e-9)
    r = paper.vector_correlation(paper.heatmap_vector(mlp), r34)
    assert f"{r:.2f}" == "0.66"


def test_report_with_paper_choices(imported, tmp_path):
    write_report(imported["cnn6_imagenet"], out=str(tmp_path), epoch=100, paper_choices=True)
    summary = json.load(open(tmp_path / "summary.json"))
    assert summary["paper_choices"] and summary["best"]["graph"] == "paper:n64_52/27"
    assert f"{summary['best']['std']:.2f}" == "0.16"
    assert "Paper's choices" in (tmp_path / "REPORT.md").read_text()


# ------------------------------------------------------------- the page's output folder
def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _refused(args, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        paper_report.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    return err[0]


def test_paper_report_checks_its_input_before_touching_the_page(tmp_path, capsys):
    """A page this command made keeps every file when --src lacks a family, is truncated
    or is not a tar archive; a folder it did not make, or a file, is refused outright."""
    src = tmp_path / "graph2nn" / "analysis" / "final_results"
    shutil.copytree(FIXTURE, src)  # lacks the CNN and EfficientNet folders
    shutil.copy(graph2nn_results.DEFAULT_SRC.replace("final_results.tar.xz", "LICENSE"),
                tmp_path / "graph2nn" / "LICENSE")  # the root of graph2nn's checkout
    page = tmp_path / "page"
    (page / "slices").mkdir(parents=True)
    (page / "slices" / "notes.md").write_text("mine")
    (page / "resnet34_imagenet").mkdir()
    (page / "resnet34_imagenet" / "run.log").write_text("log")
    (page / outdir.MARKER).write_text(json.dumps({"command": "experiments.paper_report"}))
    before = _tree(page)
    line = _refused(["--src", str(src), "--out", str(page)], capsys)
    assert "holds no file of task(s) cnn6_imagenet" in line  # a folder --src is read
    bad_tars = {"truncated.tar.xz": open(SRC, "rb").read()[:100_000], "plain.tar.xz": b"text"}
    for name, blob in bad_tars.items():
        (tmp_path / name).write_bytes(blob)
        shutil.copy(src.parent.parent / "LICENSE", tmp_path / "LICENSE")
        line = _refused(["--src", str(tmp_path / name), "--out", str(page)], capsys)
        assert ("is not a readable tar archive" if name == "truncated.tar.xz" else
                "is neither a final_results folder nor a tar archive") in line
    assert _tree(page) == before
    assert [p for p in os.listdir(tmp_path) if p.startswith(".page")] == []  # nothing aside
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.md").write_text("mine")
    line = _refused(["--src", SRC, "--out", str(foreign)], capsys)
    assert "is a non-empty folder that experiments.paper_report did not make" in line
    assert _tree(foreign) == {"notes.md": b"mine"}
    line = _refused(["--src", SRC, "--out", str(foreign / "notes.md")], capsys)
    assert "is a file, not a folder" in line


def _dead_pid() -> int:
    """The PID of a process that has ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_page_is_replaced_whole_only_once_it_is_built(tmp_path):
    page = tmp_path / "page"
    with outdir.built_aside(str(page), "cmd") as staging:
        open(os.path.join(staging, "a.txt"), "w").write("first")
    assert _tree(page) == {outdir.MARKER: b'{\n "command": "cmd"\n}\n', "a.txt": b"first"}
    with pytest.raises(RuntimeError):
        with outdir.built_aside(str(page), "cmd") as staging:
            open(os.path.join(staging, "b.txt"), "w").write("half")
            raise RuntimeError("crash while building")
    assert _tree(page)["a.txt"] == b"first" and "b.txt" not in _tree(page)
    with outdir.built_aside(str(page), "cmd") as staging:
        open(os.path.join(staging, "b.txt"), "w").write("second")
    assert sorted(_tree(page)) == [outdir.MARKER, "b.txt"]
    assert sorted(os.listdir(tmp_path)) == ["page"]
    host = socket.gethostname().replace("-", "_")  # the leftovers' names: HOST-PID-...
    (tmp_path / f".page.building-{host}-{_dead_pid()}-x1" / "half").mkdir(parents=True)
    kept = [f".page.building-{host}-{os.getpid()}-x2",  # a live process's
            f".page.building-node7-{_dead_pid()}-x3"]  # another host's, on a shared disk
    for name in kept:
        (tmp_path / name).mkdir()
    with outdir.built_aside(str(page), "cmd") as staging:
        pass
    assert sorted(os.listdir(tmp_path)) == sorted(kept) + ["page"]
    with pytest.raises(ValueError, match="that other did not make"):
        outdir.check_replaceable(str(page), "other")
