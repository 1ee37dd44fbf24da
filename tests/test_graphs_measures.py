"""C and L equal networkx's, for single graphs and for batches of bitset graphs."""
import networkx as nx
import numpy as np
import pytest

from relgraph_jax.graphs import bitsets, measures
from relgraph_jax.graphs.wsflex import ws_flex
from relgraph_jax.graphs.wsflex_batch import sample_ws_flex


def test_triangle_with_a_tail_by_hand():
    # Clustering 1, 1, 1/3, 0 -> 7/12; distances 1,1,2,1,2,1 over 6 pairs -> 4/3.
    C, L = measures(nx.Graph([(0, 1), (1, 2), (2, 0), (2, 3)]))
    assert C == pytest.approx(7 / 12, abs=1e-15)
    assert L == pytest.approx(4 / 3, abs=1e-15)


@pytest.mark.parametrize("graph", [
    ws_flex(64, 8.19, 0.128, 4),
    ws_flex(16, 5, 0.9, 2),
    nx.barabasi_albert_graph(70, 3, seed=1),
    nx.karate_club_graph(),
    nx.relabel_nodes(nx.cycle_graph(9), {i: f"v{i}" for i in range(9)}),
], ids=["ws64", "ws16", "ba70", "karate", "labelled-cycle"])
def test_equal_to_networkx(graph):
    assert measures(graph) == (nx.average_clustering(graph), nx.average_shortest_path_length(graph))


def test_directed_and_self_loops_use_the_undirected_simple_graph():
    directed = nx.gnp_random_graph(40, 0.15, seed=3, directed=True)
    directed.add_edge(5, 5)
    simple = nx.Graph(directed.to_undirected())
    simple.remove_edges_from(nx.selfloop_edges(simple))
    assert measures(directed) == (nx.average_clustering(simple), nx.average_shortest_path_length(simple))


def test_clear_errors():
    with pytest.raises(ValueError, match="has 2 connected components"):
        measures(nx.Graph([(0, 1), (2, 3)]))
    with pytest.raises(ValueError, match="at least 2 nodes, got 0"):
        measures(nx.Graph())
    with pytest.raises(TypeError, match="networkx graph, got list"):
        measures([(0, 1)])


def test_bitsets_round_trip():
    adjacency = nx.to_numpy_array(nx.karate_club_graph(), dtype=bool, weight=None)
    bits = bitsets.from_adjacency(adjacency)
    assert bits.shape == (34,) and bits[0] == sum(1 << v for v in nx.karate_club_graph()[0])
    np.testing.assert_array_equal(bitsets.to_adjacency(bits, 34), adjacency)


@pytest.fixture(scope="module")
def sampled():
    """Batched WS-flex graphs over sizes, degrees and rewiring, plus disconnected ones."""
    rng = np.random.default_rng(5)
    batches = []
    for n, k in [(64, 8.0), (64, 23.3), (64, 61.0), (16, 4.0), (16, 13.5), (40, 6.0)]:
        bits, _ = sample_ws_flex(n, k, rng.random(30) ** 2, rng)
        batches.append((n, bits))
    pieces = nx.disjoint_union(nx.complete_graph(20), nx.path_graph(12))
    batches.append((32, bitsets.from_adjacency(nx.to_numpy_array(pieces, dtype=bool, weight=None))[None]))
    return batches


def test_batched_measures_equal_networkx_on_every_graph(sampled):
    for n, bits in sampled:
        clustering, path_length = bitsets.measures(bits, n)
        for index in range(len(bits)):
            graph = nx.from_numpy_array(bitsets.to_adjacency(bits[index: index + 1], n)[0])
            assert clustering[index] == nx.average_clustering(graph)
            expected = (nx.average_shortest_path_length(graph) if nx.is_connected(graph)
                        else np.inf)
            assert path_length[index] == expected


def test_batched_measures_reject_bad_shapes():
    with pytest.raises(ValueError, match="2 <= n <= 64 nodes, got n = 65"):
        bitsets.measures(np.zeros((1, 65), np.uint64), 65)
    with pytest.raises(ValueError, match=r"shape \(graphs, 8\), got \(3,\)"):
        bitsets.measures(np.zeros(3, np.uint64), 8)
