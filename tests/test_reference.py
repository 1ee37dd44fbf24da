"""--reference: one run against another, graph by graph, on synthetic runs whose answers
are computed here independently (plain json, numpy and scipy)."""
import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from relgraph_jax import analysis, graphs, results
from relgraph_jax.analysis import reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLP52 = os.path.join(REPO, "docs", "results", "mlp52")
PNG = b"\x89PNG\r\n\x1a\n"

# Shared graphs as indices into paper:n64_52. The analysed run's best is 27; the
# reference's best is 40, with 27 a close second, so the reference's sweet spot spans
# both bins (15x15 bins (6, 4) and (7, 5)) and this run's is 27's bin alone.
SHARED = [27, 40, 3, 10, 20, 30, 45, 12]
THIS_ERROR = dict(zip(SHARED, [30.0, 33.0, 37.0, 34.0, 39.0, 35.0, 36.0, 38.0]))
REF_ERROR = {1: dict(zip(SHARED, [30.05, 30.0, 36.0, 31.5, 37.5, 31.0, 35.0, 36.5])),
             0: dict(zip(SHARED, [40.0, 42.0, 41.0, 45.0, 44.0, 43.0, 46.0, 47.0]))}  # by epoch - 1
COMPLETE = "complete:n=64"


def _twin(index: int) -> int:
    """Index in n64_3942 of paper:n64_52/index: candidates with the same catalogue C and L,
    confirmed by graph equality (n, direction, edges)."""
    big = graphs.paper_set("n64_3942")
    row = graphs.paper_graph("n64_52", index)
    small = graphs.RelationalGraph.from_spec(f"paper:n64_52/{index}")
    found = [g.index for g in big if g.C == row.C and g.L == row.L
             and graphs.RelationalGraph.from_spec(f"paper:n64_3942/{g.index}") == small]
    assert len(found) == 1
    return found[0]


def _place(spec):
    if spec.startswith("paper:"):
        set_name, index = spec[len("paper:"):].split("/")
        row = graphs.paper_graph(set_name, int(index))
        return row.C, row.L
    return (1.0, 1.0) if spec == COMPLETE else (0.5, 2.0)


def _write(workdir, rows):
    """rows: (graph, seed, epoch, error) -> results.jsonl in the project's schema."""
    os.makedirs(workdir, exist_ok=True)
    variants = {}
    with open(os.path.join(workdir, results.RESULTS_FILE), "w") as f:
        for graph, seed, epoch, error in rows:
            C, L = _place(graph)
            variant = variants.setdefault((graph, seed), len(variants))
            f.write(json.dumps({"variant": variant, "epoch": epoch, "graph": graph, "seed": seed,
                                "C": C, "L": L, "test_error": error, "width": 500, "params": 1,
                                "macs": 1, "model": "mlp", "hparams": {}, "status": "ok"}) + "\n")
    return str(workdir)


def _means(rows, epoch):
    """Mean error per spec at `epoch`, by hand."""
    errors = collections.defaultdict(list)
    for graph, _, e, error in rows:
        if e == epoch:
            errors[graph].append(error)
    return {g: float(np.mean(v)) for g, v in errors.items()}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """This run: the SHARED graphs as paper:n64_52 specs (3 seeds; graph 40's seed 2 is
    written under its n64_3942 spec), 52/50 and 52/51 (not in the reference), an
    unresolvable spec, the complete graph. Reference: the SHARED graphs as n64_3942 specs
    (2 seeds, 2 epochs), n64_3942/0-2 (not in this run), the complete graph."""
    twins = {i: _twin(i) for i in SHARED}
    this_rows = []
    for seed, offset in enumerate((-0.1, 0.0, 0.1)):
        for i in SHARED:
            spec = f"paper:n64_3942/{twins[i]}" if (i == 40 and seed == 2) else f"paper:n64_52/{i}"
            this_rows.append((spec, seed, 1, THIS_ERROR[i] + offset))
        for spec, error in (("paper:n64_52/50", 31.0), ("paper:n64_52/51", 50.0),
                            ("mystery:x", 20.0), (COMPLETE, 40.0)):
            this_rows.append((spec, seed, 1, error + offset))
    ref_rows = []
    for epoch in (1, 2):
        for seed, offset in enumerate((-0.1, 0.1)):
            for i in SHARED:
                ref_rows.append((f"paper:n64_3942/{twins[i]}", seed, epoch,
                                 REF_ERROR[epoch - 1][i] + offset))
            for spec, error in (("paper:n64_3942/0", 10.0), ("paper:n64_3942/1", 60.0),
                                ("paper:n64_3942/2", 45.0), (COMPLETE, 41.0 - epoch)):
                ref_rows.append((spec, seed, epoch, error + offset))
    root = tmp_path_factory.mktemp("pair")
    this_dir, ref_dir = _write(root / "this", this_rows), _write(root / "ref", ref_rows)
    out = str(root / "report")
    path = analysis.write_report(this_dir, out=out, reference=ref_dir)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    return dict(this=this_dir, ref=ref_dir, out=out, text=open(path).read(),
                summary=summary["reference"], twins=twins, this_rows=this_rows,
                ref_rows=ref_rows)


