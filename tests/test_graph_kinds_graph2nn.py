"""graph2nn's message types as graph kinds (gnm, cycle, hypercube, grid, tree, random,
regular) and the directed=1 option, against networkx's generators, counts by hand and
graph2nn's mask rule (relation_graph.generate_index / nx_to_edge / compute_densemask)
written out here."""
import random

import networkx as nx
import numpy as np
import pytest

from relgraph_jax import relational
from relgraph_jax.graphs import GRAPH_KINDS, RelationalGraph, resolve, ws_flex


def _same(spec: str, reference: nx.Graph) -> RelationalGraph:
    graph = RelationalGraph.from_spec(spec)
    assert graph == RelationalGraph.from_networkx(reference)
    assert graph.spec == spec and RelationalGraph.from_spec(graph.spec) == graph
    return graph


@pytest.mark.parametrize("spec, reference", [
    ("gnm:n=20,m=37,seed=3", lambda: nx.gnm_random_graph(20, 37, seed=3)),
    ("cycle:n=7", lambda: nx.cycle_graph(7)),
    ("hypercube:n=16", lambda: nx.hypercube_graph(4)),
    ("grid:rows=3,cols=5", lambda: nx.grid_2d_graph(3, 5)),
    ("tree:n=20,seed=5", lambda: nx.random_labeled_tree(20, seed=5)),
])
def test_each_kind_is_networkxs_generator(spec, reference):
    _same(spec, reference())  # from_networkx numbers nodes in node order, as graph2nn does


def test_counts_by_hand():
    cube = RelationalGraph.from_spec("hypercube:n=16")  # 4 dimensions: 4 * 16 / 2 edges
    assert set(cube.edges) == {(i, j) for i in range(16) for j in range(i + 1, 16)
                               if bin(i ^ j).count("1") == 1}
    assert len(cube.edges) == 32 and (cube.adjacency.sum(axis=0) == 4 + 1).all()
    grid = RelationalGraph.from_spec("grid:rows=3,cols=5")  # node (i, j) is 5 i + j
    across = {(5 * i + j, 5 * i + j + 1) for i in range(3) for j in range(4)}
    down = {(5 * i + j, 5 * (i + 1) + j) for i in range(2) for j in range(5)}
    assert set(grid.edges) == across | down and len(grid.edges) == 3 * 4 + 2 * 5
    cycle = RelationalGraph.from_spec("cycle:n=7")
    assert set(cycle.edges) == {(i, i + 1) for i in range(6)} | {(0, 6)}
    assert cycle == RelationalGraph.from_spec("ring:n=7,k=2")
    gnm = RelationalGraph.from_spec("gnm:n=20,m=37,seed=3")
    assert len(gnm.edges) == 37


def test_tree_is_networkx_2_3s_random_tree():
    """graph2nn calls networkx 2.3's random_tree(n, seed): a Pruefer sequence of n - 2
    draws of random.Random(seed).choice(range(n)), decoded to a tree."""
    rng = random.Random(11)
    sequence = [rng.choice(range(30)) for _ in range(28)]
    tree = _same("tree:n=30,seed=11", nx.from_prufer_sequence(sequence))
    assert len(tree.edges) == 29 and tree.connected


def test_regular_is_an_alias_of_ring():
    regular = RelationalGraph.from_spec("regular:n=12,k=4")
    assert regular == RelationalGraph.from_spec("ring:n=12,k=4")
    assert hash(regular) == hash(RelationalGraph.from_spec("ring:n=12,k=4"))
    assert regular.spec == "ring:n=12,k=4"  # equal graphs, equal specs
    assert regular == RelationalGraph.from_networkx(nx.watts_strogatz_graph(12, 4, 0))
    assert GRAPH_KINDS["regular"].alias_of == "ring"
    assert RelationalGraph.from_spec("regular:k=4,n=12,directed=1").spec == \
        "ring:n=12,k=4,directed=1"


