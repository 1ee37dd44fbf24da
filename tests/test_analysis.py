"""Analysis on synthetic results whose answers are known by construction."""
import importlib.resources
import json
import math
import os
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest
import scipy.stats

from relgraph_jax import analysis, results
from relgraph_jax.analysis import loading, report, stats

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _paper_52():
    path = importlib.resources.files("relgraph_jax.graphs") / "data/graphs_n64_52.csv"
    table = np.genfromtxt(str(path), delimiter=",", names=True)
    return table["C"], table["L"]


def _record(variant, graph, C, L, seed, epoch, error, status="ok", **extra):
    record = {"variant": variant, "graph": graph, "C": C, "L": L, "seed": seed, "model": "mlp",
              "width": 100 + variant, "macs": 2364416, "params": 1000, "epoch": epoch,
              "step": 10 * epoch, "train_loss": 1.0, "test_loss": 1.0, "test_error": error,
              "status": status, "failure": None if status == "ok" else "loss became NaN",
              "hparams": {"lr": 0.1}}
    record.update(extra)
    return record


def _write(workdir, records, tail=b""):
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, results.RESULTS_FILE), "wb") as f:
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode())
        f.write(tail)
    return str(workdir)


def _runs(C, L, error, graph=None, seed=None):
    n = len(C)
    graph = np.array([f"g{i}" for i in range(n)] if graph is None else graph, dtype=str)
    return loading.Runs(
        workdir="-", epoch=None, variant=np.arange(n), graph=graph,
        seed=np.zeros(n, int) if seed is None else np.asarray(seed), C=np.asarray(C, float),
        L=np.asarray(L, float), test_error=np.asarray(error, float), reached=np.ones(n, int),
        width=np.ones(n, int), params=np.ones(n, int), macs=np.ones(n, int), model="mlp",
        hparams={}, epochs=(1,), notes=())