def _expected(pair, epoch=2):
    """(this, reference) mean per shared graph, in SHARED order then the complete graph."""
    mine, theirs = _means(pair["this_rows"], 1), _means(pair["ref_rows"], epoch)
    # Graph 40's seed 2 sits under its other spec: pool it by hand.
    mine["paper:n64_52/40"] = THIS_ERROR[40]
    x = [mine[f"paper:n64_52/{i}"] for i in SHARED] + [mine[COMPLETE]]
    y = [theirs[f"paper:n64_3942/{pair['twins'][i]}"] for i in SHARED] + [theirs[COMPLETE]]
    return np.array(x), np.array(y)


def test_graphs_match_by_what_they_are(pair):
    m = reference.match(analysis.load(pair["this"]), analysis.load(pair["ref"]))
    expected = {(f"paper:n64_52/{i}", f"paper:n64_3942/{pair['twins'][i]}") for i in SHARED}
    assert set(zip(m.this.graph.tolist(), m.other.graph.tolist())) == expected | {(COMPLETE,
                                                                                   COMPLETE)}
    assert m.unshared == (2, 3)
    assert m.this.seeds.tolist() == [3] * 9 and m.other.seeds.tolist() == [2] * 9
    notes = "\n".join(m.notes)
    assert "this run: 1 graph spec(s) cannot be resolved and are left out: mystery:x" in notes
    assert (f"this run: `paper:n64_52/40`, `paper:n64_3942/{pair['twins'][40]}` are one graph; "
            "their runs are pooled") in notes
    assert pair["summary"]["shared"] == 9
    assert pair["summary"]["unshared"] == {"this": 2, "reference": 3}
    assert "| graphs | 11, 2 not shared | 12, 3 not shared |" in pair["text"]