def test_random_mask_is_graph2nns_draw_seeded():
    """graph2nn: edge_num = int(n * n * sparsity) cells of np.random.choice(n * n, ...,
    replace=False), cell c -> mask[c // n, c % n] = 1 (output node, input node), no
    symmetrising. Ours: that draw after np.random.seed(seed), plus every self-loop."""
    n, m = 8, int(8 * 8 * 0.3)
    state = np.random.get_state()
    np.random.seed(7)
    cells = np.random.choice(n * n, m, replace=False)
    np.random.set_state(state)
    graph2nn = np.zeros((n, n))
    graph2nn[cells // n, cells % n] = 1
    graph = RelationalGraph.from_spec(f"random:n={n},m={m},seed=7")
    assert graph.directed and graph.spec == "random:n=8,m=19,seed=7"
    kept = np.maximum(graph2nn, np.eye(n))
    np.testing.assert_array_equal(relational.layer_mask(graph, n, n), kept.T)
    assert len(graph.edges) == m - int(np.trace(graph2nn))


def test_directed_mask_of_a_4_cycle_is_graph2nns():
    """graph2nn, DIRECTED=True: networkx's edges of cycle_graph(4), (0,1) (0,3) (1,2) (2,3),
    each once, plus self-loops, as entries [output node, input node] of the mask."""
    graph2nn = np.array([[1, 1, 0, 1],
                         [0, 1, 1, 0],
                         [0, 0, 1, 1],
                         [0, 0, 0, 1]])
    graph = RelationalGraph.from_spec("cycle:n=4,directed=1")
    assert graph.directed and graph.edges == ((1, 0), (2, 1), (3, 0), (3, 2))
    np.testing.assert_array_equal(relational.layer_mask(graph, 4, 4), graph2nn.T)
    two_each = np.repeat(np.repeat(graph2nn, 2, axis=0), 2, axis=1)  # 8 channels, 2 per node
    np.testing.assert_array_equal(relational.layer_mask(graph, 8, 8), two_each.T)
    assert graph.density == (4 + 4) / 16


def _graph2nn_directed_mask(graph: nx.Graph) -> np.ndarray:
    """graph2nn's nx_to_edge(directed=True) and compute_densemask with one channel a node:
    nodes relabelled 0..n-1 in node order, mask[u, v] = 1 for every edge (u, v) listed."""
    relabelled = nx.relabel_nodes(graph, dict(zip(graph.nodes, range(len(graph)))), copy=True)
    mask = np.eye(len(graph))
    for u, v in relabelled.edges:
        mask[u, v] = 1
    return mask


@pytest.mark.parametrize("spec, reference", [
    ("ws:n=16,k=4.5,p=0.3,seed=1", lambda: ws_flex(16, 4.5, 0.3, 1)),
    ("hypercube:n=8", lambda: nx.hypercube_graph(3)),
    ("grid:rows=2,cols=4", lambda: nx.grid_2d_graph(2, 4)),
    ("tree:n=12,seed=2", lambda: nx.random_labeled_tree(12, seed=2)),
    ("ba:n=12,m=2,seed=0", lambda: nx.barabasi_albert_graph(12, 2, seed=0)),
])
def test_directed_option_follows_graph2nns_rule_for_every_kind(spec, reference):
    graph = RelationalGraph.from_spec(spec + ",directed=1")
    undirected = RelationalGraph.from_spec(spec)
    assert graph.directed and graph.spec == spec + ",directed=1"
    np.testing.assert_array_equal(relational.layer_mask(graph, graph.n, graph.n),
                                  _graph2nn_directed_mask(reference()).T)
    assert not np.triu(graph.adjacency, 1).any()  # every message: higher index -> lower
    np.testing.assert_array_equal(graph.adjacency | graph.adjacency.T, undirected.adjacency)
    assert (graph.C, graph.L) == (undirected.C, undirected.L)


def test_directed_option_spec_and_narrowing():
    graph = RelationalGraph.from_spec(" ws:directed=1,seed=1,p=0.30,k=4.0,n=16 ")
    assert graph.spec == "ws:n=16,k=4,p=0.3,seed=1,directed=1"
    assert RelationalGraph.from_spec("ws:n=16,k=4,p=0.3,seed=1,directed=0").spec == \
        "ws:n=16,k=4,p=0.3,seed=1"
    assert RelationalGraph.from_spec(graph.spec) == graph
    narrow = graph.with_nodes(8)  # the same recipe at 8 nodes, still directed
    assert narrow.spec == "ws:n=8,k=2,p=0.3,seed=1,directed=1" and narrow.directed
    assert resolve("cycle:n=3,directed=1")[0].edges == ((1, 0), (2, 0), (2, 1))
    # The complete graph is the dense baseline everywhere (analysis, search, budget).
    with pytest.raises(ValueError, match=r"^graph spec 'complete:n=3,directed=1': directed=1 "
                                         r"would keep one direction of each pair"):
        resolve("complete:n=3,directed=1")


@pytest.mark.parametrize("spec, fragment", [
    ("hypercube:n=12", r"n must be a power of 2 \(2, 4, 8, ...\), got 12"),
    ("cycle:n=2", "n must be an integer >= 3, got 2"),
    ("gnm:n=5,m=11,seed=0", r"m must be an integer in \[0, 10\], got 11"),
    ("grid:rows=3,cols=0", "cols must be an integer >= 1, got 0"),
    ("tree:n=0,seed=0", "n must be an integer >= 1, got 0"),
    ("random:n=4,m=17,seed=0", r"m must be an integer in \[0, 16\], got 17"),
    ("random:n=4,m=3,seed=4294967296", r"seed must be an integer in \[0, 4294967295\]"),
    ("random:n=4,m=3,seed=0,directed=1", "directed already; directed=1 orients undirected "
                                         "kinds only"),
    ("cycle:n=4,directed=yes", "directed='yes' is not 0 or 1"),
    ("cycle:n=4,k=2", r"'k=2' is not a parameter of cycle; allowed: cycle:n=...\[,directed=1\]"),
])
def test_bad_parameters_are_refused_in_one_line(spec, fragment):
    with pytest.raises(ValueError, match=fragment) as error:
        resolve(spec)
    assert repr(spec) in str(error.value) and "\n" not in str(error.value)