# ----------------------------------------------------------------------------- loading
@pytest.fixture(scope="module")
def partial_workdir(tmp_path_factory):
    """3 graphs x 2 seeds, epochs 1-3, still running: variant 5 stopped at epoch 2, variant
    4 failed at epoch 3, epoch 2 of variant 0 was written twice, and a torn last line."""
    graphs = [("ws:a", 0.3, 2.0), ("ws:b", 0.5, 3.0), ("complete:n=64", 1.0, 1.0)]
    records = []
    for epoch in (1, 2, 3):
        for v in range(6):
            g, C, L = graphs[v // 2]
            if v == 5 and epoch == 3:
                continue
            status = "failed" if (v == 4 and epoch == 3) else "ok"
            records.append(_record(v, g, C, L, v % 2, epoch, 50.0 - 10 * epoch + v, status))
    records.append(_record(0, "ws:a", 0.3, 2.0, 0, 2, 29.5))  # a rerun's record of epoch 2
    torn = json.dumps(_record(5, "ws:c", 0.5, 3.0, 1, 3, 1.0)).encode()[:40]
    return _write(tmp_path_factory.mktemp("partial"), records, tail=torn)


def test_last_epoch_per_variant_names_every_gap(partial_workdir):
    runs = analysis.load(partial_workdir)
    assert runs.variant.tolist() == [0, 1, 2, 3, 5]
    assert runs.reached.tolist() == [3, 3, 3, 3, 2]
    assert runs.test_error.tolist() == [20.0, 21.0, 22.0, 23.0, 35.0]
    assert runs.model == "mlp" and runs.hparams == {"lr": 0.1} and runs.epochs == (1, 2, 3)
    notes = "\n".join(runs.notes)
    assert "last line (40 bytes, no newline) is torn" in notes
    assert "1 of 6 variants have not reached epoch 3" in notes and "5 (at epoch 2)" in notes
    assert "1 variant(s) failed" in notes and "4 (complete:n=64, seed 0: loss became NaN)" in notes
    assert "graphs lack some of seeds [0, 1]: complete:n=64 (has seeds [1])" in notes


def test_chosen_epoch_keeps_the_last_written_repeat(partial_workdir):
    runs = analysis.load(partial_workdir, epoch=2)
    assert runs.variant.tolist() == [0, 1, 2, 3, 4, 5]
    assert runs.test_error.tolist() == [29.5, 31.0, 32.0, 33.0, 34.0, 35.0]
    assert any("1 record(s) repeat a (variant, epoch)" in n for n in runs.notes)
    at_3 = analysis.load(partial_workdir, epoch=3)
    assert "1 of 6 variants have no record at epoch 3: variant 5" in at_3.notes


def test_fast_index_matches_parsing_every_line(partial_workdir):
    fast = results.index_results(partial_workdir)
    slow = results.index_results(partial_workdir, parse_every_line=True)
    assert not fast.parsed_every_line and slow.parsed_every_line
    for key in ("variant", "epoch", "start", "stop"):
        np.testing.assert_array_equal(getattr(fast, key), getattr(slow, key))


def test_misaligned_keys_fall_back_to_exact_parsing(tmp_path):
    # Line 2 has a nested "epoch" key and line 3 none: the regex counts still add up.
    records = [_record(0, "ws:a", 0.3, 2.0, 0, 1, 40.0),
               _record(1, "ws:b", 0.5, 3.0, 0, 1, 41.0, hparams={"lr": 0.1, "epoch": 99})]
    lines = [json.dumps(r, sort_keys=True) for r in records]
    lines.append(json.dumps({"variant": 2, "note": "no epoch here"}))
    lines.append(json.dumps(_record(0, "ws:a", 0.3, 2.0, 0, 2, 30.0), sort_keys=True))
    (tmp_path / results.RESULTS_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="mix 2 configurations"):
        analysis.load(str(tmp_path))
    records[1]["hparams"] = {"lr": 0.1}
    lines[1] = json.dumps(records[1], sort_keys=True) + ', "epoch": 7'  # not JSON any more
    (tmp_path / results.RESULTS_FILE).write_text("\n".join(lines) + "\n")
    runs = analysis.load(str(tmp_path))
    assert runs.variant.tolist() == [0] and runs.test_error.tolist() == [30.0]
    assert "2 line(s) are not records with integer 'variant' and 'epoch' and were skipped: " \
           "line 2, 3" in runs.notes


def test_a_hyper_parameter_grid_is_analysed_one_choice_at_a_time(tmp_path):
    records = [_record(v, "ws:a", 0.3, 2.0, v % 2, 1, 30.0 + v, hparams={"lr": lr})
               for v, lr in enumerate((0.1, 0.1, 0.05, 0.05))]
    workdir = _write(tmp_path, records)
    with pytest.raises(ValueError, match=r'mix 2 configurations: model=mlp hparams=\{"lr": 0.1\} '
                                         r'\(2 variants\); model=mlp hparams=\{"lr": 0.05\}'):
        analysis.load(workdir)
    runs = analysis.load(workdir, hparams={"lr": 0.05})
    assert runs.variant.tolist() == [2, 3] and runs.hparams == {"lr": 0.05}
    assert '2 variants with other hyper-parameters than {"lr": 0.05} are left out' in runs.notes
    with pytest.raises(ValueError, match=r"hparams \['wd'\] do not occur in the records"):
        analysis.load(workdir, hparams={"wd": 1})
    with pytest.raises(ValueError, match="no usable record has hparams"):
        analysis.load(workdir, hparams={"lr": 0.2})
    with pytest.raises(TypeError, match="hparams must be a dict"):
        analysis.load(workdir, hparams="lr=0.1")


def test_complete_last_line_without_newline_is_kept(tmp_path):
    whole = json.dumps(_record(0, "ws:a", 0.3, 2.0, 0, 1, 40.0)).encode()
    runs = analysis.load(_write(tmp_path, [], tail=whole))
    assert runs.test_error.tolist() == [40.0] and runs.notes == ()


def test_missing_empty_and_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results.jsonl in workdir"):
        analysis.load(str(tmp_path / "nowhere"))
    runs = analysis.load(_write(tmp_path, []))
    assert len(runs) == 0 and runs.notes == ("results.jsonl is empty: no epoch has finished yet",)
    text = open(analysis.write_report(str(tmp_path), out=str(tmp_path / "out"))).read()
    assert "- results.jsonl is empty: no epoch has finished yet" in text
    assert "| complete graph | missing |" in text and "## Method" in text
    with pytest.raises(ValueError, match="epoch must be a non-negative int"):
        analysis.load(str(tmp_path), epoch=-1)
    with pytest.raises(TypeError, match="workdir must be a path"):
        analysis.load(3)


def test_unusable_and_diverged_records_are_named(tmp_path):
    records = [_record(0, "ws:a", 0.3, 2.0, 0, 1, 40.0),
               _record(1, "ws:a", 0.3, 2.0, 1, 1, None),
               _record(2, "ws:a", 0.3, 2.0, 2, 1, float("nan")),
               _record(4, "ws:b", 0.5, 3, 0, 1, 9)]  # integer L and error are fine
    runs = analysis.load(_write(tmp_path, records))
    assert runs.variant.tolist() == [0, 4] and runs.L.tolist() == [2.0, 3.0]
    assert "1 record(s) are unusable: variant 1 at epoch 1 has no valid 'test_error' (got None)" \
        in runs.notes
    assert "1 variant(s) have a non-finite test error and are left out: 2 (ws:a, seed 2)" \
        in runs.notes
    assert "variant ids 3 have no record at all" in runs.notes


def test_loader_and_read_records_follow_one_set_of_rules(tmp_path):
    records = [_record(v, "ws:a", 0.3, 2.0, v, 1, 40.0 + v) for v in range(3)]
    lines = [json.dumps(r, sort_keys=True) + "\n" for r in records]
    lines[1] = lines[1][:-2] + "\n"  # a corrupt middle line that still holds both keys
    torn = json.dumps(_record(3, "ws:a", 0.3, 2.0, 3, 1, 1.0)).encode()[:30]
    workdir = _write(tmp_path, [], tail="".join(lines).encode() + torn)
    kept = results.read_records(os.path.join(workdir, results.RESULTS_FILE))
    assert [(r["variant"], r["test_error"]) for r in kept] == [(0, 40.0), (2, 42.0)]
    assert not results.index_results(workdir).parsed_every_line  # the loader's fast path
    runs = analysis.load(workdir)
    assert list(zip(runs.variant.tolist(), runs.test_error.tolist())) == [(0, 40.0), (2, 42.0)]
    exact = results.index_results(workdir, parse_every_line=True)
    assert exact.variant.tolist() == [r["variant"] for r in kept]
    assert "the last line (30 bytes, no newline) is torn, a write still in progress or cut " \
           "by a kill: skipped" in exact.notes
    assert "1 line(s) are not records with integer 'variant' and 'epoch' and were skipped: " \
           "line 2" in exact.notes


def test_the_schema_check_names_a_missing_required_field(tmp_path):
    record = _record(1, "ws:a", 0.3, 2.0, 0, 1, 40.0)
    del record["seed"]
    assert results.schema_problem(record) == "has no valid 'seed' (got None)"
    runs = analysis.load(_write(tmp_path, [_record(0, "ws:a", 0.3, 2.0, 0, 1, 30.0), record]))
    assert runs.variant.tolist() == [0]
    assert "1 record(s) are unusable: variant 1 at epoch 1 has no valid 'seed' (got None)" \
        in runs.notes
    assert results.schema_problem(_record(0, "ws:a", 0.3, 2.0, 0, 1, 30.0)) is None


# ----------------------------------------------------------------------------- per graph
def test_per_graph_mean_std_and_baseline():
    errors = {"ws:a": [30.0, 31.0, 35.0], "ws:b": [29.0, 30.0], "complete:n=64": [33.0, 34.0],
              "ws:c": [36.0]}
    graph = [g for g, e in errors.items() for _ in e]
    runs = _runs(np.arange(len(graph)) / 10, np.full(len(graph), 2.0),
                 [x for e in errors.values() for x in e], graph=graph)
    table = analysis.per_graph(runs)
    assert table.graph.tolist() == ["ws:b", "ws:a", "complete:n=64", "ws:c"]
    np.testing.assert_allclose(table.mean, [29.5, 32.0, 33.5, 36.0])
    np.testing.assert_allclose(table.std[:3], [np.std(errors[g], ddof=1) for g in table.graph[:3]])
    assert np.isnan(table.std[3]) and table.seeds.tolist() == [2, 3, 2, 1]
    baseline = analysis.complete_vs_best(table)
    assert baseline.complete["graph"] == "complete:n=64" and baseline.best["graph"] == "ws:b"
    assert baseline.gain == pytest.approx(4.0)
    assert analysis.complete_vs_best(analysis.per_graph(_runs([0.1], [2], [3.0]))).gain is None
    # Complete {33, 34} against ws:b {29, 30}: means 33.5 and 29.5, each variance 0.5, so the
    # pooled variance is 0.5, the standard error sqrt(0.5 (1/2 + 1/2)) and t = 4 / 0.7071.
    test = analysis.baseline_ttest(runs, baseline)
    assert test.t == pytest.approx(4 / math.sqrt(0.5)) and test.seeds == (2, 2)
    # Student's t on 2 degrees of freedom has the closed-form tail 0.5 (1 - t / sqrt(t^2 + 2)).
    assert test.pvalue == pytest.approx(0.5 * (1 - test.t / math.sqrt(test.t ** 2 + 2)))
    assert test.pvalue == pytest.approx(0.0149, abs=1e-4)
    one_seed = analysis.complete_vs_best(analysis.per_graph(
        _runs([0.1, 0.2], [2, 2], [30.0, 33.0], graph=["ws:a", "complete:n=64"])))
    with pytest.raises(analysis.NotEnoughData, match="the complete graph has 1, the best graph 1"):
        analysis.baseline_ttest(_runs([0.1, 0.2], [2, 2], [30.0, 33.0],
                                      graph=["ws:a", "complete:n=64"]), one_seed)


# ----------------------------------------------------------------------------- grids
def test_paper_grids_bin_like_the_paper():
    C, L = _paper_52()
    fine_c = np.digitize(C, np.linspace(0, 1, 136)) - 1  # the paper's fine cells
    fine_l = np.digitize(L, np.linspace(1, 4.5, 136)) - 1
    for grid, k in ((analysis.PAPER_52, 9), (analysis.PAPER_449, 3), (analysis.FINE, 1)):
        ci, li = grid.locate(C, L)
        np.testing.assert_array_equal(ci, fine_c // k)
        np.testing.assert_array_equal(li, fine_l // k)
    ci, li = analysis.PAPER_52.locate(C, L)
    assert analysis.PAPER_52.shape == (15, 15)
    assert len(set(zip(ci.tolist(), li.tolist()))) == 52  # each graph in its own bin
    assert np.mean((fine_c % 9 == 4) & (fine_l % 9 == 4)) == 49 / 52  # the centre cells


def test_grid_edges_and_outside_points():
    ci, li = analysis.PAPER_52.locate([1.0, 0.0, -0.01, 0.5, np.nan], [1.0, 4.5, 2.0, 4.6, 2.0])
    assert ci.tolist() == [14, 0, -1, -1, -1] and li.tolist() == [0, 14, -1, -1, -1]
    with pytest.raises(ValueError, match="c_edges must be >= 2 increasing"):
        analysis.Grid("bad", [0.0, 0.0, 1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="fine_cells_per_bin must divide 135"):
        analysis.paper_grid(4)


def test_heatmap_means_by_hand():
    grid = analysis.Grid("2x2", [0, 0.5, 1], [1, 2, 3])
    hm = analysis.heatmap([0.1, 0.2, 0.7, 0.7, 0.2, 2.0], [1.5, 1.2, 2.5, 2.9, 2.5, 2.0],
                          [10, 20, 30, 50, 7, 99], grid)
    np.testing.assert_allclose(hm.mean, [[15, 7], [np.nan, 40]])
    np.testing.assert_array_equal(hm.count, [[2, 1], [0, 2]])
    np.testing.assert_allclose(hm.sq_dev, [[50, 0], [0, 200]])
    assert hm.outside == 1


# ----------------------------------------------------------------------------- sweet spot
def _planted(bin_errors: dict, seeds: int, spread: float, grid=analysis.PAPER_52):
    """Runs at the centres of the given bins: error = value + a fixed zero-mean spread."""
    offsets = np.linspace(-spread, spread, seeds)
    C, L, err = [], [], []
    for (i, j), value in bin_errors.items():
        c = (grid.c_edges[i] + grid.c_edges[i + 1]) / 2
        l = (grid.l_edges[j] + grid.l_edges[j + 1]) / 2
        C += [c] * seeds
        L += [l] * seeds
        err += list(value + offsets)
    return np.array(C), np.array(L), np.array(err)


def test_sweet_spot_is_the_planted_best_bin():
    rng = np.random.default_rng(0)
    bins = {(i, j): 40.0 + rng.uniform(0, 5) for i in range(15) for j in range(15) if (i + j) % 3}
    bins[(4, 5)] = 30.0
    hm = analysis.heatmap(*_planted(bins, seeds=5, spread=0.2), analysis.PAPER_52)
    spot = analysis.sweet_spot(hm)
    assert spot.best_bin == (4, 5) and spot.c_bins == (4, 4) and spot.l_bins == (5, 5)
    assert spot.c_range == pytest.approx((4 / 15, 5 / 15))
    assert spot.l_range == pytest.approx((1 + 5 * 3.5 / 15, 1 + 6 * 3.5 / 15))
    assert spot.keep.sum() == 1


def test_sweet_spot_spans_close_bins_and_matches_scipy():
    bins = {(2, 3): 30.0, (6, 8): 30.1, (4, 10): 30.3, (9, 1): 36.0, (12, 12): 45.0}
    C, L, err = _planted(bins, seeds=4, spread=0.5)
    hm = analysis.heatmap(C, L, err, analysis.PAPER_52)
    spot = analysis.sweet_spot(hm)
    assert spot.c_bins == (2, 6) and spot.l_bins == (3, 10)  # smallest rectangle around 3 bins
    assert {b for b in bins if spot.keep[b]} == {(2, 3), (6, 8), (4, 10)}
    best = err[:4]
    for k, b in enumerate(bins):
        expected = scipy.stats.ttest_ind(err[4 * k:4 * k + 4], best, alternative="greater").pvalue
        assert spot.pvalue[b] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert np.isnan(spot.pvalue[0, 0])


def test_sweet_spot_needs_two_runs_in_the_best_bin():
    hm = analysis.heatmap(*_planted({(1, 1): 30.0, (2, 2): 31.0}, seeds=1, spread=0),
                          analysis.PAPER_52)
    with pytest.raises(analysis.NotEnoughData, match="holds 1 run; the t-test needs at least 2"):
        analysis.sweet_spot(hm)
    with pytest.raises(ValueError, match="alpha must be in"):
        analysis.sweet_spot(hm, alpha=1.5)


# ----------------------------------------------------------------------------- slices
def test_quadratic_fit_recovers_a_noise_free_parabola():
    x = np.linspace(0.1, 0.9, 40)
    fit = analysis.quadratic_fit(x, 31.0 + 8.0 * (x - 0.45) ** 2)
    assert (fit.a, fit.b, fit.c) == pytest.approx((8.0, -2 * 8.0 * 0.45, 31.0 + 8.0 * 0.45 ** 2))
    assert fit.vertex == pytest.approx(0.45) and fit.r2 == pytest.approx(1.0) and fit.n == 40
    assert analysis.quadratic_fit(x, -(x ** 2)).vertex is None
    with pytest.raises(analysis.NotEnoughData, match="3 distinct x values, got 2"):
        analysis.quadratic_fit([0.1, 0.1, 0.2], [1, 2, 3])


def test_axis_profile_means():
    centre, mean, count = stats.axis_profile([0.1, 0.2, 0.7, 1.0], [1, 3, 5, 9], [0, 0.5, 1])
    np.testing.assert_allclose(centre, [0.25, 0.75])
    np.testing.assert_allclose(mean, [2, 7])
    assert count.tolist() == [2, 2]


# ----------------------------------------------------------------------------- correlations
def test_heatmap_correlation_of_planted_relations():
    C, L = _paper_52()
    rng = np.random.default_rng(1)
    a_err, b_err = rng.normal(30, 1, 52), rng.normal(30, 1, 52)
    grid = analysis.PAPER_52
    a = analysis.heatmap(C, L, a_err, grid)
    assert analysis.heatmap_correlation(a, analysis.heatmap(C, L, 2 * a_err + 7, grid)).r == \
        pytest.approx(1.0)
    assert analysis.heatmap_correlation(a, analysis.heatmap(C, L, 50 - a_err, grid)).r == \
        pytest.approx(-1.0)
    independent = analysis.heatmap_correlation(a, analysis.heatmap(C, L, b_err, grid))
    assert independent.r == pytest.approx(np.corrcoef(a_err, b_err)[0, 1])
    assert independent.bins == 52 and abs(independent.r) < 0.3


def test_heatmap_correlation_refuses_mismatched_or_thin_data():
    a = analysis.heatmap([0.1, 0.5], [2.0, 3.0], [1, 2], analysis.PAPER_52)
    with pytest.raises(ValueError, match="must share one grid, got 15x15 and 45x45"):
        analysis.heatmap_correlation(a, analysis.heatmap([0.1], [2.0], [1], analysis.PAPER_449))
    with pytest.raises(analysis.NotEnoughData, match="only 2 bins hold data in both"):
        analysis.heatmap_correlation(a, a)


def test_set_size_correlation_and_centre_choice():
    grid = analysis.PAPER_52
    C, L, err = _planted({(i, j): 30 + i + 0.5 * j for i in range(3, 9) for j in range(2, 7)},
                         seeds=1, spread=0)
    # Three graphs per bin at the centre and off it; errors depend on the bin only, so a
    # one-graph-per-bin heatmap equals the full one.
    C = np.concatenate([C, C + 0.02, C - 0.03])
    L = np.concatenate([L, L - 0.05, L + 0.1])
    err = np.tile(err, 3)
    runs = _runs(C, L, err)
    corr, small, large = analysis.set_size_correlation(runs, grid)
    assert corr.r == pytest.approx(1.0) and (small, large) == (30, 90)
    chosen = stats.one_graph_per_bin(analysis.per_graph(runs), grid)
    assert sorted(int(g[1:]) for g in analysis.per_graph(runs).graph[chosen]) == list(range(30))
    with pytest.raises(analysis.NotEnoughData, match="at most one graph"):
        analysis.set_size_correlation(_runs(C[:30], L[:30], err[:30]), grid)


def test_early_epochs_pick_the_first_three_then_spread():
    assert report.early_epochs([1, 2, 3, 4], 4) == [1, 2, 3]
    # 96 epochs 4..99 after the head; spread picks positions 0, round(47.5) = 48, 95.
    assert report.early_epochs(range(1, 101), 100) == [1, 2, 3, 4, 52, 99]


# ----------------------------------------------------------------------------- brain
def test_brain_points_match_networkx():
    points = analysis.brain_points()
    assert [p.spec for p in points] == ["brain:mcwhole", "brain:mcvisual",
                                                         "brain:cat"]
    for point in points:
        name = point.spec.split(":")[1]
        text = (importlib.resources.files("relgraph_jax.graphs") / f"data/brain/{name}.txt")
        rows = [r.strip() for r in text.read_text().splitlines() if r.strip()]
        adjacency = np.array([[ch == "1" for ch in r] for r in rows])
        graph = nx.from_numpy_array((adjacency | adjacency.T) & ~np.eye(len(rows), dtype=bool))
        assert point.C == pytest.approx(nx.average_clustering(graph))
        assert point.L == pytest.approx(nx.average_shortest_path_length(graph))


# ----------------------------------------------------------------------------- report
def _study_bins(epoch):
    """Each paper graph's mean error in the `study` workdir at `epoch` (None: the last
    epoch each variant reached); every graph has its own 15x15 bin."""
    C, L = _paper_52()
    values = 30 + 20 * (C - 0.45) ** 2 + 2 * (L - 2.3) ** 2 + 10 * (3 - (epoch or 3))
    if epoch is None:
        values[1] += 10 / 3  # graph 1's seed 0 stopped at epoch 2 (10 points higher)
    values[27] = 25.0
    return values


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The 52 paper graphs + complete graph, 3 seeds (offsets -0.1, 0, 0.1), 3 epochs,
    still running: error = 30 + 20 (C - 0.45)^2 + 2 (L - 2.3)^2 + 10 (3 - epoch), graph 27
    planted best at 25, the complete graph at 32; variant 3 has not finished epoch 3."""
    C, L = _paper_52()
    records = []
    graphs = [(f"paper:n64_52/{i}", C[i], L[i]) for i in range(52)]
    graphs.append(("complete:n=64", 1.0, 1.0))
    for epoch in (1, 2, 3):
        values = np.append(_study_bins(epoch), 32.0)
        for g, (spec, c, l) in enumerate(graphs):
            for seed, offset in enumerate((-0.1, 0.0, 0.1)):
                variant = 3 * g + seed
                if variant == 3 and epoch == 3:
                    continue
                records.append(_record(variant, spec, float(c), float(l), seed, epoch,
                                       float(values[g] + offset)))
    workdir = _write(tmp_path_factory.mktemp("study"), records, tail=b'{"variant": 7, "ep')
    out = str(tmp_path_factory.mktemp("report"))
    path = analysis.write_report(workdir, out=out, command="python -m experiments.analyze x")
    with open(os.path.join(out, "summary.json")) as f:
        return workdir, out, open(path).read(), json.load(f)


def test_report_tables_and_planted_answers(study):
    workdir, out, text, summary = study
    C, L = _paper_52()
    assert summary["best"]["graph"] == "paper:n64_52/27"
    assert summary["best"]["mean"] == pytest.approx(25.0)
    assert summary["best"]["std"] == pytest.approx(0.1)
    assert summary["complete"]["mean"] == pytest.approx(32.0)
    assert summary["gain"] == pytest.approx(7.0)
    i, j = analysis.PAPER_52.locate(C[27], L[27])
    spot = summary["sweet_spot"]["15x15"]
    assert spot["c_range"] == pytest.approx([i / 15, (i + 1) / 15])
    assert spot["l_range"] == pytest.approx([1 + j * 3.5 / 15, 1 + (j + 1) * 3.5 / 15])
    assert spot["bins_kept"] == 1 and spot["bins_filled"] == 52
    for epoch in (1, 2):
        assert summary["correlations"][f"epoch_{epoch}"]["r"] == pytest.approx(
            np.corrcoef(_study_bins(epoch), _study_bins(None))[0, 1])
    assert summary["correlations"]["set_size"]["unavailable"].startswith("every 15x15 bin")
    assert summary["fits"]["C"]["n"] == 52
    assert "| complete graph | `complete:n=64` | 1.000 | 1.000 | 32.00 +- 0.10 | 3 |" in text
    assert "the last line (18 bytes, no newline) is torn" in text
    assert "1 of 159 variants have not reached epoch 3" in text and "3 (at epoch 2)" in text
    assert "by `python -m experiments.analyze x`" in text
    # The planted sweet spot (graph 27's bin) holds the macaque whole cortex, not the cat's.
    assert "| macaque whole cortex | `brain:mcwhole` | 0.503 | 2.245 | yes |" in text
    assert "| cat cortex | `brain:cat` | 0.666 | 1.633 | no |" in text


def test_report_figures_exist_and_are_png(study):
    _, out, text, _ = study
    for name in ("heatmap_15x15.png", "heatmap_45x45.png", "slices.png"):
        assert f"]({name})" in text
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(out, "graphs.csv")) as f:
        rows = f.read().splitlines()
    assert len(rows) == 54 and rows[1].startswith("paper:n64_52/27,")


def test_fits_recover_the_planted_slope(tmp_path):
    # error = 30 + 20 (C - 0.45)^2 exactly, L constant, one graph per 15x15 bin.
    C = (np.arange(15) + 0.5) / 15
    records = [_record(k, f"ws:{k}", float(c), 2.0, 0, 1, 30 + 20 * (c - 0.45) ** 2)
               for k, c in enumerate(C)]
    out = str(tmp_path / "out")
    analysis.write_report(_write(tmp_path / "w", records), out=out)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    fit = summary["fits"]["C"]
    assert (fit["a"], fit["b"], fit["c"]) == pytest.approx((20, -18, 30 + 20 * 0.45 ** 2))
    assert fit["vertex"] == pytest.approx(0.45)
    assert summary["fits"]["L"]["unavailable"] == "a quadratic needs 3 distinct x values, got 1"
    assert summary["sweet_spot"]["15x15"]["unavailable"].endswith(
        "holds 1 run; the t-test needs at least 2 there (more seeds, or a coarser grid)")
    # The 5x5 fallback tests the three graphs of each C bin against the best bin's.
    errors = (30 + 20 * (C - 0.45) ** 2).reshape(5, 3)
    best = errors.mean(axis=1).argmin()
    kept = [i for i in range(5) if scipy.stats.ttest_ind(
        errors[i], errors[best], alternative="greater").pvalue >= 0.05]
    assert summary["sweet_spot"]["5x5"]["c_range"] == pytest.approx(
        [min(kept) * 0.2, (max(kept) + 1) * 0.2])
    assert summary["sweet_spot"]["5x5"]["l_range"] == pytest.approx([1 + 0.7, 1 + 1.4])


def test_command_line_compare_and_missing_workdir(study, tmp_path):
    workdir, _, _, _ = study
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = tmp_path / "cmp"
    done = subprocess.run([sys.executable, "-m", "experiments.analyze", f"--workdir={workdir}",
                           f"--out={out}", f"--compare={workdir}", "--epoch=2",
                           "--hparams=lr=0.1"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epoch"] == 2 and summary["runs"] == 159
    # Epoch 2 of this workdir against the last epochs of the same one.
    assert summary["correlations"]["compare"]["r"] == pytest.approx(
        np.corrcoef(_study_bins(2), _study_bins(None))[0, 1])
    assert summary["correlations"]["epoch_1"]["r"] == pytest.approx(
        np.corrcoef(_study_bins(1), _study_bins(2))[0, 1])
    assert (out / "compare.png").exists()
    for flag, message in ((f"--workdir={tmp_path / 'none'}",
                           "--workdir must be a workdir holding results.jsonl"),
                          ("--hparams=lr", "--hparams item 'lr' is not NAME=VALUE")):
        args = [flag] if flag.startswith("--workdir") else [f"--workdir={workdir}", flag]
        bad = subprocess.run([sys.executable, "-m", "experiments.analyze", *args], cwd=REPO,
                             env=env, capture_output=True, text=True)
        assert bad.returncode != 0 and message in bad.stderr


def test_an_epoch_without_records_is_named_with_the_epochs_there(partial_workdir, tmp_path):
    with pytest.raises(ValueError, match=r"results.jsonl has no record at epoch 5; its records "
                                         r"hold epoch\(s\) 1-3"):
        analysis.write_report(partial_workdir, out=str(tmp_path / "r"), epoch=5)
    with pytest.raises(ValueError, match=r"has no record at epoch 7; its records hold epoch\(s\) "
                                         r"1-3"):
        analysis.write_report(partial_workdir, out=str(tmp_path / "r"), reference=partial_workdir,
                              reference_epoch=7)
    assert not (tmp_path / "r").exists()


def test_a_failed_write_leaves_the_previous_report_whole(partial_workdir, tmp_path, monkeypatch):
    out = tmp_path / "report"
    analysis.write_report(partial_workdir, out=str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(report.figures, "plot_heatmap", disk_full)
    with pytest.raises(ValueError, match=r"could not write the report in .* \(No space left on "
                                         r"device\); the report there is as it was"):
        analysis.write_report(partial_workdir, out=str(out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no half-new figures

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(report.tempfile, "mkdtemp", read_only)
    with pytest.raises(ValueError, match=r"cannot write the report to .* \(Permission denied\); "
                                         "give --out a folder you can write to"):
        analysis.write_report(partial_workdir, out=str(out))


def test_a_disconnected_graph_is_reported_with_an_infinite_path_length(tmp_path):
    """Its records (L null: JSON has no infinity) count like any other: here it is the best
    graph, named in the table with L = inf and left off the plane and its fits."""
    graphs = [("paper:n64_52/1", 0.3, 2.0), ("edges:n=4,0-1,2-3", 0.0, None),
              ("complete:n=64", 1.0, 1.0), ("paper:n64_52/27", 0.5, 2.3)]
    records = [_record(v, *graphs[v // 2], v % 2, 1,
                       40.0 - v if graphs[v // 2][2] is None else 50.0 + v) for v in range(8)]
    workdir = _write(tmp_path / "w", records)
    runs = analysis.load(workdir)
    assert len(runs) == 8 and np.isinf(runs.L[runs.graph == "edges:n=4,0-1,2-3"]).all()
    text = open(analysis.write_report(workdir)).read()
    assert "| best graph | `edges:n=4,0-1,2-3` | 0.000 | inf | 37.50 +- 0.71 | 2 |" in text
    assert ("2 run(s) of disconnected graphs (L infinite) are counted in the tables but lie "
            "off the plane; the best graph is one of them, so no star is drawn.") in text
    assert "unusable" not in text
