"""Batched WS-flex, the sweep, and the paper's binning subsample."""
import networkx as nx
import numpy as np
import pytest

from relgraph_jax.graphs import RelationalGraph, bitsets, catalog, design_space
from relgraph_jax.graphs.design_space import DesignSpace, Grid, centres, paper_grid, subsample, sweep
from relgraph_jax.graphs.wsflex import ws_flex
from relgraph_jax.graphs.wsflex_batch import _uniform_members, sample_ws_flex, select_bit
from helpers import paper_set_arrays


def test_select_bit_against_a_python_loop():
    rng = np.random.default_rng(0)
    sets = rng.integers(1, 2 ** 63, 500, dtype=np.uint64) | np.uint64(1 << 63)
    ranks = (rng.random(500) * np.bitwise_count(sets)).astype(np.int64)
    expected = [[i for i in range(64) if int(s) >> i & 1][r] for s, r in zip(sets, ranks)]
    assert select_bit(sets, ranks).tolist() == expected


@pytest.mark.parametrize("members", [list(range(5, 60)), [3, 17, 40, 63]], ids=["many", "few"])
def test_new_neighbour_is_uniform_over_the_free_nodes(members):
    # Many free nodes take the candidate-rejection path, few the select-by-rank path.
    draws = 40_000
    rng = np.random.default_rng(2)
    free = np.full(draws, sum(1 << m for m in members), dtype=np.uint64)
    choices = np.bitwise_count(free)
    picked = _uniform_members(free, choices, rng.bit_generator.random_raw(draws),
                              rng.random(draws), 64)
    counts = np.bincount(picked, minlength=64)
    assert set(np.flatnonzero(counts)) == set(members)
    expected = draws / len(members)
    assert np.abs(counts[members] - expected).max() < 5 * np.sqrt(expected)


def test_unrewired_batch_is_the_ws_flex_ring():
    bits, ok = sample_ws_flex(64, 12.7, np.zeros(3), np.random.default_rng(0))
    ring = nx.to_numpy_array(ws_flex(64, 12.7, 0.0, 0), nodelist=range(64), dtype=bool, weight=None)
    assert ok.all() and (bits == bitsets.from_adjacency(ring)).all()


def test_batch_keeps_edges_and_follows_the_ws_flex_distribution():
    # Same (n, k, p): 400 batched graphs against 400 ws_flex graphs (seeds 0..399).
    n, k, p, count = 32, 6.0, 0.3, 400
    bits, ok = sample_ws_flex(n, k, np.full(count, p), np.random.default_rng(1))
    assert ok.all() and (np.bitwise_count(bits).sum(axis=1) == 2 * 96).all()
    batch_C, batch_L = bitsets.measures(bits, n)
    reference = np.array([nx.to_numpy_array(ws_flex(n, k, p, s), nodelist=range(n), dtype=bool,
                                            weight=None) for s in range(count)])
    ref_C, ref_L = bitsets.measures(bitsets.from_adjacency(reference), n)
    for batch, ref in ((batch_C, ref_C), (batch_L, ref_L)):
        standard_error = np.hypot(batch.std(), ref.std()) / np.sqrt(count)
        assert abs(batch.mean() - ref.mean()) < 4 * standard_error


def test_paper_grid_holds_the_paper_graphs():
    grid = paper_grid(64)
    assert grid.size == 300 * 300 * 30 and grid.k[0] == pytest.approx(8) and grid.k[-1] == pytest.approx(62)
    rows = catalog.paper_set("n64_449")
    assert np.isin([r.k for r in rows], grid.k).all() and np.isin([r.p for r in rows], grid.p).all()
    small = paper_grid(16)
    assert len(small.k) == 200 and np.isin([r.k for r in catalog.paper_set("n16_326")], small.k).all()
    with pytest.raises(ValueError, match="paper's grid exists for n in \\[16, 64\\], got n = 32"):
        paper_grid(32)
    with pytest.raises(ValueError, match="got 70"):
        Grid(64, np.array([8.0, 70.0]), np.array([0.5]), 1)


@pytest.fixture(scope="module")
def small_space():
    grid = Grid(64, paper_grid(64).k[::60], np.linspace(0, 1, 12) ** 2, 4)
    return grid, sweep(grid, seed=3, workers=1, progress=False)


