"""RelationalGraph: specs that round-trip, structure, measures, errors, resolve."""
import dataclasses
import math
import pathlib

import networkx as nx
import numpy as np
import pytest

from relgraph_jax import graphs
from relgraph_jax.graphs import RelationalGraph, catalog, kinds, resolve

SPECS = ["ws:n=64,k=8.19,p=0.128,seed=4", "paper:n64_3942/3552", "paper:n16_48/42", "brain:cat",
         "brain:mcwhole/sym", "complete:n=64", "ring:n=64,k=4", "er:n=64,p=0.1,seed=0",
         "ba:n=64,m=3,seed=0", "edges:n=4,0-1,1-2,2-3", "edges:n=3,directed=1,0-1,2-1"]


@pytest.mark.parametrize("spec", SPECS)
def test_spec_round_trips_to_an_equal_graph(spec):
    graph = RelationalGraph.from_spec(spec)
    again = RelationalGraph.from_spec(graph.spec)
    assert again == graph and hash(again) == hash(graph)
    assert graph.spec == spec  # these are already canonical
    rebuilt = RelationalGraph(graph.n, graph.edges, graph.directed)
    assert RelationalGraph.from_spec(rebuilt.spec) == graph  # the edges: spec of any graph


def test_canonical_spec_text():
    graph = RelationalGraph.from_spec(" ws:seed=0,p=0.10,k=8.0,n=64 ")
    assert graph.spec == "ws:n=64,k=8,p=0.1,seed=0"
    assert RelationalGraph.from_networkx(nx.path_graph(3)).spec == "edges:n=3,0-1,1-2"


def test_best_graph_as_ws_spec_is_the_paper_graph_with_the_papers_measures():
    paper = RelationalGraph.from_spec("paper:n64_3942/3552")
    row = catalog.best_graph("mlp")
    assert paper == RelationalGraph.from_spec(f"ws:n=64,k={row.k!r},p={row.p!r},seed={row.seed}")
    assert (paper.C, paper.L) == pytest.approx((row.C, row.L), abs=1e-9)
    assert paper.name == "n64_3942/3552"


@pytest.mark.parametrize("model, C, L", [
    ("mlp", 0.448, 2.479), ("cnn8", 0.501, 2.279), ("resnet34", 0.367, 2.287),
    ("resnet34sep", 0.303, 2.048), ("resnet50", 0.636, 1.814), ("efficientnet_b0", 0.613, 1.892)])
def test_best_graphs_match_the_papers_table(model, C, L):
    set_name, index = catalog.BEST_GRAPHS[model]
    graph = RelationalGraph.from_spec(f"paper:{set_name}/{index}")
    assert (round(graph.C, 3), round(graph.L, 3)) == (C, L)


def test_adjacency_density_and_measures_of_an_undirected_graph():
    graph = RelationalGraph.from_spec("ws:n=64,k=8.19,p=0.128,seed=4")
    adjacency = graph.adjacency
    assert adjacency.dtype == bool and adjacency.shape == (64, 64) and not adjacency.flags.writeable
    assert adjacency.diagonal().all() and (adjacency == adjacency.T).all()
    assert len(graph.edges) == 262 and adjacency.sum() == 2 * 262 + 64
    assert graph.density == (2 * 262 + 64) / 64 ** 2
    reference = graph.to_networkx()
    assert (graph.C, graph.L) == (nx.average_clustering(reference),
                                  nx.average_shortest_path_length(reference))
    assert graph.connected and not graph.directed


@pytest.mark.parametrize("name, n, links", [("mcwhole", 71, 746), ("mcvisual", 30, 308), ("cat", 52, 820)])
def test_brain_networks_in_graph2nn_and_published_orientation_and_symmetrised(name, n, links):
    # graph2nn builds mask[out=u, in=v] from file entry [u, v]: the message v -> u.
    directed = RelationalGraph.from_spec(f"brain:{name}")
    published = RelationalGraph.from_spec(f"brain:{name}/published")
    matrix = catalog.brain_adjacency(name)
    assert directed.directed and directed.n == n and len(directed.edges) == links
    np.testing.assert_array_equal(directed.adjacency, matrix.T | np.eye(n, dtype=bool))
    np.testing.assert_array_equal(published.adjacency, matrix | np.eye(n, dtype=bool))
    assert directed.density == (links + n) / n ** 2
    symmetric = RelationalGraph.from_spec(f"brain:{name}/sym")
    assert not symmetric.directed and len(symmetric.edges) == (matrix | matrix.T).sum() // 2
    simple = nx.Graph(nx.from_numpy_array(matrix.astype(int), create_using=nx.DiGraph).to_undirected())
    expected = (nx.average_clustering(simple), nx.average_shortest_path_length(simple))
    assert (directed.C, directed.L) == expected == (symmetric.C, symmetric.L)


