"""The one (C, L) grid: the design space's cells and the analysis's bins agree."""
import numpy as np
import pytest

from relgraph_jax import analysis, graphs
from relgraph_jax.analysis import paper
from relgraph_jax.graphs import RelationalGraph, catalog, cl_grid, design_space
from helpers import paper_set_arrays


def _points_on_and_between(c_edges, l_edges):
    """Every (C, L) of fine edges and of cell middles, and a few outside the grid."""
    c = np.concatenate([c_edges, (c_edges[:-1] + c_edges[1:]) / 2, [c_edges[0] - 0.01, np.nan]])
    l = np.concatenate([l_edges, (l_edges[:-1] + l_edges[1:]) / 2, [l_edges[-1] + 0.01]])
    C, L = np.meshgrid(c, l, indexing="ij")
    return C.ravel(), L.ravel()


def _heatmap_bins(C, L, grid):
    """Bin of each point as the analysis's heatmap counts it: one run per point."""
    hm = analysis.heatmap(C, L, np.zeros(len(C)), grid)
    ci, li = grid.locate(C, L)
    inside = ci >= 0
    expected = np.zeros(grid.shape, int)
    np.add.at(expected, (ci[inside], li[inside]), 1)
    np.testing.assert_array_equal(hm.count, expected)
    assert hm.outside == (~inside).sum()
    return ci, li


@pytest.mark.parametrize("grid, block", [(analysis.PAPER_52, 9), (analysis.PAPER_449, 3),
                                         (analysis.FINE, 1)])
def test_design_space_cells_and_heatmap_bins_agree_on_and_off_edges(grid, block):
    C, L = _points_on_and_between(*cl_grid.FINE_EDGES[64])
    fine_c, fine_l = design_space.cells(C, L)   # the design space's fine cells
    ci, li = _heatmap_bins(C, L, grid)
    outside = fine_c < 0
    assert outside.sum() > 0 and (ci[outside] == -1).all() and (li[outside] == -1).all()
    np.testing.assert_array_equal(ci[~outside], fine_c[~outside] // block)
    np.testing.assert_array_equal(li[~outside], fine_l[~outside] // block)
    # A point on an edge opens the cell above it; the top edges close the last cells.
    c_edges, l_edges = cl_grid.FINE_EDGES[64]
    np.testing.assert_array_equal(design_space.cells([0.0, c_edges[9], 1.0], [1.0, 4.5, l_edges[45]]),
                                  ([0, 9, 134], [0, 134, 45]))


def test_centre_cells_are_the_coarse_bins_centres():
    C, L = _points_on_and_between(*cl_grid.FINE_EDGES[64])
    kept, borrowed = design_space.centres(C, L, np.arange(len(C)), block=9)
    assert len(borrowed) == 0
    fine_c, fine_l = design_space.cells(C[kept], L[kept])
    assert ((fine_c % 9 == 4) & (fine_l % 9 == 4)).all()   # np.digitize digits 5 mod 9
    ci, li = analysis.PAPER_52.locate(C[kept], L[kept])
    assert len(set(zip(ci.tolist(), li.tolist()))) == 15 * 15  # one cell per 15x15 bin, each
    np.testing.assert_array_equal(ci, fine_c // 9)


def test_paper_choices_grid_differs_from_the_cells_only_on_c_edges():
    # --paper_choices bins C right-closed on the same edges: a point on a C edge below the
    # top one goes to the bin below, C = 0 to none (np.digitize(right=True)); L and the
    # rest agree.
    for nodes in (64, 16):
        c_edges, l_edges = cl_grid.FINE_EDGES[nodes]
        C, L = _points_on_and_between(c_edges, l_edges)
        fine_c, fine_l = design_space.cells(C, L, c_edges, l_edges)
        grid = paper.notebook_grid(nodes)
        ci, li = _heatmap_bins(C, L, grid)
        on_coarse_edge = np.isin(C, grid.c_edges[:-1])
        np.testing.assert_array_equal(
            ci, np.where(fine_c < 0, -1, np.where(on_coarse_edge, fine_c // 9 - 1, fine_c // 9)))
        np.testing.assert_array_equal(li, np.where(ci < 0, -1, fine_l // 9))
        np.testing.assert_array_equal(
            np.where(ci < 0, -1, np.digitize(C, grid.c_edges, right=True) - 1), ci)


def test_coarse_grids_share_the_fine_edges():
    for nodes, name_9, name_3 in ((64, "15x15", "45x45"), (16, "12x12", "36x36")):
        c_edges, l_edges = cl_grid.FINE_EDGES[nodes]
        for k, name in ((9, name_9), (3, name_3)):
            grid = cl_grid.paper_grid(k, nodes)
            assert grid.name == name and not grid.c_right_closed
            np.testing.assert_array_equal(grid.c_edges, c_edges[::k])
            np.testing.assert_array_equal(grid.l_edges, l_edges[::k])
        notebook = paper.notebook_grid(nodes)
        assert notebook.c_right_closed and notebook.name == name_9
        np.testing.assert_array_equal(notebook.l_edges, l_edges[::9])
    with pytest.raises(ValueError, match="64- or 16-node graphs, got 32"):
        cl_grid.paper_grid(9, 32)
    with pytest.raises(ValueError, match=r"must divide 108 \(1, 2, 3, 4, 6, 9, 12, 18, 27, 36, 54\)"):
        cl_grid.paper_grid(5, 16)


def test_16_node_sets_follow_the_rule_on_their_fine_grid():
    C, L, k_over_n, keys = paper_set_arrays("n16_2698")
    edges = dict(zip(("c_edges", "l_edges"), cl_grid.FINE_EDGES[16]))
    chosen = design_space.subsample(C, L, k_over_n, **edges)
    assert sorted(chosen.tolist()) == list(range(2698))  # one graph per fine cell already
    # The rule gives the sets' first rows; the paper added the rest, not only at high C
    # (n16_326's rows 306 and 321 repeat rows 278 and 67).
    for name, block, by_rule in (("n16_326", 3, 306), ("n16_48", 9, 33)):
        kept, _ = design_space.centres(C, L, chosen, block, **edges)
        paper_keys = paper_set_arrays(name)[3]
        assert len(kept) == by_rule and {keys[i] for i in kept} == set(paper_keys[:by_rule])


def test_one_record_for_paper_rows_and_sampled_graphs():
    row = catalog.paper_graph("n64_52", 27)
    assert graphs.PaperGraph is graphs.WSFlexGraph and isinstance(row, graphs.WSFlexGraph)
    assert row.spec == "paper:n64_52/27"
    drawn = graphs.WSFlexGraph(row.n, row.k, row.p, row.seed, row.C, row.L)
    assert drawn.set_name is None and drawn.spec.startswith("ws:")
    assert RelationalGraph.from_spec(drawn.spec) == RelationalGraph.from_spec(row.spec)
