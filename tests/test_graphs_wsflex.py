"""WS-flex regenerates the paper's graphs exactly and checks its parameters."""
import networkx as nx
import numpy as np
import pytest

from relgraph_jax.graphs import bitsets, catalog, wsflex
from relgraph_jax.graphs.wsflex import forward_degrees, ws_flex, ws_flex_edges


def _bitsets(n, edge_lists):
    adjacency = np.zeros((len(edge_lists), n, n), dtype=bool)
    for index, edges in enumerate(edge_lists):
        u, v = np.array(edges).T
        adjacency[index, u, v] = adjacency[index, v, u] = True
    return bitsets.from_adjacency(adjacency)


@pytest.mark.parametrize("name", catalog.PAPER_SETS)
def test_every_paper_graph_has_the_papers_C_and_L(name):
    rows = catalog.paper_set(name)
    n = rows[0].n
    graphs = _bitsets(n, [ws_flex_edges(r.n, r.k, r.p, r.seed) for r in rows])
    clustering, path_length = bitsets.measures(graphs, n)  # equal to networkx: test_graphs_measures
    np.testing.assert_allclose(clustering, [r.C for r in rows], rtol=0, atol=1e-9)
    np.testing.assert_allclose(path_length, [r.L for r in rows], rtol=0, atol=1e-9)


def test_paper_graphs_checked_by_networkx_itself():
    rows = catalog.paper_set("n64_3942")
    for index in np.random.default_rng(0).choice(len(rows), 12, replace=False):
        r = rows[index]
        graph = ws_flex(r.n, r.k, r.p, r.seed)
        assert nx.average_clustering(graph) == pytest.approx(r.C, abs=1e-9)
        assert nx.average_shortest_path_length(graph) == pytest.approx(r.L, abs=1e-9)


def test_forward_degrees_by_hand():
    # k = 8.19, n = 64: round(8.19 * 32) = 262 edges = 4 per node + 1 for the first 6.
    assert forward_degrees(64, 8.19).tolist() == [5] * 6 + [4] * 58
    assert forward_degrees(10, 3).tolist() == [2] * 5 + [1] * 5


def test_unrewired_even_k_is_networkx_ring_lattice():
    ring = ws_flex(20, 6, 0.0, 0)
    assert nx.utils.graphs_equal(ring, nx.watts_strogatz_graph(20, 6, 0.0))


def test_real_k_ring_by_hand():
    # k = 3, n = 10: 15 edges; nodes 0-4 link two ahead, nodes 5-9 one ahead.
    expected = {(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4), (3, 5), (4, 5), (4, 6),
                (5, 6), (6, 7), (7, 8), (8, 9), (0, 9)}
    assert set(ws_flex_edges(10, 3, 0.0, 0)) == expected


def test_rewiring_keeps_the_edge_count_and_changes_the_graph():
    graph = ws_flex(64, 20, 0.7, 1)
    assert graph.number_of_edges() == 640
    assert not nx.utils.graphs_equal(graph, ws_flex(64, 20, 0.0, 1))
    assert nx.is_connected(graph)


def test_k_equal_n_is_the_complete_graph_whatever_p():
    assert ws_flex(16, 16, 0.9, 3).number_of_edges() == 16 * 15 // 2


def test_same_seed_same_graph_other_seed_other_graph():
    assert ws_flex_edges(64, 12.5, 0.3, 7) == ws_flex_edges(64, 12.5, 0.3, 7)
    assert ws_flex_edges(64, 12.5, 0.3, 7) != ws_flex_edges(64, 12.5, 0.3, 8)


def test_gives_up_after_max_tries(monkeypatch):
    monkeypatch.setattr(wsflex, "MAX_TRIES", 1)  # seed 1 is disconnected on its first try
    with pytest.raises(ValueError, match="no connected graph in 1 tries"):
        ws_flex(64, 2, 1.0, 1)


@pytest.mark.parametrize("args, error, fragment", [
    ((64, 1.5, 0.1, 0), ValueError, r"k \(average degree\) must lie in \[2, n\] = \[2, 64\], got 1.5"),
    ((64, 65, 0.1, 0), ValueError, "got 65"),
    ((64, 8, -0.1, 0), ValueError, r"p \(rewiring probability\) must lie in \[0, 1\], got -0.1"),
    ((64, 8, 1.5, 0), ValueError, "got 1.5"),
    ((1, 2, 0.1, 0), ValueError, "n must be at least 2, got 1"),
    ((64, 8, 0.1, -1), ValueError, "non-negative integer, got -1"),
    ((64.0, 8, 0.1, 0), TypeError, "n must be an integer, got 64.0"),
    ((64, 8, 0.1, 1.5), TypeError, "seed must be an integer, got 1.5"),
    ((64, "8", 0.1, 0), TypeError, "k must be a real number"),
])
def test_bad_parameters_are_named(args, error, fragment):
    with pytest.raises(error, match=fragment):
        ws_flex(*args)