def test_directed_edges_keep_their_direction():
    graph = RelationalGraph.from_spec("edges:n=3,directed=1,0-1,2-1")
    assert graph.edges == ((0, 1), (2, 1))
    assert graph.adjacency[0, 1] and not graph.adjacency[1, 0]
    assert graph.density == (2 + 3) / 9


def test_complete_ring_and_disconnected_graphs():
    complete = RelationalGraph.from_spec("complete:n=64")
    assert complete.density == 1.0 and (complete.C, complete.L) == (1.0, 1.0)
    ring = RelationalGraph.from_spec("ring:n=64,k=2")
    assert (ring.C, ring.L) == (0.0, nx.average_shortest_path_length(nx.cycle_graph(64)))
    split = RelationalGraph.from_spec("edges:n=4,0-1,2-3")
    assert math.isinf(split.L) and not split.connected and split.C == 0.0


def test_from_networkx_renumbers_nodes_and_drops_self_loops():
    source = nx.Graph([("a", "b"), ("b", "c"), ("c", "c")])
    graph = RelationalGraph.from_networkx(source, spec="my:abc", name="abc")
    assert graph.edges == ((0, 1), (1, 2)) and graph.spec == "my:abc" and graph.name == "abc"
    assert RelationalGraph.from_networkx(nx.DiGraph([(1, 0)])).directed


def test_immutable_and_usable_as_a_key():
    graph = RelationalGraph.from_spec("complete:n=8")
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph.n = 9
    with pytest.raises(ValueError):
        graph.adjacency[0, 1] = False
    lookup = {graph: "dense"}
    assert lookup[RelationalGraph.from_networkx(nx.complete_graph(8))] == "dense"


def test_resolve_expands_sets_in_index_order():
    resolved = resolve("paper:n64_52; complete:n=64")
    assert len(resolved) == 53
    assert [g.spec for g in resolved[:2]] == ["paper:n64_52/0", "paper:n64_52/1"]
    assert resolved[-1].spec == "complete:n=64"
    mixed = resolve(["brain:cat", resolved[0], "ring:n=8,k=2;complete:n=8"])
    assert [g.spec for g in mixed] == ["brain:cat", "paper:n64_52/0", "ring:n=8,k=2", "complete:n=8"]
    assert graphs.resolve("paper:n16_48")[42] == RelationalGraph.from_spec("paper:n16_48/42")


@pytest.mark.parametrize("spec, fragment", [
    ("ws:n=64,k=1,p=0.1,seed=0", r"k \(average degree\) must lie in \[2, n\] = \[2, 64\], got 1.0"),
    ("ws:n=64,k=70,p=0.1,seed=0", "got 70.0"),
    ("ws:n=64,k=8,p=1.2,seed=0", r"p \(rewiring probability\) must lie in \[0, 1\], got 1.2"),
    ("ws:n=64,k=8,p=0.1", "missing seed; ws needs ws:n=...,k=...,p=...,seed=..."),
    ("ws:n=64,k=8,p=0.1,seed=0,q=1", "'q=1' is not a parameter of ws"),
    ("ws:n=64,k=eight,p=0.1,seed=0", "k='eight' is not a valid float"),
    ("paper:n64_52/52", "index 52 is outside paper set n64_52; allowed: 0..51"),
    ("paper:n64_52/x", "index 'x' must be a non-negative integer"),
    ("paper:n32_1", "unknown paper graph set 'n32_1'; allowed: n64_52, n64_449"),
    ("brain:dog", "unknown brain network 'dog'; allowed: mcwhole, mcvisual, cat"),
    ("brain:cat/up", "variant 'up'; allowed: brain:cat, brain:cat/sym or brain:cat/published"),
    ("mesh:n=4", "unknown kind 'mesh'; allowed kinds: ws, paper, brain"),
    ("er:n=64,p=2,seed=0", r"p must lie in \[0, 1\], got 2.0"),
    ("ba:n=64,m=64,seed=0", r"m must be an integer in \[1, 63\], got 64"),
    ("edges:n=3,0-5", "edge \\(0, 5\\) has a node outside 0..2"),
    ("edges:0-1", "starts with n=NODES"),
])
def test_bad_specs_name_the_value_and_what_is_allowed(spec, fragment):
    with pytest.raises(ValueError, match=fragment) as error:
        resolve(spec)
    assert repr(spec.strip()) in str(error.value)