def test_sweep_equals_networkx_on_a_random_sample(small_space):
    grid, space = small_space
    assert len(space.C) == grid.size and space.ok.all()
    per_k = len(grid.p) * grid.replicates
    for k_index in (0, 2, 4):  # regenerate each batch from its own random stream
        rng = np.random.default_rng([3, grid.n, k_index])
        bits, _ = sample_ws_flex(grid.n, grid.k[k_index], np.repeat(grid.p, grid.replicates), rng)
        for j in np.random.default_rng(k_index).choice(per_k, 6, replace=False):
            index = k_index * per_k + j
            graph = nx.from_numpy_array(bitsets.to_adjacency(bits[j: j + 1], grid.n)[0])
            assert (space.k[index], space.p[index]) == (grid.k[k_index], grid.p[j // grid.replicates])
            assert space.C[index] == nx.average_clustering(graph)
            assert space.L[index] == nx.average_shortest_path_length(graph)


def test_sweep_in_worker_processes_equals_in_process(small_space):
    grid, space = small_space
    parallel = sweep(grid, seed=3, workers=2, progress=False)
    np.testing.assert_array_equal(parallel.C, space.C)
    np.testing.assert_array_equal(parallel.L, space.L)


def test_design_space_file_round_trip(small_space, tmp_path):
    _, space = small_space
    space.save(tmp_path / "space.npz")
    loaded = DesignSpace.load(tmp_path / "space.npz")
    assert loaded.n == 64
    for field in ("k", "p", "replicate", "C", "L", "ok"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(space, field))


def test_binning_reproduces_the_papers_449_and_52_from_its_3942():
    C, L, k_over_n, keys = paper_set_arrays("n64_3942")
    chosen = subsample(C, L, k_over_n)
    assert sorted(chosen.tolist()) == list(range(3942))  # one graph per cell already
    for name, block, by_rule in (("n64_449", 3, 438), ("n64_52", 9, 49)):
        paper_keys = paper_set_arrays(name)[3]
        kept, borrowed = centres(C, L, chosen, block)
        # The paper lists the rule's graphs first, then its hand-borrowed high-C ones.
        assert {keys[i] for i in kept} == set(paper_keys[:by_rule])
        assert (C[borrowed] > 0.75).all() and len(borrowed) > 0
        assert {keys[i] for i in borrowed}.isdisjoint(paper_keys[:by_rule])


def test_subsample_by_hand():
    C = np.array([0.301, 0.302, 0.6, 0.6, 0.9])
    L = np.array([2.001, 2.002, 3.0, np.inf, 1.5])
    k_over_n = np.array([0.2, 0.2, 0.2, 0.2, 0.1])
    kept = subsample(C, L, k_over_n)
    # 0 and 1 share a cell; 3 is disconnected; 4 has k/n < 0.125.
    order = np.array([0, 1, 2])[np.random.RandomState(1).permutation(3)]
    first_of_0_or_1 = [i for i in order if i in (0, 1)][0]
    assert sorted(kept.tolist()) == sorted([first_of_0_or_1, 2])


def test_centres_and_borrowing_by_hand():
    edges = np.linspace(0, 9, 10)  # nine unit cells: bin b holds [b - 1, b)
    C = np.array([4.5, 3.5, 0.5, 0.8, 7.5]) / 9
    L = np.array([4.5, 4.5, 0.5, 1.5, 7.5])
    kept, borrowed = centres(C, L, np.arange(5), block=3, c_edges=edges / 9, l_edges=edges,
                             borrow_above_c=0.7)
    # Centres of 3 x 3 blocks are bins 2, 5, 8: graph 0 sits at (5, 5), 2 at (1, 1) and
    # 3 at (1, 2) are off-centre in block (0, 0) with low C; graph 4 at (8, 8) is a centre.
    assert kept.tolist() == [0, 4] and borrowed.tolist() == []
    kept, borrowed = centres(C[:4], L[:4], np.arange(4), block=3, c_edges=edges / 9,
                             l_edges=edges, borrow_above_c=0.05)
    assert kept.tolist() == [0] and borrowed.tolist() == [3]  # (1, 2) is nearer (2, 2) than (1, 1)
    with pytest.raises(ValueError, match="odd positive number of cells, got 4"):
        centres(C, L, np.arange(5), block=4)


def test_sample_gives_ws_flex_graphs_in_their_cells(small_space):
    _, space = small_space
    chosen = subsample(space.C, space.L, space.k / space.n)[:25]
    graphs = design_space.sample(space, chosen)
    assert 0 < len(graphs) <= 25
    target_cells = set(zip(*design_space.cells(space.C[chosen], space.L[chosen])))
    for graph in graphs:
        regenerated = RelationalGraph.from_spec(graph.spec)
        assert (regenerated.C, regenerated.L) == (graph.C, graph.L)
        assert tuple(int(b) for b in design_space.cells(graph.C, graph.L)) in target_cells
