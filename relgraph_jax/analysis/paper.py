"""The paper's own analysis choices, so that its printed numbers can be recomputed.

The project's defaults (`stats`) are one consistent rule set. The authors' notebook
(facebookresearch/graph2nn, analysis/analyze_results.ipynb) made other choices, and those
decide the numbers the paper prints. Each function here mirrors one of them:

- std over seeds: population std (np.std, ddof=0), not the sample std;
- best graph: the paper names one (`catalog.BEST_GRAPHS`); it is the lowest mean except for
  the MLP (the notebook skips a high-variance best and a tie) and a CNN tie;
- heatmap figures: C bins right-closed (np.digitize(C, edges, right=True)), L bins
  left-closed; 64-node sets on 15 x 15 bins over C [0, 1], L [1, 4.5], 16-node sets on
  12 x 12 over C [0, 1], L [1, 2.5] (`graphs.cl_grid.paper_grid(9, nodes)`);
- sweet spot: for the MLP a bin-level t-test on the 15 x 15 grid, drawn through the kept
  bins' centres; for the ImageNet families a graph-level test (each graph's seeds against
  the best graph's), drawn through the kept graphs' own C and L;
- the 52-bin vectors behind the cross-family correlations (final_results/npys): both axes
  left-closed, the complete graph in a bin of its own beyond C's last one;
- epoch correlations: Pearson r of per-graph mean errors (complete graph included) at an
  epoch against the final epoch;
- slices: quadratic fits over a window, L for graphs with 0.4 <= C <= 0.6 and C for
  graphs with 2 <= L <= 2.5.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.stats

from relgraph_jax import results
from relgraph_jax.analysis import loading, stats
from relgraph_jax.graphs import BEST_GRAPHS, RelationalGraph, catalog, cl_grid

SLICE_WINDOWS = {"L": ("C", 0.4, 0.6), "C": ("L", 2.0, 2.5)}  # fitted axis: (fixed axis, lo, hi)


def notebook_grid(nodes: int, refine: int = 1) -> stats.Grid:
    """The notebook's heatmap grid for `nodes`-node graphs (15 x 15 for 64, 12 x 12 for
    16), `refine` (1, 3 or 9) times finer per axis (3: the 449 / 326 sets' grid), with C
    right-closed as in its figures."""
    if refine not in (1, 3, 9):
        raise ValueError(f"refine must be 1, 3 or 9, got {refine!r}")
    return cl_grid.paper_grid(9 // refine, nodes, c_right_closed=True)


def graph_nodes(runs: loading.Runs) -> int:
    """Node count of the runs' graphs (a sweep has one)."""
    return RelationalGraph.from_spec(str(runs.graph[0])).n


def paper_best(model: str | None) -> str | None:
    """Spec of the graph the paper names best for a model family, None if it names none."""
    if model not in BEST_GRAPHS:
        return None
    set_name, index = BEST_GRAPHS[model]
    return f"paper:{set_name}/{index}"


@dataclasses.dataclass(frozen=True)
class Choices:
    """What an analysis does where the project's rules and the paper's differ."""
    ddof: int                     # std over seeds
    best: str | None              # the graph called best; None: the lowest mean
    grids: tuple[stats.Grid, ...]  # the first one is the heatmap grid of the correlations
    notes: tuple[str, ...]        # what the report's Method section adds


PROJECT = Choices(ddof=1, best=None, grids=(stats.PAPER_52, stats.PAPER_449), notes=())


def choices_for(runs: loading.Runs) -> Choices:
    """The paper's choices for these runs: ddof 0, the paper's best graph where the runs
    hold it, the notebook's grids for their node count (ValueError for other counts)."""
    nodes = graph_nodes(runs)
    grids = (notebook_grid(nodes), notebook_grid(nodes, 3))
    best = paper_best(runs.model)
    notes = ["- Paper's choices (`--paper_choices`), in place of the rules above: std over "
             "seeds is the population std (ddof = 0, as the paper prints it); C bins are "
             "right-closed, (lo, hi], as in the paper's heatmaps; grids are the paper's for "
             f"{nodes}-node graphs (C in [0, 1], L in [1, {grids[0].l_edges[-1]:g}]).",
             "- The paper draws its sweet spots through bin centres (MLP) or the kept graphs' "
             "C and L (ImageNet), not along bin edges as here: its MLP C 0.10-0.50, "
             "L 1.82-2.75 are the centres of the bins C 0.067-0.533, L 1.700-2.867 "
             "(`analysis.paper.bin_sweet_spot`, `graph_sweet_spot`)."]
    if best is not None and best in set(runs.graph.tolist()):
        notes.append(f"- Best graph: `{best}`, the one the paper names for `{runs.model}` "
                     "(not necessarily the lowest mean: see the Graphs table).")
    else:
        notes.append(f"- Best graph: the lowest mean (the paper names "
                     f"{f'`{best}`' if best else 'no graph'} for `{runs.model}`"
                     f"{', which these runs lack' if best else ''}).")
        best = None
    return Choices(ddof=0, best=best, grids=grids, notes=tuple(notes))


# ---------------------------------------------------------------------------- sweet spots
@dataclasses.dataclass(frozen=True)
class GraphSweetSpot:
    """Graphs not significantly worse than the best graph, and the box around them."""
    best: str
    kept: tuple[str, ...]
    tested: int
    c_range: tuple[float, float]
    l_range: tuple[float, float]


def graph_sweet_spot(runs: loading.Runs, best: str, alpha: float = 0.05) -> GraphSweetSpot:
    """The notebook's graph-level sweet spot (ImageNet families): each graph's seeds
    against the best graph's, Student's pooled t-test, worse when t < 0 and p/2 < alpha;
    the box spans the C and L of the graphs that are not worse. Complete graph left out."""
    plane = ~runs.is_complete_graph
    reference = runs.test_error[runs.graph == best]
    if len(reference) < 2:
        raise stats.NotEnoughData(f"best graph {best!r} has {len(reference)} run(s); the "
                                  "t-test needs 2")
    kept, tested, where = [], 0, {}
    for name in np.unique(runs.graph[plane]):
        rows = runs.graph == name
        where[name] = (runs.C[rows][0], runs.L[rows][0])
        tested += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # one seed: NaN, not worse
            t, p = scipy.stats.ttest_ind(reference, runs.test_error[rows])
        if not (t < 0 and p / 2 < alpha):
            kept.append(str(name))
    C, L = (np.array([where[k][i] for k in kept]) for i in (0, 1))
    return GraphSweetSpot(best, tuple(kept), tested, (float(C.min()), float(C.max())),
                          (float(L.min()), float(L.max())))


def bin_sweet_spot(runs: loading.Runs, grid: stats.Grid
                   ) -> tuple[stats.SweetSpot, tuple[float, float], tuple[float, float]]:
    """The notebook's bin-level sweet spot (the MLP): `stats.sweet_spot` on a heatmap of
    every run, the complete graph's included as the notebook has it, with the box drawn
    through the centres of the extreme kept bins (the paper's C 0.10-0.50, L 1.82-2.75)."""
    spot = stats.sweet_spot(stats.heatmap(runs.C, runs.L, runs.test_error, grid))
    c_mid = (grid.c_edges[:-1] + grid.c_edges[1:]) / 2
    l_mid = (grid.l_edges[:-1] + grid.l_edges[1:]) / 2
    return (spot, (float(c_mid[spot.c_bins[0]]), float(c_mid[spot.c_bins[1]])),
            (float(l_mid[spot.l_bins[0]]), float(l_mid[spot.l_bins[1]])))


# ---------------------------------------------------------------------------- 52-bin vectors
def _left_closed_52(extra_column: bool) -> stats.Grid:
    """The 15 x 15 grid with both axes left-closed (np.digitize's default); with
    `extra_column`, one more C bin from 1, where np.digitize puts C = 1 (complete graph)."""
    grid = stats.PAPER_52
    if not extra_column:
        return grid
    return stats.Grid(grid.name, np.append(grid.c_edges, 16 / 15), grid.l_edges)


def _set_52() -> tuple[np.ndarray, np.ndarray]:
    graphs = catalog.paper_set("n64_52")
    return np.array([g.C for g in graphs]), np.array([g.L for g in graphs])


def heatmap_vector(runs: loading.Runs) -> np.ndarray:
    """The 53 values the authors saved as npys/<task>_resolution52.npy: mean error per bin
    of the 52 set's bins and the complete graph's bin, over every run (graph x seed) in
    it, read L-major (bins ordered by L, then C), as the notebook's (L, C) array."""
    grid = _left_closed_52(extra_column=True)
    hm = stats.heatmap(runs.C, runs.L, runs.test_error, grid)
    C, L = _set_52()
    ci, li = grid.locate(np.append(C, 1.0), np.append(L, 1.0))
    cells = np.zeros(grid.shape, bool)
    cells[ci, li] = True
    return hm.mean.T[cells.T]


def vector_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two equal-length vectors (the notebook's corr_plot)."""
    return float(scipy.stats.pearsonr(a, b).statistic)


def specs_in(set_name: str, of: str) -> list[str]:
    """Specs in paper set `of` of the graphs of `set_name`, matched by WS-flex parameters
    (the 52 set's graphs are in the 3942 set under other indices)."""
    index = catalog.index_by_config_key(of)
    specs = []
    for g in catalog.paper_set(set_name):
        key = catalog.config_key(g)
        if key not in index:
            raise ValueError(f"paper:{set_name}/{g.index} is not in paper set {of}")
        specs.append(f"paper:{of}/{index[key]}")
    return specs


def set_size_correlation(runs: loading.Runs) -> stats.Correlation:
    """The notebook's 52 vs 3942 (corr_graphs): on the 52 set's bins (both axes
    left-closed), the heatmap of the 52 set's own graphs against that of all graphs."""
    grid = _left_closed_52(extra_column=False)
    chosen = np.isin(runs.graph, specs_in("n64_52", "n64_3942"))
    small = stats.heatmap(runs.C[chosen], runs.L[chosen], runs.test_error[chosen], grid)
    return stats.heatmap_correlation(small, stats.plane_heatmap(runs, grid))


# ---------------------------------------------------------------------------- epochs
def epoch_correlations(index: results.ResultsIndex, final: int, complete: bool = True
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Epochs before `final` and Pearson r of per-graph mean errors there against those at
    `final`, over the graphs both epochs hold (the complete graph too, as the notebook
    does, unless `complete` is False)."""
    def means(epoch):
        table = stats.per_graph(loading.select(index, epoch))
        keep = np.ones(len(table), bool) if complete else ~table.is_complete_graph
        return dict(zip(table.graph[keep].tolist(), table.mean[keep]))

    last = means(final)
    epochs, r = [], []
    for epoch in (e for e in index.epochs if e < final):
        now = means(epoch)
        shared = sorted(set(now) & set(last))
        epochs.append(epoch)
        r.append(vector_correlation([now[g] for g in shared], [last[g] for g in shared]))
    return np.array(epochs), np.array(r)


# ---------------------------------------------------------------------------- slices
def window_slice(table: stats.GraphTable, axis: str
                 ) -> tuple[np.ndarray, np.ndarray, stats.QuadraticFit]:
    """Per-graph mean error against `axis` ("C" or "L") for the graphs inside the other
    axis's window (`SLICE_WINDOWS`), and the quadratic fit (the notebook's 1-D slices)."""
    fixed, lo, hi = SLICE_WINDOWS[axis]
    value = getattr(table, fixed)
    rows = ~table.is_complete_graph & (value >= lo) & (value <= hi)
    x, y = getattr(table, axis)[rows], table.mean[rows]
    return x, y, stats.quadratic_fit(x, y)