def test_a_set_is_not_one_graph_and_empty_is_nothing():
    with pytest.raises(ValueError, match="names a set of 52 graphs; use graphs.resolve"):
        RelationalGraph.from_spec("paper:n64_52")
    with pytest.raises(ValueError, match="no graph spec given"):
        resolve(" ; ")
    with pytest.raises(TypeError, match="a graph spec must be a string such as 'paper:n64_52;"
                                        "complete:n=64', a RelationalGraph, or a list of them; "
                                        "got int 64"):
        resolve([64])
    with pytest.raises(TypeError, match="got NoneType None"):
        resolve(None)
    with pytest.raises(TypeError, match=r"must be text, got bytes b'complete:n=4': decode it"):
        resolve(b"complete:n=4")
    with pytest.raises(TypeError, match=r"a networkx graph \(5 nodes\) is not a spec: pass "
                                        r"RelationalGraph.from_networkx\(graph\)"):
        resolve(nx.complete_graph(5))


# ----------------------------------------------------------------------------- graph kinds
def _hypercube(values):
    """A d-dimensional hypercube: no parameter n (the registry must not assume one)."""
    return nx.convert_node_labels_to_integers(nx.hypercube_graph(values["d"]))


def test_a_registered_kind_is_everywhere_a_built_in_is():
    """One registration, no other edit: specs, the listing, error messages, the memory
    check, narrowing and the docs table all know it; its name cannot be taken twice."""
    kind = kinds.GraphKind("cube", "d-dimensional hypercube", ("cube:d=3",),
                           params=(kinds.Param("d", int),), build=_hypercube,
                           size=lambda v: (2 ** v["d"], v["d"] * 2 ** (v["d"] - 1)))
    with kinds.GRAPH_KINDS.registered("cube", kind, origin="my_kinds"):
        cube = RelationalGraph.from_spec("cube:d=3")
        assert (cube.n, len(cube.edges), cube.spec) == (8, 12, "cube:d=3")
        assert (cube.C, cube.L) == pytest.approx(graphs.measures(nx.hypercube_graph(3)))
        assert "cube" in kinds.GRAPH_KINDS.names() and "| `cube` | `cube:d=3` |" in \
            kinds.markdown_table()
        with pytest.raises(ValueError, match=r"allowed kinds: ws, paper, brain, complete, ring, "
                                             r"er, ba, regular, gnm, cycle, hypercube, grid, "
                                             r"tree, random, edges, .*cube "):
            resolve("tesseract:d=4")
        with pytest.raises(ValueError, match=r"'cube' needs its parameters after a colon: "
                                             r"cube:d=\.\."):
            resolve("cube")
        with pytest.raises(ValueError, match=r"building this 1,073,741,824-node graph"):
            resolve("cube:d=30")  # refused from its size, before any of it is built
        with pytest.raises(ValueError, match=r"has no recipe to rebuild it at 4 nodes \(only "
                                             r"ws:, paper:, complete: and per_block: graphs do\)"):
            cube.with_nodes(4)
        with pytest.raises(ValueError, match=r"graph kind 'cube' is already registered \(by "
                                             r"my_kinds\); choose another name"):
            kinds.register_graph_kind(kind)
    assert "cube" not in kinds.GRAPH_KINDS.names()
    with pytest.raises(ValueError, match=r"graph kind 'ws' is already registered \(by "
                                         r"relgraph_jax.graphs.relational_graph\)"):
        kinds.register_graph_kind(dataclasses.replace(kind, name="ws"))


def test_the_docs_table_of_kinds_is_the_registrys():
    text = (pathlib.Path(__file__).parents[1] / "docs" / "graphs.md").read_text()
    block = text.split("<!-- graph kinds: begin -->\n")[1].split("\n<!-- graph kinds: end -->")[0]
    assert block == kinds.markdown_table()
