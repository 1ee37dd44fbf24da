"""Statistics of a sweep over the (C, L) plane, as in the paper's section 5.

Per graph: mean and sample std (ddof=1) of the test error over seeds. Per (C, L) bin:
the mean over every run (graph x seed) whose graph falls in it. The complete graph is the
baseline, kept out of the plane (it sits at C = 1, L = 1).

Grids (`Grid`, `paper_grid`, `FINE`, `PAPER_52`, `PAPER_449`) are
`relgraph_jax.graphs.cl_grid`'s, the ones the design space picks its graphs by: the
paper's 135 x 135 fine cells over C in [0, 1], L in [1, 4.5], merged 9 x 9 (15 x 15, the
52 set's) or 3 x 3 (45 x 45, the 449 set's). Bins are [lo, hi), the last one closed;
values outside the grid are counted, not binned.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.stats

from relgraph_jax.analysis.loading import COMPLETE_PREFIX, Runs
from relgraph_jax.graphs.cl_grid import (  # noqa: F401 (the analysis's names for them)
    FINE, PAPER_52, PAPER_449, Grid, bin_of, paper_grid)


class NotEnoughData(ValueError):
    """A statistic cannot be computed from the data at hand; the message says why."""


# ---------------------------------------------------------------------------- per graph
@dataclasses.dataclass(frozen=True, eq=False)
class GraphTable:
    """Per-graph test error over seeds, rows sorted by mean error (best first)."""
    graph: np.ndarray
    C: np.ndarray
    L: np.ndarray
    mean: np.ndarray
    std: np.ndarray     # std over seeds with per_graph's ddof (default 1); NaN if seeds <= ddof
    seeds: np.ndarray   # number of seeds
    width: np.ndarray
    params: np.ndarray

    def __len__(self) -> int:
        return len(self.graph)

    @property
    def is_complete_graph(self) -> np.ndarray:
        return np.char.startswith(self.graph.astype(str), COMPLETE_PREFIX)

    def row(self, i: int) -> dict:
        return {"graph": str(self.graph[i]), "C": float(self.C[i]), "L": float(self.L[i]),
                "mean": float(self.mean[i]), "std": float(self.std[i]),
                "seeds": int(self.seeds[i]), "width": int(self.width[i]),
                "params": int(self.params[i])}


def per_graph(runs: Runs, ddof: int = 1) -> GraphTable:
    """Mean and std of the test error over seeds for each graph. ddof=1: the sample std
    (the project's default); ddof=0: the population std, which the paper prints (np.std)."""
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 (population std) or 1 (sample std), got {ddof!r}")
    names, first, inverse = np.unique(runs.graph, return_index=True, return_inverse=True)
    n = np.bincount(inverse, minlength=len(names))
    mean = np.bincount(inverse, runs.test_error, len(names)) / np.maximum(n, 1)
    squares = np.bincount(inverse, (runs.test_error - mean[inverse]) ** 2, len(names))
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.where(n > ddof, np.sqrt(squares / (n - ddof)), np.nan)
    order = np.lexsort((names, mean))
    return GraphTable(graph=names[order], C=runs.C[first][order], L=runs.L[first][order],
                      mean=mean[order], std=std[order], seeds=n[order],
                      width=runs.width[first][order], params=runs.params[first][order])


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The paper's table: complete graph vs best graph (either may be missing)."""
    complete: dict | None
    best: dict | None

    @property
    def gain(self) -> float | None:
        """Error of the complete graph minus that of the best graph (positive: graph helps)."""
        if self.complete is None or self.best is None:
            return None
        return self.complete["mean"] - self.best["mean"]


def complete_vs_best(table: GraphTable, best: str | None = None) -> Baseline:
    """Complete graph and the graph with the lowest mean error among the others, or the
    graph `best` names (a spec in the table): the paper sometimes names another graph than
    the lowest mean (a tie, or a best graph it judged too variable)."""
    complete = np.flatnonzero(table.is_complete_graph)
    others = np.flatnonzero(~table.is_complete_graph)  # already sorted best first
    if best is not None:
        others = np.flatnonzero(table.graph.astype(str) == best)
        if not len(others):
            raise ValueError(f"best={best!r} is not a graph of this table")
    return Baseline(complete=table.row(complete[0]) if len(complete) else None,
                    best=table.row(others[0]) if len(others) else None)


@dataclasses.dataclass(frozen=True)
class BaselineTest:
    """Complete graph vs best graph over seeds: Student's t and its one-sided p-value."""
    t: float
    pvalue: float
    seeds: tuple[int, int]  # the complete graph's, the best graph's


def baseline_ttest(runs: Runs, baseline: Baseline) -> BaselineTest:
    """Student's two-sample t-test (pooled variance, as the sweet spot's) of the complete
    graph's seeds against the best graph's, one-sided: is the complete graph's error
    higher? Raises NotEnoughData, saying why, without two seeds of each."""
    if baseline.complete is None or baseline.best is None:
        raise NotEnoughData("the complete graph or every other graph is missing")
    complete, best = (runs.test_error[runs.graph == row["graph"]]
                      for row in (baseline.complete, baseline.best))
    if min(len(complete), len(best)) < 2:
        raise NotEnoughData(f"the t-test needs at least 2 seeds of each graph; the complete "
                            f"graph has {len(complete)}, the best graph {len(best)}")
    result = scipy.stats.ttest_ind(complete, best, equal_var=True, alternative="greater")
    return BaselineTest(float(result.statistic), float(result.pvalue), (len(complete), len(best)))


# ---------------------------------------------------------------------------- heatmaps
@dataclasses.dataclass(frozen=True, eq=False)
class Heatmap:
    """Mean test error per (C, L) bin over all runs inside it; NaN where a bin is empty."""
    grid: Grid
    mean: np.ndarray      # (c bins, l bins)
    count: np.ndarray     # runs per bin
    sq_dev: np.ndarray    # sum of squared deviations from the bin mean (for t-tests)
    outside: int          # runs that fell outside the grid

    @property
    def filled(self) -> np.ndarray:
        return self.count > 0


def heatmap(C, L, error, grid: Grid) -> Heatmap:
    """Bins runs at (C, L) with test error `error` on `grid`."""
    C, L, error = (np.asarray(a, dtype=np.float64).ravel() for a in (C, L, error))
    if not len(C) == len(L) == len(error):
        raise ValueError(f"C, L and error must have one value per run, got lengths "
                         f"{len(C)}, {len(L)}, {len(error)}")
    ci, li = grid.locate(C, L)
    inside = ci >= 0
    cells = ci[inside] * grid.shape[1] + li[inside]
    size = grid.shape[0] * grid.shape[1]
    count = np.bincount(cells, minlength=size)
    total = np.bincount(cells, error[inside], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    sq_dev = np.bincount(cells, (error[inside] - mean[cells]) ** 2, minlength=size)
    return Heatmap(grid, mean.reshape(grid.shape), count.reshape(grid.shape),
                   sq_dev.reshape(grid.shape), int((~inside).sum()))


def plane_heatmap(runs: Runs, grid: Grid) -> Heatmap:
    """Heatmap of every run but the complete graph's."""
    keep = ~runs.is_complete_graph
    return heatmap(runs.C[keep], runs.L[keep], runs.test_error[keep], grid)


# ---------------------------------------------------------------------------- sweet spot
@dataclasses.dataclass(frozen=True, eq=False)
class SweetSpot:
    """Smallest rectangle of bins around those not significantly worse than the best bin."""
    best_bin: tuple[int, int]
    pvalue: np.ndarray        # one-sided p of "bin worse than best"; NaN for empty bins
    keep: np.ndarray          # bins with p >= alpha (the best bin included)
    c_bins: tuple[int, int]   # inclusive bin index range
    l_bins: tuple[int, int]
    c_range: tuple[float, float]
    l_range: tuple[float, float]
    alpha: float


def sweet_spot(hm: Heatmap, alpha: float = 0.05) -> SweetSpot:
    """Student's two-sample t-test (pooled variance) of each bin's runs against the best
    bin's, one-sided: a bin is significantly worse when p < alpha."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not hm.filled.any():
        raise NotEnoughData("no run falls on the grid, so there is no best bin")
    best = np.unravel_index(np.nanargmin(hm.mean), hm.mean.shape)
    n_best = hm.count[best]
    if n_best < 2:
        c, l = hm.grid.c_range(best[0], best[0]), hm.grid.l_range(best[1], best[1])
        raise NotEnoughData(
            f"the best bin (C {c[0]:.2f}-{c[1]:.2f}, L {l[0]:.2f}-{l[1]:.2f}) holds "
            f"{n_best} run; the t-test needs at least 2 there (more seeds, or a coarser grid)")
    n = hm.count.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = n + n_best - 2
        pooled = (hm.sq_dev + hm.sq_dev[best]) / df
        se = np.sqrt(pooled * (1 / n + 1 / n_best))
        diff = hm.mean - hm.mean[best]
        t = np.where(se > 0, diff / se, np.where(diff > 0, np.inf, 0.0))
        pvalue = np.where(hm.filled, scipy.stats.t.sf(t, df), np.nan)
    keep = hm.filled & (pvalue >= alpha)
    ci, li = np.nonzero(keep)
    c_bins, l_bins = (int(ci.min()), int(ci.max())), (int(li.min()), int(li.max()))
    return SweetSpot(best_bin=(int(best[0]), int(best[1])), pvalue=pvalue, keep=keep,
                     c_bins=c_bins, l_bins=l_bins, c_range=hm.grid.c_range(*c_bins),
                     l_range=hm.grid.l_range(*l_bins), alpha=alpha)


# ---------------------------------------------------------------------------- slices
@dataclasses.dataclass(frozen=True)
class QuadraticFit:
    """Least-squares y = a x^2 + b x + c."""
    a: float
    b: float
    c: float
    r2: float
    n: int

    def __call__(self, x):
        return self.a * np.asarray(x) ** 2 + self.b * np.asarray(x) + self.c

    @property
    def vertex(self) -> float | None:
        """x of the curve's minimum; None when the parabola opens downward or is flat."""
        return -self.b / (2 * self.a) if self.a > 0 else None


def quadratic_fit(x, y) -> QuadraticFit:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got shapes {x.shape}, {y.shape}")
    if len(np.unique(x)) < 3:
        raise NotEnoughData(f"a quadratic needs 3 distinct x values, got {len(np.unique(x))}")
    a, b, c = np.polyfit(x, y, 2)
    residual = y - (a * x ** 2 + b * x + c)
    spread = ((y - y.mean()) ** 2).sum()
    r2 = 1 - (residual ** 2).sum() / spread if spread > 0 else 1.0
    return QuadraticFit(float(a), float(b), float(c), float(r2), len(x))


def axis_profile(x, y, edges) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin centres, mean y and count per bin of x: the slice a heatmap makes along one axis."""
    x, y, edges = (np.asarray(a, dtype=np.float64) for a in (x, y, edges))
    i = bin_of(edges, x)
    inside = i >= 0
    count = np.bincount(i[inside], minlength=len(edges) - 1)
    total = np.bincount(i[inside], y[inside], minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    return (edges[:-1] + edges[1:]) / 2, mean, count


# ---------------------------------------------------------------------------- correlations
@dataclasses.dataclass(frozen=True)
class Correlation:
    """Pearson r of two heatmaps over the bins both have data in."""
    r: float
    pvalue: float
    bins: int


def heatmap_correlation(a: Heatmap, b: Heatmap) -> Correlation:
    if a.grid.shape != b.grid.shape or not (np.array_equal(a.grid.c_edges, b.grid.c_edges)
                                            and np.array_equal(a.grid.l_edges, b.grid.l_edges)):
        raise ValueError(f"heatmaps must share one grid, got {a.grid.name} and {b.grid.name}")
    both = a.filled & b.filled
    x, y = a.mean[both], b.mean[both]
    if len(x) < 3:
        raise NotEnoughData(f"only {len(x)} bins hold data in both heatmaps; Pearson r needs 3")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise NotEnoughData("one heatmap is constant over the shared bins, so r is undefined")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.NearConstantInputWarning)
        result = scipy.stats.pearsonr(x, y)
    return Correlation(float(result.statistic), float(result.pvalue), int(both.sum()))


def one_graph_per_bin(table: GraphTable, grid: Grid) -> np.ndarray:
    """Mask of table rows keeping, in each bin, the graph nearest the bin centre (in bin
    units): how the paper drew its small set from the large one."""
    keep = ~table.is_complete_graph
    ci, li = grid.locate(table.C, table.L)
    keep &= ci >= 0
    rows = np.flatnonzero(keep)
    c_mid = (grid.c_edges[ci[rows]] + grid.c_edges[ci[rows] + 1]) / 2
    l_mid = (grid.l_edges[li[rows]] + grid.l_edges[li[rows] + 1]) / 2
    c_width = np.diff(grid.c_edges)[ci[rows]]
    l_width = np.diff(grid.l_edges)[li[rows]]
    distance = ((table.C[rows] - c_mid) / c_width) ** 2 + ((table.L[rows] - l_mid) / l_width) ** 2
    cell = ci[rows] * grid.shape[1] + li[rows]
    order = np.lexsort((distance, cell))
    first = np.ones(len(order), bool)
    first[1:] = cell[order][1:] != cell[order][:-1]
    mask = np.zeros(len(table), bool)
    mask[rows[order[first]]] = True
    return mask


def set_size_correlation(runs: Runs, grid: Grid) -> tuple[Correlation, int, int]:
    """r between the heatmap of all graphs and that of one graph per bin; with the graph
    counts of both sets. Tells whether a small graph set would have shown the same plane."""
    table = per_graph(runs)
    small = one_graph_per_bin(table, grid)
    all_graphs = int((~table.is_complete_graph).sum())
    if small.sum() == all_graphs:
        raise NotEnoughData(f"every {grid.name} bin holds at most one graph, so the one-per-bin "
                            "subset is the whole set")
    chosen = np.isin(runs.graph, table.graph[small])
    full = plane_heatmap(runs, grid)
    subset = heatmap(runs.C[chosen], runs.L[chosen], runs.test_error[chosen], grid)
    return heatmap_correlation(subset, full), int(small.sum()), all_graphs
