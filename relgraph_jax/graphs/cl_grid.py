"""The paper's (C, L) grids: bin edges, the binning rule, and the subsampling rule.

One home for them, so that the design space (which picks graphs by cell) and the
analysis (which averages runs by bin) put every (C, L) point in the same cell.

The authors binned clustering C and path length L on a fine grid per node count:
64 nodes: C on linspace(0, 1, 136), L on linspace(1, 4.5, 136) (135 x 135 cells);
16 nodes: C on linspace(0, 1, 109), L on linspace(1, 2.5, 109) (108 x 108 cells: the
grid whose 9 x 9 merge is the notebook's 12 x 12, and on which the 16-node sets follow
the same rule as the 64-node ones). Their largest set keeps the first graph of each
non-empty fine cell in a shuffled order (`first_per_cell`); the smaller sets keep the
centre fine cell of each 3 x 3 or 9 x 9 block (`centre_cells`), and are analysed on
those blocks (`paper_grid(3)`, `paper_grid(9)`). Coarse edges are every 3rd or 9th fine
edge, the same floats, so a coarse bin is exactly its fine cells.

Binning (`Grid.locate`): bins are [lo, hi), 0-based, the last one closed; a point
outside the grid is in no bin (-1). `c_right_closed` makes C's bins (lo, hi] instead, as
the authors' heatmap figures bin C (np.digitize(C, edges, right=True)).
"""
from __future__ import annotations

import dataclasses

import numpy as np

# (C edges, L edges) of the paper's fine grid, by number of nodes.
FINE_EDGES = {
    64: (np.linspace(0, 1, 136), np.linspace(1, 4.5, 136)),
    16: (np.linspace(0, 1, 109), np.linspace(1, 2.5, 109)),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Grid:
    """Bin edges over clustering coefficient C and average path length L. Bins are
    [lo, hi), the last one closed; `c_right_closed` makes C's (lo, hi], as the paper's
    heatmap figures bin C (np.digitize(C, edges, right=True)), the first one open."""
    name: str
    c_edges: np.ndarray
    l_edges: np.ndarray
    c_right_closed: bool = False

    def __post_init__(self):
        for axis in ("c_edges", "l_edges"):
            edges = np.asarray(getattr(self, axis), dtype=np.float64)
            if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"grid {self.name!r}: {axis} must be >= 2 increasing values, "
                                 f"got {getattr(self, axis)!r}")
            object.__setattr__(self, axis, edges)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.c_edges) - 1, len(self.l_edges) - 1

    def locate(self, C, L) -> tuple[np.ndarray, np.ndarray]:
        """Bin indices of each (C, L); -1 on both where the point is outside the grid."""
        ci = bin_of(self.c_edges, np.asarray(C, dtype=np.float64), self.c_right_closed)
        li = bin_of(self.l_edges, np.asarray(L, dtype=np.float64))
        outside = (ci < 0) | (li < 0)
        return np.where(outside, -1, ci), np.where(outside, -1, li)

    def cell(self, C, L) -> np.ndarray:
        """One number per (C, L) bin, C-major (ci * L bins + li); -1 outside the grid."""
        ci, li = self.locate(C, L)
        return np.where(ci < 0, -1, ci * self.shape[1] + li)

    def c_range(self, i0: int, i1: int) -> tuple[float, float]:
        return float(self.c_edges[i0]), float(self.c_edges[i1 + 1])

    def l_range(self, j0: int, j1: int) -> tuple[float, float]:
        return float(self.l_edges[j0]), float(self.l_edges[j1 + 1])


def bin_of(edges: np.ndarray, x: np.ndarray, right_closed: bool = False) -> np.ndarray:
    """Bin index of each x on `edges` as `Grid` bins them; -1 outside or not finite."""
    if right_closed:  # (lo, hi]: x on the first edge is outside, as np.digitize has it
        i = np.searchsorted(edges, x, side="left") - 1
        return np.where((x <= edges[0]) | (x > edges[-1]) | ~np.isfinite(x), -1, i)
    i = np.searchsorted(edges, x, side="right") - 1
    i = np.where(x == edges[-1], len(edges) - 2, i)
    return np.where((x < edges[0]) | (x > edges[-1]) | ~np.isfinite(x), -1, i)


def paper_grid(fine_cells_per_bin: int = 1, nodes: int = 64,
               c_right_closed: bool = False) -> Grid:
    """The paper's fine grid for `nodes`-node graphs with `fine_cells_per_bin` cells
    merged per axis: 9 gives the 52 set's 15 x 15 (the 48 set's 12 x 12 for 16 nodes),
    3 the 449 set's 45 x 45 (the 326 set's 36 x 36)."""
    if nodes not in FINE_EDGES:
        raise ValueError(f"the paper's grids are for 64- or 16-node graphs, got {nodes}")
    c_edges, l_edges = FINE_EDGES[nodes]
    fine = len(c_edges) - 1
    divisors = [k for k in range(1, fine) if fine % k == 0]
    if fine_cells_per_bin not in divisors:
        raise ValueError(f"fine_cells_per_bin must divide {fine} "
                         f"({', '.join(map(str, divisors))}), got {fine_cells_per_bin!r}")
    k = fine_cells_per_bin
    return Grid(f"{fine // k}x{fine // k}", c_edges[::k], l_edges[::k], c_right_closed)


FINE = paper_grid(1)
PAPER_449 = paper_grid(3)
PAPER_52 = paper_grid(9)


def first_per_cell(grid: Grid, C, L) -> np.ndarray:
    """Positions, ascending, of the first point of each non-empty cell of `grid` (points
    outside the grid left out): with the points in the paper's shuffled order, its
    one-graph-per-cell rule."""
    cell = grid.cell(C, L)
    inside = np.flatnonzero(cell >= 0)
    _, first = np.unique(cell[inside], return_index=True)
    return inside[np.sort(first)]


def centre_cells(ci: np.ndarray, li: np.ndarray, block: int) -> np.ndarray:
    """Whether fine cell (ci, li) is the centre of its block x block group of cells. In
    the 1-based digits of np.digitize that the paper's code used: block 3 keeps digits
    both 2, 5 or 8 mod 9 (the 449 set), block 9 digits both 5 mod 9 (the 52 set)."""
    if block < 1 or block % 2 == 0:
        raise ValueError(f"block must be an odd positive number of cells, got {block}")
    ci, li = np.asarray(ci), np.asarray(li)
    return (ci >= 0) & (li >= 0) & (ci % block == block // 2) & (li % block == block // 2)