def test_correlations_and_offset_by_hand(pair):
    x, y = _expected(pair)
    summary = pair["summary"]
    assert summary["pearson"]["r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert summary["pearson"]["pvalue"] == pytest.approx(scipy.stats.pearsonr(x, y).pvalue)
    rank_r = np.corrcoef(scipy.stats.rankdata(x), scipy.stats.rankdata(y))[0, 1]
    assert summary["spearman"]["r"] == pytest.approx(rank_r)
    assert summary["spearman"]["pvalue"] == pytest.approx(scipy.stats.spearmanr(x, y).pvalue)
    diff = x - y
    assert summary["offset"]["mean"] == pytest.approx(diff.sum() / len(diff))
    assert summary["offset"]["std"] == pytest.approx(
        np.sqrt(((diff - diff.mean()) ** 2).sum() / (len(diff) - 1)))
    assert (f"- **9 shared graphs**: Pearson r = {np.corrcoef(x, y)[0, 1]:.3f} "
            f"(p = {scipy.stats.pearsonr(x, y).pvalue:.2g}), Spearman rho = {rank_r:.3f}"
            in pair["text"])
    assert (f"- Offset, this run minus the reference: {diff.mean():+.2f} points (std "
            f"{diff.std(ddof=1):.2f} over the shared graphs)." in pair["text"])


def test_best_graphs_and_their_ranks(pair):
    best, twins = pair["summary"]["best"], pair["twins"]
    assert best["this"] == "paper:n64_52/27" and best["this_there"] == f"paper:n64_3942/{twins[27]}"
    assert best["reference"] == f"paper:n64_3942/{twins[40]}"
    assert best["reference_here"] == "paper:n64_52/40"
    assert not best["same"] and best["graphs"] == 8
    assert best["rank_in_reference"] == 2 and best["rank_in_this"] == 2
    assert (f"| best shared graph (complete graph aside) | `paper:n64_52/27` "
            f"(`paper:n64_3942/{twins[27]}` there), rank 2 of 8 in the reference |"
            in pair["text"])
    assert ("- Best graph: **different**; this run's is rank 2 in the reference, the "
            "reference's rank 2 here (tied graphs share a rank)." in pair["text"])


def test_sweet_spots_and_overlap(pair):
    grid = analysis.PAPER_52

    def rect(c_bins, l_bins):
        (c0, c1), (l0, l1) = grid.c_range(*c_bins), grid.l_range(*l_bins)
        return f"C {c0:.3f}-{c1:.3f}, L {l0:.3f}-{l1:.3f}"

    this_rect, ref_rect = rect((7, 7), (5, 5)), rect((6, 7), (4, 5))
    assert (f"| sweet spot (15x15 grid, shared graphs) | {this_rect} | {ref_rect} |"
            in pair["text"])
    assert (f"- Sweet spots overlap on {this_rect}: 1 bins, of this run's 1 and the "
            "reference's 4." in pair["text"])
    spot = pair["summary"]["sweet_spot"]
    assert spot["this"]["c_bins"] == [7, 7] and spot["reference"]["l_bins"] == [4, 5]
    assert spot["overlap"]["bins"] == 1


def test_section_figure_and_place(pair):
    text = pair["text"]
    assert "![this run against the reference, one point per graph](reference.png)" in text
    with open(os.path.join(pair["out"], reference.FIGURE), "rb") as f:
        assert f.read(8) == PNG
    titles = [line for line in text.splitlines() if line.startswith("## ")]
    assert titles.index("## Against the reference run") == titles.index(
        "## Complete graph vs best graph") + 1
    assert "| epoch | last (1) | last (2) |" in text


def test_bad_reference_writes_nothing(pair, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="no results.jsonl"):
        analysis.write_report(pair["this"], out=str(out), reference=str(tmp_path))
    alone = _write(tmp_path / "alone", [("paper:n64_3942/0", 0, 1, 10.0)])
    with pytest.raises(ValueError, match=r"^--reference: no graph of .* \(11 graphs\) is among "
                                         r"the 1 graphs of .*alone"):
        analysis.write_report(pair["this"], out=str(out), reference=alone)
    assert not out.exists()


def test_one_seed_study_against_a_synthetic_reference(tmp_path):
    """The committed 2-epoch CPU study (52 graphs + complete graph, one seed)."""
    last = {}
    for record in results.read_records(os.path.join(MLP52, results.RESULTS_FILE)):
        if record["epoch"] >= last.get(record["graph"], (0, 0))[0]:
            last[record["graph"]] = (record["epoch"], record["test_error"])
    assert len(last) == 53
    rows, x, y = [], [], []
    for k, (spec, (_, error)) in enumerate(sorted(last.items())):
        ref_spec = spec if spec == COMPLETE else f"paper:n64_3942/{_twin(int(spec.split('/')[1]))}"
        value = 0.5 * error + 10 + (k % 5) * 0.3
        rows += [(ref_spec, 0, 100, value - 0.2), (ref_spec, 1, 100, value + 0.2)]
        x.append(error)
        y.append(value)
    rows += [("paper:n64_3942/0", 0, 100, 20.0), ("paper:n64_3942/0", 1, 100, 21.0)]
    out = tmp_path / "report"
    path = analysis.write_report(MLP52, out=str(out),
                                 reference=_write(tmp_path / "ref", rows))
    text = open(path).read()
    summary = json.loads((out / "summary.json").read_text())["reference"]
    assert summary["shared"] == 53 and summary["unshared"] == {"this": 0, "reference": 1}
    assert summary["pearson"]["r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert summary["offset"]["mean"] == pytest.approx(np.mean(np.subtract(x, y)))
    assert "| seeds per shared graph | 1 (no std over seeds, no sweet-spot t-test) | 2 |" in text
    assert summary["sweet_spot"]["this"]["unavailable"].endswith(
        "holds 1 run; the t-test needs at least 2 there (more seeds, or a coarser grid)")
    assert "c_range" in summary["sweet_spot"]["reference"]
    assert "- Sweet spots: not comparable, this run has none." in text
    assert (out / reference.FIGURE).read_bytes()[:8] == PNG


def test_command_line(pair, tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")

    def analyze(*args):
        return subprocess.run([sys.executable, "-m", "experiments.analyze", *args], cwd=REPO,
                              env=env, capture_output=True, text=True)

    out = tmp_path / "cli"
    done = analyze(f"--workdir={pair['this']}", f"--reference={pair['ref']}",
                   "--reference_epoch=1", f"--out={out}")
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())["reference"]
    x, y = _expected(pair, epoch=1)
    assert summary["epoch"] == 1 and summary["pearson"]["r"] == pytest.approx(
        np.corrcoef(x, y)[0, 1])
    assert (out / reference.FIGURE).exists()
    alone = _write(tmp_path / "alone", [("paper:n64_3942/0", 0, 1, 10.0)])
    for args, message in (
            ([f"--reference={tmp_path / 'none'}"],
             "--reference must be a workdir holding results.jsonl"),
            ([f"--reference={alone}"], "--reference: no graph of"),
            (["--reference_epoch=1"], "--reference_epoch needs --reference")):
        bad = analyze(f"--workdir={pair['this']}", f"--out={tmp_path / 'bad'}", *args)
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr
        assert not (tmp_path / "bad").exists()
