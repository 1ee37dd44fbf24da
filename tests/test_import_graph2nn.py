"""The importer of the authors' recorded runs, on a fixture cut from their real files.

tests/fixtures/graph2nn_final_results holds rows of graph2nn's final_results, unchanged:
ResNet-34-sep seeds 1 and 2 at epochs 34 and 35 (the complete graph, n64_52/36 and
n64_52/2, whose seed-2 run stops after epoch 34 in the authors' files; seed 1's file names
lack `_seed1`, seed 2's have `_seed2`), ResNet-50 seed 1 at epoch 100 (the complete graph,
n64_52/2, /22 and /36) and the MLP at epoch 200 (the complete graph and graphs 0, 549,
1943, 2267, 2306 and 3552 of n64_3942, 5 seeds stacked in one file; 549, 2267 and 2306 are
graphs 3, 27 and 29 of n64_52).
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from experiments import import_graph2nn
from relgraph_jax import analysis, graph2nn_results, graphs
from relgraph_jax.analysis import loading, reference, stats
from relgraph_jax.results import RESULTS_FILE, read_records

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "graph2nn_final_results")
SEP = "resnet34_sep_imagenet"


def _arrays(folder, stem, epoch):
    base = os.path.join(FIXTURE, folder)
    return (np.load(os.path.join(base, f"names_{stem}_epoch{epoch}.npy")),
            np.load(os.path.join(base, f"results_{stem}_epoch{epoch}.npy")))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("imported"))
    configs = import_graph2nn.import_tasks(FIXTURE, [SEP, "resnet50_imagenet", "mlp_cifar10"], out)
    return out, configs


def _records(out, task):
    return read_records(os.path.join(out, task, RESULTS_FILE))


def test_every_row_of_both_file_name_patterns_becomes_one_record(imported):
    out, configs = imported
    records = _records(out, SEP)
    rows = sum(len(_arrays(folder, stem, e)[0]) for folder, stem in
               ((f"{SEP}_seed1", SEP), (f"{SEP}_seed2", f"{SEP}_seed2")) for e in (34, 35))
    assert len(records) == rows == 11 == configs[SEP]["records"]
    assert {(r["seed"], r["epoch"]) for r in records} == {(1, 34), (1, 35), (2, 34), (2, 35)}
    names, results = _arrays(f"{SEP}_seed2", f"{SEP}_seed2", 35)
    by_key = {(r["graph"], r["seed"], r["epoch"]): r for r in records}
    for name_row, values in zip(names, results[:, 0]):
        r = by_key[(graph2nn_results.graph_spec(SEP, name_row), 2, 35)]
        assert (r["params_m"], r["gflops"], r["time_per_iter"], r["test_error"], r["top5_error"],
                r["width"]) == tuple(float(v) for v in values[:5]) + (int(values[6]),)


def test_graphs_get_paper_specs_with_the_projects_c_and_l(imported):
    out, _ = imported
    records = _records(out, SEP) + _records(out, "mlp_cifar10")
    assert {r["graph"] for r in records} == {
        "complete:n=64", "paper:n64_52/2", "paper:n64_52/36", "paper:n64_3942/0",
        "paper:n64_3942/549", "paper:n64_3942/1943", "paper:n64_3942/2267",
        "paper:n64_3942/2306", "paper:n64_3942/3552"}
    for r in records:
        g = graphs.RelationalGraph.from_spec(r["graph"])
        assert (r["C"], r["L"]) == (g.C, g.L)
    # graph 36 of n64_52 is the paper's best ResNet-34-sep graph: C 0.303, L 2.048
    best = next(r for r in records if r["graph"] == "paper:n64_52/36")
    assert (round(best["C"], 3), round(best["L"], 3)) == (0.303, 2.048)


def test_missing_runs_are_reported_not_invented(imported):
    out, configs = imported
    assert configs[SEP]["missing_runs"] == [{"graph": "paper:n64_52/2", "seed": 2, "epochs": "35"}]
    assert configs["mlp_cifar10"]["missing_runs"] == []
    assert not any(r["graph"] == "paper:n64_52/2" and r["seed"] == 2 and r["epoch"] == 35
                   for r in _records(out, SEP))
    with open(os.path.join(out, SEP, "config.json")) as f:
        config = json.load(f)
    assert config["source"]["task"] == SEP and config["model"] == {"name": "resnet34sep"}
    assert config["epochs"] == [34, 35] and config["seeds"] == [1, 2]


def test_records_round_trip_through_the_analysis_loader(imported):
    out, _ = imported
    runs = loading.load(os.path.join(out, "mlp_cifar10"))
    assert runs.model == "mlp" and len(runs) == 7 * 5 and not runs.notes
    table = stats.per_graph(runs)
    names, results = _arrays("mlp_cifar10", "mlp_cifar10", 200)
    expected = {graph2nn_results.graph_spec("mlp_cifar10", n): r[:, 3].mean()
                for n, r in zip(names, results)}
    assert {g: m for g, m in zip(table.graph, table.mean)} == pytest.approx(expected, abs=1e-12)
    assert stats.complete_vs_best(table).best["graph"] == "paper:n64_3942/1943"
    sep = loading.load(os.path.join(out, SEP), epoch=35)
    assert any("lack some of seeds [1, 2]: paper:n64_52/2 (has seeds [1])" in n for n in sep.notes)


def test_a_tar_xz_imports_like_the_folder(imported, tmp_path):
    out, _ = imported
    archive = tmp_path / "final_results.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(FIXTURE, arcname="analysis/final_results")
    import_graph2nn.import_tasks(str(archive), [SEP], str(tmp_path / "from_tar"))
    assert _records(str(tmp_path), "from_tar") == _records(out, SEP)


def test_an_unmappable_row_is_a_clear_error(tmp_path):
    bad = tmp_path / "final_results" / "mlp_cifar10"
    bad.mkdir(parents=True)
    names, results = _arrays("mlp_cifar10", "mlp_cifar10", 200)
    names = names.copy()
    names[1, 5] = "0.123456"  # a p no graph of the set has
    np.save(bad / "names_mlp_cifar10_epoch200.npy", names)
    np.save(bad / "results_mlp_cifar10_epoch200.npy", results)
    with pytest.raises(ValueError, match=r"mlp_cifar10: no graph of paper set n64_3942 has .*p=0\.123456"):
        import_graph2nn.import_tasks(str(tmp_path / "final_results"), ["mlp_cifar10"],
                                     str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [
    (["--task", "resnet18", "--out", "OUT"], "--task='resnet18' is not a recorded task; allowed: "),
    (["--task", "all"], "--out is required"),
    (["--src", "/nonexistent", "--task", "all", "--out", "OUT"], "--src '/nonexistent' does not exist"),
])
def test_bad_flags_get_one_line_and_write_nothing(args, message, tmp_path):
    args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    if "--src" not in args:
        args = ["--src", FIXTURE] + args
    proc = subprocess.run([sys.executable, "-m", "experiments.import_graph2nn", *args],
                          capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == "" and len(lines) == 1
    assert lines[0].startswith("experiments.import_graph2nn: ") and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_rerun_keeps_its_own_import_and_refuses_every_other_folder(imported, tmp_path):
    out, _ = imported
    before = _records(out, SEP)
    again = import_graph2nn.import_tasks(FIXTURE, [SEP], os.path.join(out, SEP))
    assert again[SEP]["already_imported"] and _records(out, SEP) == before
    with pytest.raises(ValueError, match=f"holds an import of task '{SEP}' from "):
        import_graph2nn.import_tasks(FIXTURE, ["resnet50_imagenet"], os.path.join(out, SEP))
    assert _records(out, SEP) == before
    # A training workdir whose records were lost, one in use, a folder of other files.
    cases = {"workdir": {"config.json": '{"seeds": 1}', "checkpoints/22/x": "state"},
             "running": {"run.lock": "4242 node7"}, "notes": {"config.json": "{}", "a.md": "x"}}
    for name, files in cases.items():
        folder = tmp_path / name
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        with pytest.raises(ValueError, match="is a non-empty folder that "
                                             "experiments.import_graph2nn did not make"):
            import_graph2nn.import_tasks(FIXTURE, [SEP], str(folder))
        assert {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*")
                if p.is_file()} == files
    assert sorted(os.listdir(tmp_path)) == sorted(cases)  # nothing built beside them
    old = tmp_path / "old_import"  # made before imports were marked
    shutil.copytree(os.path.join(out, SEP), old)
    os.remove(old / ".made_by.json")
    with pytest.raises(ValueError, match="holds an import made by an earlier version"):
        import_graph2nn.import_tasks(FIXTURE, [SEP], str(old))


def test_an_import_killed_part_way_completes_on_the_rerun(imported, tmp_path, monkeypatch):
    out, _ = imported
    target = str(tmp_path / "all")
    real_write = import_graph2nn._write

    def killed_at_second(workdir, records, config):
        if config["source"]["task"] == "resnet50_imagenet":
            raise KeyboardInterrupt  # what a SIGINT part-way looks like to the writer
        real_write(workdir, records, config)
    monkeypatch.setattr(import_graph2nn, "_write", killed_at_second)
    with pytest.raises(KeyboardInterrupt):
        import_graph2nn.import_tasks(FIXTURE, [SEP, "resnet50_imagenet"], target)
    assert os.listdir(target) == [SEP]  # the finished task only, no half-written folder
    monkeypatch.setattr(import_graph2nn, "_write", real_write)
    done = import_graph2nn.import_tasks(FIXTURE, [SEP, "resnet50_imagenet"], target)
    assert done[SEP]["already_imported"] and "already_imported" not in done["resnet50_imagenet"]
    for task in (SEP, "resnet50_imagenet"):
        assert read_records(os.path.join(target, task, RESULTS_FILE)) == _records(out, task)


def test_unwritable_or_full_outputs_get_one_line_and_leave_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    with pytest.raises(ValueError, match="is a file; --task all writes one folder per task"):
        import_graph2nn.import_tasks(FIXTURE, [SEP, "mlp_cifar10"], str(blocker))
    with pytest.raises(ValueError, match=f"--out '{blocker}' is a file, not a folder"):
        import_graph2nn.import_tasks(FIXTURE, [SEP], str(blocker))
    with pytest.raises(ValueError, match=f"cannot write next to --out '{blocker}/sub'"):
        import_graph2nn.import_tasks(FIXTURE, [SEP], str(blocker / "sub"))

    def full(path, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(import_graph2nn.results, "write_atomically", full)
    with pytest.raises(ValueError, match=r"could not write '.*/new' \(No space left on device\); "
                                         "nothing there was changed"):
        import_graph2nn.import_tasks(FIXTURE, [SEP], str(tmp_path / "new"))
    assert sorted(os.listdir(tmp_path)) == ["file"] and blocker.read_text() == "mine"


def _mean_errors(workdir, specs):
    runs = loading.load(workdir)
    return [runs.test_error[runs.graph == spec].mean() for spec in specs]


def test_reference_between_two_imported_families(imported):
    """ResNet-34-sep (epoch 35) against ResNet-50 (epoch 100) over the graphs both have."""
    out, _ = imported
    m = reference.match(loading.load(os.path.join(out, SEP)),
                        loading.load(os.path.join(out, "resnet50_imagenet")))
    shared = ["complete:n=64", "paper:n64_52/2", "paper:n64_52/36"]
    assert sorted(m.this.graph) == sorted(m.other.graph) == shared and m.unshared == (0, 1)
    report = analysis.write_report(os.path.join(out, SEP), out=os.path.join(out, "rep_sep"),
                                   reference=os.path.join(out, "resnet50_imagenet"))
    x = _mean_errors(os.path.join(out, SEP), shared)
    y = _mean_errors(os.path.join(out, "resnet50_imagenet"), shared)
    with open(report) as f:
        text = f.read()
    assert f"**3 shared graphs**: Pearson r = {np.corrcoef(x, y)[0, 1]:.3f}" in text


def test_reference_between_the_cpu_study_and_the_authors_mlp(imported, tmp_path):
    """The committed 1-seed, 2-epoch study against the authors' MLP, on the graphs both
    have: graphs 3, 27 and 29 of n64_52 are 549, 2267 and 2306 of n64_3942."""
    out, _ = imported
    study = os.path.join(os.path.dirname(__file__), "..", "docs", "results", "mlp52")
    report = analysis.write_report(study, out=str(tmp_path / "rep"),
                                   reference=os.path.join(out, "mlp_cifar10"))
    ours = _mean_errors(study, ["complete:n=64", "paper:n64_52/3", "paper:n64_52/27",
                                "paper:n64_52/29"])
    theirs = _mean_errors(os.path.join(out, "mlp_cifar10"), [
        "complete:n=64", "paper:n64_3942/549", "paper:n64_3942/2267", "paper:n64_3942/2306"])
    with open(report) as f:
        text = f.read()
    assert "| graphs | 53, 49 not shared | 7, 3 not shared |" in text
    assert f"**4 shared graphs**: Pearson r = {np.corrcoef(ours, theirs)[0, 1]:.3f}" in text
    offset = np.mean(np.subtract(ours, theirs))
    assert f"Offset, this run minus the reference: {offset:+.2f} points" in text


@pytest.mark.parametrize("damage, message", [
    ("truncated tar", "is not a readable tar archive (EOFError"),
    ("corrupt tar", "is not a readable tar archive (LZMAError"),
    ("few columns", "graph2nn's results have 8 numbers per run (rows x seeds x 8), got shape "
                    "(7, 5, 6)"),
    ("truncated npy", "results_mlp_cifar10_epoch200.npy in --src"),
])
def test_a_damaged_source_is_named_in_one_line(damage, message, tmp_path):
    folder = tmp_path / "final_results" / "mlp_cifar10"
    folder.mkdir(parents=True)
    names, results = _arrays("mlp_cifar10", "mlp_cifar10", 200)
    np.save(folder / "names_mlp_cifar10_epoch200.npy", names)
    np.save(folder / "results_mlp_cifar10_epoch200.npy",
            results[:, :, :6] if damage == "few columns" else results)
    src = tmp_path / "final_results"
    if damage == "truncated npy":
        path = folder / "results_mlp_cifar10_epoch200.npy"
        path.write_bytes(path.read_bytes()[:200])
    if "tar" in damage:
        src = tmp_path / "final_results.tar.xz"
        with tarfile.open(src, "w:xz") as tar:
            tar.add(folder.parent, arcname="analysis/final_results")
        blob = src.read_bytes()
        half = len(blob) // 2
        src.write_bytes(blob[:half] if damage == "truncated tar" else
                        blob[:half] + bytes(200) + blob[half + 200:])
    with pytest.raises(ValueError) as info:
        import_graph2nn.import_tasks(str(src), ["mlp_cifar10"], str(tmp_path / "out"))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
